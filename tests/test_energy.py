"""Energy-meter invariants on short real MNIST runs (3,000 samples each), and the meter's
summary arithmetic.

M1 >= M1_min and M0 >= M0_min (the minimum sets every weight once to its final value);
frozen synapses are never written and never move; a top-fraction rule writes exactly its
per-sample budget; the potentiation-only measure is part of M1; the write-count maps add up
to M0.
"""
import math

import numpy as np
import pytest

from neuroenergy.energy import EnergyMeter
from neuroenergy.kernels import MF_MALPHA, N_METER_F
from neuroenergy.network import BIAS_UNIT, Network
from neuroenergy.rules import Backprop, Combined, Path, TopFraction, writes_per_sample
from neuroenergy.train import _streams

from reference import energy_summary_ref

LAYERS = ("input", "output")
N_OUT = 10

RULES = {
    "backprop": Backprop(),
    "top-fraction": TopFraction(p=0.01),
    "top-fraction-p_out": TopFraction(p=0.02, p_out=0.05),
    "path": Path(k=20),
    "path-first": Path(k=30, selection="first"),
    "combined": Combined(k=20, p=0.2),
}


def initial_weights(result, n_in):
    """The run's initial weights, rebuilt from its seed the way ``train`` draws them."""
    cfg = result.config
    init_rng = _streams(cfg.seed)[0]
    net = Network.initial(n_in, cfg.hidden, N_OUT, cfg.init_std, init_rng)
    return net.w_in, net.w_out


def per_sample_writes(result, n_in):
    """(k_input, k_output) writes per sample the rule allows; -1 for all."""
    units = result.plastic_units
    n_learning = len(units) - int(np.count_nonzero(units == BIAS_UNIT))
    p_in, p_out = result.config.rule.fractions()
    return writes_per_sample(p_in, n_in * n_learning), writes_per_sample(p_out, len(units) * N_OUT)


@pytest.fixture(params=list(RULES), scope="module")
def run(request, short_run):
    return short_run(RULES[request.param])


def test_run_is_short_and_learns(run):
    assert run.samples == 3000 and run.status == "not_converged"
    assert run.test_accuracy > 0.6, "3,000 samples of SGD should learn MNIST well above chance"


def test_minimum_is_a_lower_bound(run):
    e = run.energy
    for layer in LAYERS + ("total",):
        assert e["M1"][layer] >= e["M1_min"][layer] > 0.0
        assert e["M0"][layer] >= e["M0_min"][layer] > 0
    assert e["inefficiency_M1"] == pytest.approx(e["M1"]["total"] / e["M1_min"]["total"])
    assert e["inefficiency_M0"] == pytest.approx(e["M0"]["total"] / e["M0_min"]["total"])
    assert e["inefficiency_M1"] >= 1.0 and e["inefficiency_M0"] >= 1.0


def test_totals_are_sums_of_layers(run):
    e = run.energy
    for key in ("M0", "M1", "M0_min", "M1_min", "M1_potentiation"):
        assert e[key]["total"] == pytest.approx(e[key]["input"] + e[key]["output"], rel=1e-12)


def test_potentiation_only_is_part_of_M1(run):
    e = run.energy
    for layer in LAYERS:
        assert 0.0 < e["M1_potentiation"][layer] <= e["M1"][layer]
        # symmetric errors: potentiation is roughly half of all change
        assert 0.2 < e["M1_potentiation"][layer] / e["M1"][layer] < 0.8


def test_minimum_matches_the_weights(run, mnist):
    w_start = initial_weights(run, mnist.n_inputs)
    w_end = (run.network.w_in, run.network.w_out)
    ref = energy_summary_ref([run.energy["M0"]["input"], run.energy["M0"]["output"]],
                             np.array([[run.energy["M1"][l], run.energy["M1_potentiation"][l], 0]
                                       for l in LAYERS]), w_start, w_end)
    for key in ("M0_min", "M1_min"):
        for layer in LAYERS + ("total",):
            assert run.energy[key][layer] == pytest.approx(ref[key][layer], rel=1e-12)


