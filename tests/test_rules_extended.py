"""The general kernel and the extended rules against the slow references, plus invariants."""
import math

import numpy as np
import pytest

from neuroenergy.config import RunConfig
from neuroenergy.energy import LayeredEnergyMeter
from neuroenergy.errors import ConfigError
from neuroenergy.general_codes import BUF_NONE, LZ_SKIPPED, LZ_UPDATED
from neuroenergy.general_kernel import train_chunk_general
from neuroenergy.general_train import _State, train_general
from neuroenergy.kernels import MF_M1
from neuroenergy.rules import RULES, Backprop, Combined, Path, TopFraction, make_rule
from neuroenergy.rules_extended import (AccumulateWrite, ErrorPath, LargestWeights, Lazy,
                                        RandomNeurons, RandomSynapseMask, ReadoutOnly,
                                        RotatingPath, SmallestUpdates, SynapticCaching,
                                        TopFractionPerNeuron, caching_threshold, plan_for)
from neuroenergy.train import train
from reference_extended import (caching_bounds, forward_ref, random_walk_caching_cost,
                                train_general_ref)

RULES_WITH_REFERENCE = [
    Backprop(), TopFraction(p=0.2, p_out=0.5), Path(k=2), Combined(k=2, p=0.3, p_out=0.6),
    TopFractionPerNeuron(p=0.3, p_out=0.5), SmallestUpdates(p=0.2, p_out=0.4),
    LargestWeights(p=0.2, p_out=0.4), RandomSynapseMask(p=0.3, p_out=0.5), ReadoutOnly(),
    ErrorPath(k=2), ErrorPath(k=2, p=0.5, p_out=0.5), ErrorPath(k=1, outgoing=False),
    RotatingPath(k=2, period=3), RotatingPath(k=1, period=1, p=0.5, p_out=0.5),
    AccumulateWrite(p=0.1, p_out=0.3), AccumulateWrite(theta=0.01, c=0.1, b=0.5),
    AccumulateWrite(p=0.2, k=2),
    SynapticCaching(theta=0.02, c=0.05), SynapticCaching(theta=0.02, consolidation="neuron"),
    SynapticCaching(theta=0.03, consolidation="layer", b=0.3),
    SynapticCaching(theta=0.01, tau=5.0, c=0.1, k=2),
    Lazy(Backprop()), Lazy(Combined(k=2, p=0.3), margin=0.5),
    Lazy(SynapticCaching(theta=0.02, tau=10.0), margin=0.2),
]


def problem(seed, depth=None):
    """A random small network and data set (sizes, weights, x, y)."""
    rng = np.random.default_rng(seed)
    depth = depth if depth is not None else int(rng.integers(1, 3))
    sizes = (int(rng.integers(4, 12)),) + tuple(int(rng.integers(3, 9)) for _ in range(depth)) \
        + (int(rng.integers(3, 6)),)
    weights = [rng.normal(0, 0.4, size=(a, b)).astype(np.float32)
               for a, b in zip(sizes[:-1], sizes[1:])]
    x = rng.normal(0, 1, size=(40, sizes[0])).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0  # zero inputs: no writes from them
    y = rng.integers(0, sizes[-1], size=40).astype(np.int64)
    return sizes, weights, x, y


def run_kernel(rule, sizes, weights, x, y, idx, lrs, plan=None, seed=0, state=None,
               meter=None, counter=None, lazy_i=None):
    """One chunk of the general kernel; returns (plan, state, meter, lazy counters)."""
    plan = plan or plan_for(rule, sizes, np.random.default_rng(seed))
    state = state or _State(weights, plan.buffer != BUF_NONE)
    meter = meter or LayeredEnergyMeter(weights)
    counter = counter if counter is not None else np.zeros(1, np.int64)
    lazy_i = lazy_i if lazy_i is not None else np.zeros(2, np.int64)
    ispec, fspec = plan.specs(0, 0, 0.1, None, -1)
    n_layers = len(sizes) - 1
    done, status = train_chunk_general(
        x, y, np.asarray(idx, np.int64), np.asarray(sizes, np.int64), state.w, state.s,
        plan.mask, meter.counts, plan.unit_on, plan.k_units, plan.perm,
        np.asarray(plan.p_layer, np.float64), np.asarray(lrs, np.float64), ispec, fspec, counter,
        meter.writes, meter.sums, meter.buffer_sums, lazy_i, np.zeros((0, 1)),
        np.zeros((n_layers, 0, 1)), seed)
    assert status == 0 and done == len(idx)
    return plan, state, meter, lazy_i


