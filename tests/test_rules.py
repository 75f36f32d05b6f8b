"""Rule objects: parameters, plastic units, per-layer fractions, writes per sample."""
import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroenergy.errors import ConfigError
from neuroenergy.rules import (RULES, TIED_OUTPUT_RATIO, Backprop, Combined, Path, TopFraction,
                               make_rule, tied_output_fraction, writes_per_sample)


def test_rule_names():
    # the study's four rules come first (more may follow)
    assert list(RULES)[:4] == ["backprop", "top-fraction", "path", "combined"]
    for name, cls in RULES.items():
        assert cls.name == name


@pytest.mark.parametrize("p, n, expected", [
    (1.0, 77715, -1), (1.5, 10, -1), (0.01, 77715, 778), (0.5, 10, 5), (0.3, 10, 3),
    (0.31, 10, 4), (1e-9, 1000, 1), (0.2, 785 * 20, 3140), (0.784, 1000, 784),
    (0.999999, 3, 3),
])
def test_writes_per_sample(p, n, expected):
    assert writes_per_sample(p, n) == expected


@settings(max_examples=300, deadline=None)
@given(p=st.floats(1e-6, 1.0, exclude_max=True), n=st.integers(1, 10**7))
def test_writes_per_sample_property(p, n):
    """ceil(p n) up to float rounding, at least 1, never more than n."""
    k = writes_per_sample(p, n)
    assert 1 <= k <= n
    assert k >= p * n - 1e-6 and k < p * n + 1


def test_tied_output_fraction():
    assert TIED_OUTPUT_RATIO == 78.4
    assert tied_output_fraction(0.01) == pytest.approx(0.784)
    assert tied_output_fraction(1 / 78.4) == pytest.approx(1.0)
    assert tied_output_fraction(0.5) == 1.0
    # tied: both layers of 784-100-10 (785 inputs with the bias) write about equally
    k_in = writes_per_sample(0.01, 785 * 99)
    k_out = writes_per_sample(tied_output_fraction(0.01), 100 * 10)
    assert abs(k_in - k_out) / k_in < 0.02


def test_fractions():
    assert Backprop().fractions() == (1.0, 1.0)
    assert Path(k=5).fractions() == (1.0, 1.0)
    assert TopFraction(p=0.01).fractions() == (0.01, pytest.approx(0.784))
    assert TopFraction(p=0.01, p_out=0.3).fractions() == (0.01, 0.3)
    assert Combined(k=5, p=0.2).fractions() == (0.2, 1.0)
    assert Combined(k=5, p=0.005, p_out=0.5).fractions() == (0.005, 0.5)


def test_params_are_json_able_and_complete():
    for rule in (Backprop(), TopFraction(p=0.1), Path(k=3), Combined(k=2, p=0.5, p_out=0.25)):
        params = rule.params()
        json.dumps(params)
        assert make_rule(rule.name, **params) == rule
    assert Backprop().params() == {}
    assert Combined(k=2, p=0.5).params() == {"k": 2, "k_fraction": None, "selection": "random",
                                             "p": 0.5, "p_out": None}


def test_rules_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TopFraction(p=0.1).p = 0.2