def test_write_counts_add_up_to_M0(run, mnist):
    c_in, c_out = run.write_counts
    assert c_in.shape == (mnist.n_inputs, run.config.hidden) and c_out.shape == (run.config.hidden,
                                                                               N_OUT)
    assert int(c_in.sum()) == run.energy["M0"]["input"]
    assert int(c_out.sum()) == run.energy["M0"]["output"]
    assert c_in.min() >= 0 and c_out.min() >= 0
    assert c_in.max() <= run.samples and c_out.max() <= run.samples


def test_unwritten_synapses_never_move(run, mnist):
    """A synapse whose write count is 0 keeps its initial weight; every synapse that moved
    was written (so M0_min <= number of written synapses)."""
    w_start = initial_weights(run, mnist.n_inputs)
    for counts, w0, w1 in zip(run.write_counts, w_start, (run.network.w_in, run.network.w_out)):
        np.testing.assert_array_equal(w1[counts == 0], w0[counts == 0])
        assert np.count_nonzero(w1 != w0) <= np.count_nonzero(counts)


def test_bias_unit_has_no_incoming_writes(run):
    c_in, c_out = run.write_counts
    assert not c_in[:, BIAS_UNIT].any()
    assert c_out[BIAS_UNIT].all(), "the output biases are plastic under every rule"


def test_frozen_synapses_under_path_rules(run, mnist):
    units = run.plastic_units
    hidden = run.config.hidden
    assert units[0] == BIAS_UNIT and np.all(np.diff(units) > 0)
    frozen = np.setdiff1d(np.arange(hidden), units)
    if isinstance(run.config.rule, Path):
        assert len(units) == run.config.rule.k + 1 and frozen.size == hidden - len(units)
    else:
        assert frozen.size == 0
        return
    c_in, c_out = run.write_counts
    assert not c_in[:, frozen].any() and not c_out[frozen].any()
    w_in0, w_out0 = initial_weights(run, mnist.n_inputs)
    np.testing.assert_array_equal(run.network.w_in[:, frozen], w_in0[:, frozen])
    np.testing.assert_array_equal(run.network.w_out[frozen], w_out0[frozen])
    # and every plastic unit did learn, in and out
    learning = units[units != BIAS_UNIT]
    assert c_in[:, learning].any(axis=0).all() and c_out[units].any(axis=1).all()


def test_writes_per_sample_budget(run, mnist):
    """Each layer writes exactly its per-sample budget: k for top-fraction layers, all
    nonzero updates otherwise (the tie-breaking noise makes every input nonzero, leaky ReLU
    makes every error nonzero)."""
    k_in, k_out = per_sample_writes(run, mnist.n_inputs)
    n_learning = len(run.plastic_units) - 1
    all_in, all_out = mnist.n_inputs * n_learning, len(run.plastic_units) * N_OUT
    assert run.energy["M0"]["input"] == run.samples * (all_in if k_in < 0 else k_in)
    assert run.energy["M0"]["output"] == run.samples * (all_out if k_out < 0 else k_out)
    if isinstance(run.config.rule, TopFraction) and run.config.rule.p_out is None:
        # the tied output fraction makes both layers write about equally
        assert 0.9 < k_out / k_in < 1.1


def test_curves_are_running_totals(run):
    c = run.curves
    assert c["samples"].tolist() == [1000, 2000, 3000]
    for key in ("M0_input", "M0_output", "M1_input", "M1_output"):
        assert np.all(np.diff(c[key]) > 0)
    assert c["M0_input"][-1] == run.energy["M0"]["input"]
    assert c["M0_output"][-1] == run.energy["M0"]["output"]
    assert c["M1_input"][-1] == pytest.approx(run.energy["M1"]["input"], rel=1e-12)
    assert c["M1_output"][-1] == pytest.approx(run.energy["M1"]["output"], rel=1e-12)
    assert c["accuracy"][-1] == run.test_accuracy


