"""Spiking training on the numpy target: gates, meter invariants, determinism, messages."""
import numpy as np
import pytest

from neuroenergy import rules
from neuroenergy.errors import ConfigError
from neuroenergy.spiking import LearnConfig, train_spiking
from neuroenergy.spiking.learn import encode, rate_equivalent_scores

# brian2 2.9 parses equations with pyparsing arguments that pyparsing 3.3 deprecates
pytestmark = [pytest.mark.brian2,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing")]
brian2 = pytest.importorskip("brian2")

# tiny runs: 12 hidden units, 20 ms presentations, two chunks of 25 (one Brian2 run each)
TINY = dict(hidden=12, samples=50, duration_ms=20, chunk=25, eval_images=0, target="numpy",
            lr=0.5)
RULES = {
    "backprop": rules.Backprop(),
    "path": rules.Path(k=4),
    "top-fraction": rules.TopFraction(p=0.05),
    "combined": rules.Combined(k=4, p=0.3),
}


@pytest.fixture(scope="module")
def runs(raw_mnist):
    return {name: train_spiking(LearnConfig(rule=rule, **TINY), raw_mnist)
            for name, rule in RULES.items()}


@pytest.mark.parametrize("name", list(RULES))
def test_meter_invariants(runs, name):
    e = runs[name].energy
    for layer in ("input", "output", "total"):
        assert e["M1"][layer] >= e["M1_min"][layer] - 1e-9
        assert e["M0"][layer] >= e["M0_min"][layer]
    counts = runs[name].write_counts
    assert counts[0].sum() == e["M0"]["input"]
    assert counts[1].sum() == e["M0"]["output"]
    assert e["M0"]["total"] > 0


@pytest.mark.parametrize("name", ["path", "combined"])
def test_frozen_synapses_never_change(runs, name):
    r = runs[name]
    frozen = np.setdiff1d(np.arange(r.config.hidden), r.plastic_units)
    start = _start_weights(r.config)
    assert len(frozen) == r.config.hidden - 5
    np.testing.assert_array_equal(r.w_in[:, frozen], start[0][:, frozen])
    np.testing.assert_array_equal(r.w_out[frozen], start[1][frozen])
    assert r.write_counts[0][:, frozen].sum() == 0
    assert r.write_counts[1][frozen].sum() == 0
    np.testing.assert_array_equal(r.w_in[:, 0], 0.0)  # the bias unit has no input synapses
    plastic = r.plastic_units[r.plastic_units != 0]
    assert np.any(r.w_in[:, plastic] != start[0][:, plastic])


def _start_weights(cfg):
    init_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[0])
    w_in = init_rng.normal(0.0, cfg.init_std, (785, cfg.hidden))
    w_out = init_rng.normal(0.0, cfg.init_std, (cfg.hidden, 10))
    w_in[:, 0] = 0.0
    return w_in, w_out


def test_threshold_rules_write_less(runs):
    assert runs["top-fraction"].energy["M0"]["input"] < runs["backprop"].energy["M0"]["input"]
    frac = runs["top-fraction"].write_fraction
    assert frac["target"]["input"] == 0.05
    assert 0 < frac["measured"]["input"] < 0.5
    assert runs["top-fraction"].thresholds["end"]["input"] > 0
    assert runs["backprop"].thresholds["kind"] == "none"


def test_determinism_with_brians_seed(raw_mnist):
    cfg = LearnConfig(rule=rules.Backprop(), input="poisson", seed=5,
                      **{**TINY, "samples": 20, "chunk": 20})
    a, b = train_spiking(cfg, raw_mnist), train_spiking(cfg, raw_mnist)
    np.testing.assert_array_equal(a.w_in, b.w_in)
    np.testing.assert_array_equal(a.w_out, b.w_out)
    assert a.energy == b.energy
    c = train_spiking(cfg.replace(seed=6), raw_mnist)
    assert not np.array_equal(a.w_out, c.w_out)


def test_meter_matches_per_presentation_weight_changes(raw_mnist):
    """The hardware pricer sees every write from weight snapshots; its |dw| sum and write
    count must equal the synapses' own meter (M1, M0)."""
    cfg = LearnConfig(rule=rules.Backprop(), hardware=("biology-low",),
                      **{**TINY, "samples": 20, "chunk": 10})
    r = train_spiking(cfg, raw_mnist)
    counts = r.hardware["biology-low"]["counts"]
    assert counts["writes"] == r.energy["M0"]["total"]
    assert counts["m1"] == pytest.approx(r.energy["M1"]["total"], rel=1e-9)
    assert counts["m1_potentiation"] == pytest.approx(r.energy["M1_potentiation"]["total"],
                                                      rel=1e-9)


def test_learning_improves_the_network(raw_mnist):
    cfg = LearnConfig(rule=rules.Backprop(), hidden=30, samples=300, duration_ms=20,
                      chunk=150, eval_images=40, target="numpy", lr=0.5)
    r = train_spiking(cfg, raw_mnist)
    assert r.rate_equivalent_accuracy > r.initial_rate_equivalent_accuracy + 0.2
    assert r.spiking_accuracy > r.initial_spiking_accuracy + 0.1
    assert r.presentations_per_second > 0
    d = r.to_dict()
    for key in ("rate_equivalent_accuracy", "spiking_accuracy", "energy", "samples",
                "presentations_per_second", "write_fraction"):
        assert key in d


def test_rate_equivalent_scores_clip_hidden_rates():
    w_in = np.zeros((785, 3))
    w_in[:, 1] = 1.0
    w_out = np.eye(3, 10)
    scores = rate_equivalent_scores(w_in, w_out, encode(np.ones((1, 784)), 0.2))
    np.testing.assert_allclose(scores[0, :3], [1.0, 1.0, 0.0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(samples=0), "'samples' parameter of LearnConfig must be an int in the range "
                      "[1, 10000000]"),
    (dict(input="current"), "'input' parameter of LearnConfig must be one of 'regular', "
                            "'poisson'"),
    (dict(target="gpu"), "'target' parameter of LearnConfig"),
    (dict(duration_ms=7.5), "whole number"),
    (dict(rule=rules.Path(k=50), hidden=20), "'k' parameter of Path must be an int in the "
                                             "range [1, 19]"),
    (dict(rule="path"), "'rule' parameter of LearnConfig must be a Rule object"),
    (dict(hardware=("no-such-chip",)), "Unknown hardware preset 'no-such-chip'"),
])
def test_bad_configuration_messages(kwargs, message):
    import re
    with pytest.raises(ConfigError, match=re.escape(message)):
        LearnConfig(**kwargs)
