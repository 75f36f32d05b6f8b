"""Helpers of the reliability tests: a small synthetic data set, a data set with arrays
replaced, a short run that never converges, and what every run must satisfy."""
import math

import numpy as np

from neuroenergy.config import RunConfig
from neuroenergy.data import Dataset
from neuroenergy.rules import Backprop

STATUSES = ("converged", "not_converged", "diverged")


def synthetic(seed=0, n_train=60, n_test=20, n_in=12, scale=1.0, name="synthetic"):
    rng = np.random.default_rng(seed)
    return Dataset(name, (scale * rng.normal(0, 1, (n_train, n_in))).astype(np.float32),
                   rng.integers(0, 10, n_train),
                   (scale * rng.normal(0, 1, (n_test, n_in))).astype(np.float32),
                   rng.integers(0, 10, n_test))


def replace(data, **arrays):
    fields = dict(name=data.name, x_train=data.x_train, y_train=data.y_train,
                  x_test=data.x_test, y_test=data.y_test)
    fields.update(arrays)
    return Dataset(**fields)


def quick(rule=None, **overrides):
    """A few hundred samples on the synthetic data, never reaching its target."""
    kw = dict(rule=rule or Backprop(), hidden=6, max_epochs=2.0, eval_every=20,
              target_accuracy=1.0)
    kw.update(overrides)
    return RunConfig(**kw)


def check_result(result, config):
    """What every run must satisfy, whatever its inputs."""
    assert result.status in STATUSES
    weights = getattr(result.network, "weights", [result.network.w_in, result.network.w_out])
    accuracies = list(result.curves["accuracy"])
    assert all(math.isfinite(a) for a in accuracies)  # no NaN evaluation is ever recorded
    if result.status == "diverged":
        # detected within one evaluation interval of the last good evaluation
        last_good = int(result.curves["samples"][-1]) if len(result.curves["samples"]) else 0
        assert result.diverged_at_sample is not None
        assert last_good < result.diverged_at_sample <= last_good + config.eval_every
        assert result.samples == result.diverged_at_sample
        assert math.isnan(result.test_accuracy)
    else:
        assert result.diverged_at_sample is None
        assert all(np.all(np.isfinite(w)) for w in weights)
        assert math.isfinite(result.test_accuracy)
        for counts, layer in zip(result.write_counts, ("input", "output")):
            assert int(counts.sum()) == result.energy["M0"][layer]