@pytest.mark.parametrize("make, pattern", [
    (lambda: TopFraction(p=0), r"The 'p' parameter of TopFraction must be a float"),
    (lambda: TopFraction(p=0.1, p_out=2.0), r"The 'p_out' parameter of TopFraction"),
    (lambda: TopFraction(p=True), r"Got True instead"),
    (lambda: Path(k=0), r"The 'k' parameter of Path must be an int in the range \[1, inf\]"),
    (lambda: Path(k=2.5), r"The 'k' parameter of Path must be an int"),
    (lambda: Path(k=True), r"The 'k' parameter of Path .*Got True instead"),
    (lambda: Path(k=None, k_fraction=None, selection="x"), r"The 'selection' parameter"),
    (lambda: Path(k=3, k_fraction=0.5), r"Path needs exactly one of 'k'"),
    (lambda: Path(k=None, k_fraction=1.5), r"The 'k_fraction' parameter of Path"),
    (lambda: Path(k=None, k_fraction=0.0), r"The 'k_fraction' parameter of Path"),
    (lambda: Path(k=3, selection="best"), r"The 'selection' parameter of Path must be one of "
                                          r"'random', 'first'\. Got 'best' instead\."),
    (lambda: Combined(k=3, p=1.2), r"The 'p' parameter of Combined must be a float"),
    (lambda: Combined(k=0, p=0.2), r"The 'k' parameter of Combined"),
    (lambda: make_rule("backprop", p=0.1), r"The rule 'backprop' takes no parameters; got p,"),
    (lambda: make_rule("top-fraction", k=3), r"takes the parameters .*p_out.*; got k,"),
    (lambda: make_rule("magic"), r"The 'rule' parameter must be one of"),
])
def test_bad_rule_parameters(make, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make()


def test_make_rule():
    assert make_rule("backprop") == Backprop()
    assert make_rule("top-fraction", p=0.05, p_out=None) == TopFraction(p=0.05)
    assert make_rule("path", k=7) == Path(k=7)
    assert make_rule("path", k_fraction=0.2) == Path(k=None, k_fraction=0.2)
    assert make_rule("combined", k=None, k_fraction=0.2, p=0.1) == \
        Combined(k=None, k_fraction=0.2, p=0.1)


def test_make_rule_lists_only_real_parameters():
    with pytest.raises(ConfigError) as info:
        make_rule("backprop", p=0.1)
    assert "'name'" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_rule("top-fraction", k=3)
    assert "takes the parameters p, p_out;" in str(info.value)


def test_path_defaults_to_50_units():
    assert Path().k == 50 and Path().k_fraction is None


def test_path_with_only_k_fraction():
    assert Path(k_fraction=0.2).plastic_units(11, np.random.default_rng(0)).size == 3
    assert Combined(k_fraction=0.2, p=0.1).k_fraction == 0.2


def test_plastic_units_first_and_random():
    np.testing.assert_array_equal(Path(k=4, selection="first").plastic_units(10, None),
                                  [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(Backprop().plastic_units(6, None), np.arange(6))
    a = Path(k=30).plastic_units(100, np.random.default_rng(1))
    b = Path(k=30).plastic_units(100, np.random.default_rng(1))
    c = Path(k=30).plastic_units(100, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # every path includes everything at k = hidden - 1
    np.testing.assert_array_equal(Path(k=99).plastic_units(100, np.random.default_rng(0)),
                                  np.arange(100))


@settings(max_examples=200, deadline=None)
@given(hidden=st.integers(2, 3000), data=st.data(), seed=st.integers(0, 2**32 - 1),
       selection=st.sampled_from(["random", "first"]), combined=st.booleans())
def test_plastic_units_property(hidden, data, seed, selection, combined):
    """Sorted, unique, within range, bias unit first, k + 1 units in all."""
    use_fraction = data.draw(st.booleans())
    if use_fraction:
        frac = data.draw(st.floats(1e-4, 1.0))
        k_expected = max(1, int(round(frac * (hidden - 1))))
        kw = dict(k=None, k_fraction=frac, selection=selection)
    else:
        k_expected = data.draw(st.integers(1, hidden - 1))
        kw = dict(k=k_expected, selection=selection)
    rule = Combined(p=0.5, **kw) if combined else Path(**kw)
    rule.validate(hidden)
    units = rule.plastic_units(hidden, np.random.default_rng(seed))
    assert units.dtype == np.int64
    assert units[0] == 0 and len(units) == k_expected + 1
    assert np.all(np.diff(units) > 0) and units[-1] < hidden
    if selection == "first":
        np.testing.assert_array_equal(units, np.arange(k_expected + 1))


def test_random_path_is_uniform_over_units():
    """Over many draws, every non-bias unit is chosen about equally often."""
    hits = np.zeros(21)
    for seed in range(2000):
        hits[Path(k=5).plastic_units(21, np.random.default_rng(seed))] += 1
    assert hits[0] == 2000
    expected = 2000 * 5 / 20
    assert np.all(np.abs(hits[1:] - expected) < 5 * math.sqrt(expected))
