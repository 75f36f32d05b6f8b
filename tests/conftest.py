"""Shared fixtures: the real MNIST data set (loaded once per session) and short real runs.

The MNIST cache must be present (``neuroenergy data fetch``, or ``NEUROENERGY_DATA_DIR``
pointing at a folder that holds it). A missing cache fails the tests that need it with the
loader's own message; it is never silently skipped.
"""
import numpy as np
import pytest

from neuroenergy.config import RunConfig
from neuroenergy.data import load_dataset
from neuroenergy.errors import DataError
from neuroenergy.train import train

# a short real run: 3,000 samples, three evaluations; a few seconds at 100 hidden units
SHORT = dict(max_epochs=0.05, eval_every=1000)


@pytest.fixture(scope="session")
def mnist():
    """The preprocessed real MNIST data set (recipe defaults)."""
    try:
        return load_dataset("mnist")
    except DataError as exc:
        pytest.fail(f"real MNIST is needed for this test and could not be loaded: {exc}",
                    pytrace=False)


@pytest.fixture(scope="session")
def short_run(mnist):
    """``short_run(rule, **config)``: train a short real run, memoised for the session (the
    result must be treated as read-only)."""
    cache = {}

    def run(rule, **overrides):
        config = RunConfig(rule=rule, **{**SHORT, **overrides})
        key = repr(config)
        if key not in cache:
            cache[key] = train(config, data=mnist)
        return cache[key]

    return run


@pytest.fixture
def no_hardware():
    """The kernels' empty hardware arguments: (hw_params, hw_stats, in_loop_device)."""
    return np.zeros((0, 1), np.float64), np.zeros((2, 0, 1), np.float64), -1
