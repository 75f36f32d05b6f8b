"""Same seed, same numbers; different seeds, different runs."""
import numpy as np
import pytest

from neuroenergy.config import RunConfig
from neuroenergy.data import load_dataset
from neuroenergy.rules import Backprop, Combined, Path, TopFraction
from neuroenergy.train import train

SMALL = dict(hidden=30, max_epochs=0.02, eval_every=600)
RULES = [Backprop(), TopFraction(p=0.05), Path(k=10), Combined(k=10, p=0.3)]


def _same(a, b):
    np.testing.assert_array_equal(a.network.w_in, b.network.w_in)
    np.testing.assert_array_equal(a.network.w_out, b.network.w_out)
    np.testing.assert_array_equal(a.write_counts[0], b.write_counts[0])
    np.testing.assert_array_equal(a.write_counts[1], b.write_counts[1])
    np.testing.assert_array_equal(a.plastic_units, b.plastic_units)
    assert a.energy == b.energy  # exact, float sums included
    assert (a.samples, a.status, a.test_accuracy) == (b.samples, b.status, b.test_accuracy)
    for key in a.curves:
        if key != "seconds":
            np.testing.assert_array_equal(a.curves[key], b.curves[key])


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_same_seed_same_numbers(rule, mnist):
    config = RunConfig(rule=rule, seed=3, **SMALL)
    _same(train(config, data=mnist), train(config, data=mnist))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_different_seeds_differ(rule, mnist):
    a = train(RunConfig(rule=rule, seed=1, **SMALL), data=mnist)
    b = train(RunConfig(rule=rule, seed=2, **SMALL), data=mnist)
    assert not np.array_equal(a.network.w_in, b.network.w_in)
    assert a.energy["M1"]["total"] != b.energy["M1"]["total"]
    if isinstance(rule, Path) and rule.selection == "random":
        assert not np.array_equal(a.plastic_units, b.plastic_units)


def test_determinism_survives_a_fresh_data_load(mnist):
    """The preprocessing noise is seeded: a second load gives the same inputs and the same
    run."""
    again = load_dataset("mnist")
    np.testing.assert_array_equal(again.x_train, mnist.x_train)
    np.testing.assert_array_equal(again.x_test, mnist.x_test)
    config = RunConfig(rule=TopFraction(p=0.05), seed=0, hidden=20, max_epochs=0.01,
                       eval_every=600)
    _same(train(config, data=mnist), train(config, data=again))


def test_first_path_selection_ignores_the_seed():
    units = [Path(k=5, selection="first").plastic_units(20, np.random.default_rng(s))
             for s in range(3)]
    for u in units:
        np.testing.assert_array_equal(u, np.arange(6))