def test_top_fraction_writes_far_less_than_backprop(short_run):
    bp = short_run(RULES["backprop"]).energy
    tf = short_run(RULES["top-fraction"]).energy
    assert tf["M0"]["total"] < bp["M0"]["total"] / 10
    assert tf["M1"]["total"] < bp["M1"]["total"]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_alpha_measure(short_run, alpha):
    """M_alpha with alpha = 0 counts writes, with alpha = 1 is M1; 0.5 lies in between in the
    sense of the power mean. A top-fraction rule keeps these runs fast (the dense non-fused
    path is slow)."""
    result = short_run(TopFraction(p=0.02, p_out=0.1), alpha=alpha)
    e = result.energy
    assert e["alpha"] == alpha
    for layer in LAYERS + ("total",):
        if alpha == 0.0:
            assert e["M_alpha"][layer] == e["M0"][layer]
        elif alpha == 1.0:
            assert e["M_alpha"][layer] == pytest.approx(e["M1"][layer], rel=1e-9)
        else:
            # power-mean inequality over the writes: (mean |dw|^0.5)^2 <= mean |dw|
            assert e["M_alpha"][layer] > 0
            mean_root = e["M_alpha"][layer] / e["M0"][layer]
            assert mean_root ** 2 <= e["M1"][layer] / e["M0"][layer] * (1 + 1e-9)
    # metering alpha does not change what is learned
    plain = short_run(TopFraction(p=0.02, p_out=0.1))
    np.testing.assert_array_equal(result.network.w_in, plain.network.w_in)
    assert plain.energy["M0"] == e["M0"]


def test_dense_alpha_path_matches_fused_on_a_small_network(short_run):
    """Backprop metered with alpha (pairwise writes) against the fused dense update (closed
    form): same weights and counts, M1 to float tolerance."""
    fused = short_run(Backprop(), hidden=8, max_epochs=0.01)
    pairwise = short_run(Backprop(), hidden=8, max_epochs=0.01, alpha=1.0)
    np.testing.assert_array_equal(fused.network.w_in, pairwise.network.w_in)
    np.testing.assert_array_equal(fused.network.w_out, pairwise.network.w_out)
    np.testing.assert_array_equal(fused.write_counts[0], pairwise.write_counts[0])
    for key in ("M1", "M1_potentiation"):
        for layer in LAYERS:
            assert fused.energy[key][layer] == pytest.approx(pairwise.energy[key][layer],
                                                             rel=1e-9)
    assert fused.energy["M0"] == pairwise.energy["M0"]
    assert pairwise.energy["M_alpha"]["input"] == pytest.approx(fused.energy["M1"]["input"],
                                                                rel=1e-9)


# ----------------------------------------------------------------------------- EnergyMeter alone

def test_meter_summary_against_reference():
    rng = np.random.default_rng(0)
    w_in0 = rng.normal(size=(7, 5)).astype(np.float32)
    w_out0 = rng.normal(size=(5, 10)).astype(np.float32)
    meter = EnergyMeter(w_in0, w_out0, np.array([0, 2, 3]), alpha=0.5)
    saved = w_in0[0, 0]
    w_in0[0, 0] = 99.0  # the meter keeps its own copy of the start weights
    assert meter.w_start[0][0, 0] == saved
    w_in0[0, 0] = saved
    meter.writes[:] = [11, 4]
    meter.sums[:] = rng.uniform(1, 2, (2, N_METER_F))
    w_in1, w_out1 = w_in0.copy(), w_out0.copy()
    w_in1[1:3, 2] += 0.25
    w_out1[3, :4] -= 0.5
    s = meter.summary(w_in1, w_out1)
    ref = energy_summary_ref(meter.writes, meter.sums, (w_in0, w_out0), (w_in1, w_out1))
    for key in ref:
        for layer in ref[key]:
            assert s[key][layer] == pytest.approx(ref[key][layer], rel=1e-12), (key, layer)
    assert s["M0_min"]["input"] == 2 and s["M0_min"]["output"] == 4
    assert s["M_alpha"]["input"] == meter.sums[0, MF_MALPHA]
    assert s["alpha"] == 0.5
    # the count map of the plastic part lands in the plastic columns / rows
    meter.counts_plastic[0][:] = 1
    meter.counts_plastic[1][:] = 2
    c_in, c_out = meter.full_counts()
    assert c_in[:, [0, 2, 3]].all() and not c_in[:, [1, 4]].any()
    assert (c_out[[0, 2, 3]] == 2).all() and not c_out[[1, 4]].any()


def test_meter_summary_without_change_has_nan_inefficiency():
    w = np.zeros((3, 2), np.float32)
    meter = EnergyMeter(w, np.zeros((2, 10), np.float32), np.arange(2))
    s = meter.summary(w, np.zeros((2, 10), np.float32))
    assert s["M1_min"]["total"] == 0.0 and math.isnan(s["inefficiency_M1"])
    assert "M_alpha" not in s
