"""Fixtures of the spiking tests: a small rate network trained on real MNIST, and its file.

Every simulation here uses Brian2's ``numpy`` target (no compilation) and small networks.
"""
import pytest

from neuroenergy.config import RunConfig
from neuroenergy.train import train

SMALL_HIDDEN = 30


@pytest.fixture(scope="session")
def small_result(mnist):
    """A 784-30-10 leaky-ReLU network after 6,000 samples of per-sample SGD (~88%)."""
    return train(RunConfig(hidden=SMALL_HIDDEN, seed=0, max_epochs=0.1, eval_every=6000,
                           target_accuracy=0.99), data=mnist)


@pytest.fixture(scope="session")
def small_net(small_result):
    return small_result.network


@pytest.fixture(scope="session")
def raw_mnist():
    from neuroenergy.data import load_raw
    return load_raw("mnist")