@pytest.mark.parametrize("rule", RULES_WITH_REFERENCE, ids=repr)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_reference(rule, seed):
    sizes, weights, x, y = problem(seed)
    if any(getattr(rule, "k", None) and rule.k > h - 1 for h in sizes[1:-1]):
        pytest.skip("path larger than the layer")
    idx = np.random.default_rng(seed + 10).integers(0, len(x), size=25)
    lrs = [0.05] * (len(sizes) - 2) + [0.08]
    plan, state, meter, lazy_i = run_kernel(rule, sizes, weights, x, y, idx, lrs, seed=seed)
    ref = train_general_ref(rule, plan, weights, x, y, idx, lrs)
    for l, w in enumerate(state.views(state.w)):
        np.testing.assert_array_equal(w, ref.w[l], err_msg=f"layer {l} weights")
    if ref.s is not None:
        for l, s in enumerate(state.views(state.s)):
            np.testing.assert_array_equal(s, ref.s[l], err_msg=f"layer {l} buffer")
    for l, c in enumerate(meter.count_maps()):
        np.testing.assert_array_equal(c, ref.counts[l], err_msg=f"layer {l} counts")
    np.testing.assert_array_equal(meter.writes, ref.writes)
    np.testing.assert_allclose(meter.sums[:, MF_M1], ref.m1, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(meter.buffer_sums[:, 0], ref.maintenance, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(meter.buffer_sums[:, 1], ref.change, rtol=1e-9, atol=1e-15)
    assert (lazy_i[LZ_UPDATED], lazy_i[LZ_SKIPPED]) == (ref.updated, ref.skipped)


@pytest.mark.parametrize("rule", [Path(k=2), Combined(k=2, p=0.3), RotatingPath(k=1, period=50),
                                  SynapticCaching(theta=0.01, k=2), ReadoutOnly(),
                                  RandomSynapseMask(p=0.2, p_out=0.3)], ids=repr)
def test_frozen_synapses_unchanged(rule):
    sizes, weights, x, y = problem(3, depth=1)
    plan, state, meter, _ = run_kernel(rule, sizes, weights, x, y, np.arange(40), [0.05, 0.05])
    w_in, w_out = state.views(state.w)
    if isinstance(rule, ReadoutOnly):
        frozen_in = np.ones(w_in.shape, bool)
        frozen_out = np.zeros(w_out.shape, bool)
    elif isinstance(rule, RandomSynapseMask):
        n_in = w_in.size
        frozen_in = (plan.mask[:n_in] == 0).reshape(w_in.shape)
        frozen_out = (plan.mask[n_in:] == 0).reshape(w_out.shape)
    else:
        units = plan.unit_on == 1
        if isinstance(rule, RotatingPath):  # one block for 40 samples: the first k units
            units = np.zeros(sizes[1], bool)
            units[plan.perm[:rule.k]] = True
            units[0] = True
        frozen_in = np.broadcast_to(~units, w_in.shape).copy()
        frozen_in[:, 0] = True  # the bias unit has no incoming plasticity
        frozen_out = np.broadcast_to(~units[:, None], w_out.shape)
    assert np.array_equal(w_in[frozen_in], weights[0][frozen_in])
    assert np.array_equal(w_out[frozen_out], weights[1][frozen_out])
    assert not np.array_equal(w_in, weights[0]) or isinstance(rule, ReadoutOnly)
    counts_in, counts_out = meter.count_maps()
    assert counts_in[frozen_in].sum() == 0 and counts_out[frozen_out].sum() == 0


@pytest.mark.parametrize("seed", range(4))
def test_caching_without_maintenance_is_bracketed(seed):
    """With c = 0 and no decay, per synapse the consolidated batches and the final remainder
    partition the updates, so M_min <= consolidation + remainder <= sum |dw| (metered here
    as the transient-change cost with b = 1). The issue's wording ("never more than M_min
    plus the buffered remainder") cannot hold - a synapse that consolidates +theta and then
    -theta costs 2 theta for a net change of 0 - so the test checks this bracket instead."""
    sizes, weights, x, y = problem(seed)
    rule = SynapticCaching(theta=0.02, c=0.0, b=1.0)
    _, state, meter, _ = run_kernel(rule, sizes, weights, x, y, np.arange(40), [0.05] * 3)
    eff = state.effective(True)
    summary = meter.summary(eff, state.views(state.s))
    consolidation = summary["M1_consolidation"]["total"]
    remainder = summary["M1_remainder"]["total"]
    assert consolidation > 0 and remainder > 0
    assert caching_bounds(consolidation, remainder, summary["M1_min"]["total"],
                          summary["M1_transient_change"]["total"])
    # and the network learnt exactly what backprop would have: w = l + s follows every update
    _, bp, _, _ = run_kernel(Backprop(), sizes, weights, x, y, np.arange(40), [0.05] * 3)
    for a, b in zip(eff, bp.views(bp.w)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_caching_threshold_theory_matches_a_random_walk():
    eta, c = 0.01, 0.01
    theta = caching_threshold(eta, c)
    assert theta == pytest.approx(eta * math.sqrt(300))
    rng = np.random.default_rng(0)
    costs = {f: random_walk_caching_cost(eta, f * theta, c, 200_000, rng) for f in (0.3, 1, 3)}
    assert costs[1] < costs[0.3] and costs[1] < costs[3]
    assert costs[1] == pytest.approx(2 * eta * math.sqrt(c / 3), rel=0.25)
    with pytest.raises(ConfigError, match="The 'c' parameter of caching_threshold"):
        caching_threshold(eta, 0.0)


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_lazy_writes_nothing_on_learned_samples(margin):
    sizes, weights, x, y = problem(5, depth=1)
    rule = Lazy(Backprop(), margin=margin)
    plan = plan_for(rule, sizes, np.random.default_rng(0))
    state = _State(weights, False)
    meter = LayeredEnergyMeter(weights)
    skipped = 0
    for t in range(40):
        before = meter.counts.copy()
        w_now = [np.array(w) for w in state.views(state.w)]
        _, _, z = forward_ref(w_now, x[t], 0, 0.1)
        learned = z[y[t]] - np.delete(z, y[t]).max() > margin
        run_kernel(rule, sizes, weights, x, y, [t], [0.2, 0.2], plan=plan, state=state,
                   meter=meter)
        if learned:
            skipped += 1
            assert np.array_equal(meter.counts, before)
            assert all(np.array_equal(a, b) for a, b in zip(state.views(state.w), w_now))
        else:
            assert meter.counts.sum() > before.sum()
    assert 0 < skipped < 40


def test_random_neurons_write_k_units_per_sample():
    sizes, weights, x, y = problem(6, depth=2)
    rule = RandomNeurons(k=2)
    plan = plan_for(rule, sizes, np.random.default_rng(0))
    state, meter = _State(weights, False), LayeredEnergyMeter(weights)
    chosen = set()
    for t in range(20):
        before = [c.copy() for c in meter.count_maps()]
        run_kernel(rule, sizes, weights, x, y, [t], [0.05] * 3, plan=plan, state=state,
                   meter=meter, seed=t)
        new = [c - b for c, b in zip(meter.count_maps(), before)]
        cols = np.flatnonzero(new[0].sum(axis=0))
        assert len(cols) <= 2 and 0 not in cols
        chosen.update(cols.tolist())
        # hidden -> hidden: both ends on the path of their layer
        assert np.count_nonzero(new[1].sum(axis=1)) <= 3
        assert np.count_nonzero(new[2].sum(axis=1)) <= 3  # k units + the bias unit
    assert len(chosen) > 2  # the set moves


def test_general_kernel_matches_fast_kernel_on_mnist(short_run, mnist):
    for rule in (Backprop(), TopFraction(p=0.05)):
        config = RunConfig(rule=rule, hidden=30, max_epochs=0.03, eval_every=900)
        fast = short_run(rule, hidden=30, max_epochs=0.03, eval_every=900)
        general = train_general(config, mnist)
        assert np.array_equal(fast.network.w_in, general.network.w_in)
        assert np.array_equal(fast.network.w_out, general.network.w_out)
        for a, b in zip(fast.write_counts, general.write_counts):
            assert np.array_equal(a, b)
        for key in ("M0", "M0_min"):
            assert fast.energy[key] == general.energy[key]
        for key in ("M1", "M1_min", "M1_potentiation"):
            for layer in ("input", "output", "total"):
                assert general.energy[key][layer] == pytest.approx(fast.energy[key][layer],
                                                                   rel=1e-9)
        assert fast.test_accuracy == general.test_accuracy


def test_general_kernel_prices_hardware_like_the_fast_kernel(mnist):
    # deterministic rounding only: the two kernels draw their stochastic-rounding uniforms
    # from different streams, so stochastic presets agree in distribution, not bit for bit
    config = RunConfig(rule=TopFraction(p=0.05), hidden=20, max_epochs=0.01, eval_every=600,
                       hardware=("sram-22nm", "rram-neurosim"))
    fast, general = train(config, mnist), train_general(config, mnist)
    assert np.array_equal(fast.network.w_in, general.network.w_in)
    for name in ("sram-22nm", "rram-neurosim"):
        for key in ("energy_j", "lost_updates"):
            assert general.hardware[name][key] == pytest.approx(fast.hardware[name][key],
                                                                rel=1e-9)


def test_deep_network_trains_and_meters_every_layer(mnist):
    config = RunConfig(rule=make_rule("lazy", base={"name": "combined", "k": 10, "p": 0.3}),
                       hidden=(40, 20), max_epochs=0.02, eval_every=600)
    r = train(config, mnist)
    assert set(r.energy["M1"]) == {"input", "hidden1", "output", "total"}
    assert [c.shape for c in r.write_counts] == [(785, 40), (40, 20), (20, 10)]
    assert r.energy["lazy"]["updated"] + r.energy["lazy"]["skipped"] == r.samples
    again = RunConfig.from_dict(config.to_dict())
    assert again == config and again.hidden == (40, 20)
    learns = train(RunConfig(hidden=(40, 20), init_std=0.1, max_epochs=0.03, eval_every=900),
                   mnist)
    assert learns.test_accuracy > 0.6


def test_validation_split_stops_on_held_out_training_images(mnist):
    from neuroenergy.splits import split_rows
    config = RunConfig(rule=Backprop(), hidden=20, max_epochs=0.05, eval_every=500,
                       stop_on="validation", validation_size=5000, target_accuracy=0.8)
    fit, val = split_rows(config, 60000)
    assert len(val) == 5000 and len(np.intersect1d(fit, val)) == 0 and len(fit) == 55000
    assert np.array_equal(split_rows(config.replace(seed=3), 60000)[1], val)
    for run in (train, train_general):  # fast kernel and general kernel
        r = run(config, mnist)
        assert r.validation_accuracy is not None
        assert len(r.curves["validation_accuracy"]) == len(r.curves["accuracy"])
        if r.converged:
            assert r.curves["validation_accuracy"][-1] >= 0.8
        assert r.to_dict()["stop_on"] == "validation"


@pytest.mark.parametrize("name", [n for n in RULES])
def test_every_rule_round_trips_through_config(name):
    rule = make_rule(name)
    config = RunConfig(rule=rule, hidden=60)
    assert RunConfig.from_dict(config.to_dict()).rule == rule
    assert rule.__doc__ and len(rule.__doc__) > 40


@pytest.mark.parametrize("build, message", [
    (lambda: SynapticCaching(theta=0), "The 'theta' parameter of SynapticCaching must be a "
                                       "float in the range (0, inf]. Got 0 instead."),
    (lambda: SynapticCaching(consolidation="cell"), "The 'consolidation' parameter of "
                                                    "SynapticCaching must be one of"),
    (lambda: AccumulateWrite(p=0.1, theta=0.1), "takes either 'p'"),
    (lambda: ErrorPath(k=0), "The 'k' parameter of ErrorPath must be an int in the range"),
    (lambda: RotatingPath(period=0), "The 'period' parameter of RotatingPath"),
    (lambda: Lazy(base="nonsense"), "The 'rule' parameter must be one of"),
    (lambda: Lazy(base=Lazy()), "The 'base' parameter of Lazy"),
    (lambda: RandomSynapseMask(p=1.5), "The 'p' parameter of RandomSynapseMask must be a "
                                       "float in the range (0, 1]. Got 1.5 instead."),
    (lambda: RunConfig(hidden=()), "The 'hidden' parameter of RunConfig"),
    (lambda: RunConfig(hidden=(100, 1)), "The 'hidden' parameter of RunConfig"),
    (lambda: RunConfig(stop_on="train"), "The 'stop_on' parameter of RunConfig must be one of"),
    (lambda: RunConfig(rule=ErrorPath(k=60), hidden=(100, 50)), "The 'k' parameter of "
                                                                "ErrorPath"),
])
def test_parameter_errors_use_the_house_format(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_pricing_on_deterministic_devices_leaves_training_alone(mnist):
    """The general kernel draws rounding uniforms only for stochastic devices: a rule that
    draws its own random numbers (random hidden units per sample) learns exactly the same
    with or without the deterministic devices priced beside it."""
    rule = make_rule("random-neurons", k=5)
    plain = train_general(RunConfig(rule=rule, hidden=20, max_epochs=0.01, eval_every=600),
                          mnist)
    priced = train_general(RunConfig(rule=rule, hidden=20, max_epochs=0.01, eval_every=600,
                                     hardware=("sram-22nm", "rram-neurosim", "biology-low")),
                           mnist)
    assert np.array_equal(plain.network.w_in, priced.network.w_in)
    assert np.array_equal(plain.network.w_out, priced.network.w_out)
    assert priced.hardware["sram-22nm"]["counts"]["writes"] == priced.energy["M0"]["total"]
