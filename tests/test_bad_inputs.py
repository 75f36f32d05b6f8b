"""Trying to break training at the public API (hypothesis): non-finite and malformed data,
other dtypes and memory orders, huge learning rates (reported and stored as diverged, never
as numbers) and empty selections, for the study's rules and the extended ones. The result
files, interruptions and load: test_reliability.py."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroenergy.errors import DataError
from neuroenergy.rules import Backprop, Combined, TopFraction, make_rule
from neuroenergy.rules import Path as PathRule
from neuroenergy.store import load_run, read_runs, write_run
from neuroenergy.train import train
from reliability_support import check_result, quick, replace, synthetic


# ----------------------------------------------------------------------------- bad data

@settings(max_examples=60, deadline=None)
@given(split=st.sampled_from(["x_train", "x_test"]), value=st.sampled_from(
    [np.nan, np.inf, -np.inf, 1e39]), n_bad=st.integers(1, 5), seed=st.integers(0, 2**16),
    rule=st.sampled_from([Backprop(), TopFraction(p=0.1), PathRule(k=3),
                          make_rule("accumulate", theta=0.01)]))
def test_non_finite_data_is_a_clear_data_error(split, value, n_bad, seed, rule):
    """NaN or inf anywhere in the inputs (1e39 becomes inf as float32) is refused before
    any training, naming the array and the count."""
    data = synthetic(seed)
    x = getattr(data, split).astype(np.float64)
    rng = np.random.default_rng(seed)
    flat = rng.choice(x.size, size=n_bad, replace=False)
    x.flat[flat] = value
    bad = replace(data, **{split: x})
    with pytest.raises(DataError, match=rf"{split} holds {n_bad} values that are NaN or "
                                        "infinite"):
        train(quick(rule), data=bad)


DAMAGES = ["x_1d", "x_3d", "x_no_rows", "x_no_columns", "columns_differ", "labels_short",
           "labels_2d", "label_10", "label_negative", "labels_fractional", "labels_text",
           "x_complex", "x_text"]


@settings(max_examples=60, deadline=None)
@given(damage=st.sampled_from(DAMAGES), split=st.sampled_from(["train", "test"]),
       seed=st.integers(0, 2**16))
def test_malformed_data_is_a_clear_data_error(damage, split, seed):
    data = synthetic(seed)
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    changes = {
        "x_1d": {"x": x[:, 0]}, "x_3d": {"x": x[:, :, None]}, "x_no_rows": {"x": x[:0],
                                                                           "y": y[:0]},
        "x_no_columns": {"x": x[:, :0]}, "columns_differ": {"x": x[:, 1:]},
        "labels_short": {"y": y[1:]}, "labels_2d": {"y": y[:, None]},
        "label_10": {"y": np.where(np.arange(len(y)) == 0, 10, y)},
        "label_negative": {"y": np.where(np.arange(len(y)) == 0, -1, y)},
        "labels_fractional": {"y": y + 0.5}, "labels_text": {"y": y.astype(str)},
        "x_complex": {"x": x.astype(np.complex64)}, "x_text": {"x": x.astype(str)},
    }[damage]
    if damage == "columns_differ" and split == "train":
        changes = {"x": x[:, 1:]}  # then x_test has one column more than x_train
    bad = replace(data, **{f"{k}_{split}": v for k, v in changes.items()})
    with pytest.raises(DataError, match="data set 'synthetic': [xy]_(train|test) "):
        train(quick(), data=bad)


@settings(max_examples=40, deadline=None)
@given(x_dtype=st.sampled_from([np.float16, np.float64, np.int8, np.uint8, np.bool_]),
       y_dtype=st.sampled_from([np.int8, np.uint8, np.int32, np.uint64, np.float32]),
       fortran=st.booleans(), seed=st.integers(0, 2**16))
def test_other_numeric_dtypes_are_converted(x_dtype, y_dtype, fortran, seed):
    data = synthetic(seed)
    def conv(x):
        return np.asfortranarray(x.astype(x_dtype)) if fortran else x.astype(x_dtype)

    other = replace(data, x_train=conv(data.x_train), x_test=conv(data.x_test),
                    y_train=data.y_train.astype(y_dtype), y_test=data.y_test.astype(y_dtype))
    config = quick()
    check_result(train(config, data=other), config)


# ----------------------------------------------------------------------------- kernels

RULES = [Backprop(), TopFraction(p=0.05), TopFraction(p=1e-6), PathRule(k=1), PathRule(k=4),
         Combined(k=1, p=1e-6), Combined(k=3, p=0.3), make_rule("accumulate", theta=0.01),
         make_rule("lazy", base=Backprop(), margin=0.0)]


@settings(max_examples=40, deadline=None)
@given(rule=st.sampled_from(RULES), lr=st.floats(1.0, 10.0), init_std=st.floats(0.5, 10.0),
       scale=st.floats(1.0, 1e4), eval_every=st.integers(1, 60),
       deep=st.booleans(), seed=st.integers(0, 2**16))
def test_huge_learning_rates_diverge_within_one_evaluation_interval_and_are_stored(
        rule, lr, init_std, scale, eval_every, deep, seed):
    data = synthetic(seed, scale=scale)
    config = quick(rule, lr=lr, init_std=init_std, eval_every=eval_every, seed=seed,
                   hidden=(6, 5) if deep else 6)
    result = train(config, data=data)
    check_result(result, config)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.h5"
        run_id = write_run(path, result)
        stored = read_runs(path)[0]
        assert stored["status"] == result.status
        assert stored["diverged_at_sample"] == result.diverged_at_sample
        assert load_run(path, run_id).get("missing") is None


@settings(max_examples=60, deadline=None)
@given(rule=st.sampled_from(RULES), activation=st.sampled_from(["leaky_relu", "relu",
                                                                 "sigmoid"]),
       zero_rows=st.floats(0.0, 1.0), zero_columns=st.floats(0.0, 1.0),
       constant=st.sampled_from([None, 0.0, 1.0]), seed=st.integers(0, 2**16))
def test_empty_selections_never_break_a_run(rule, activation, zero_rows, zero_columns,
                                            constant, seed):
    """Inputs with all-zero images and pixels (nothing to write in the input layer), silent
    ReLU units, one-unit paths and selections of a single synapse."""
    data = synthetic(seed)
    rng = np.random.default_rng(seed)
    x = data.x_train.copy()
    x[rng.random(len(x)) < zero_rows] = 0.0
    x[:, rng.random(x.shape[1]) < zero_columns] = 0.0
    if constant is not None:
        x[:] = constant
    config = quick(rule, activation=activation, seed=seed)
    check_result(train(config, data=replace(data, x_train=x)), config)
