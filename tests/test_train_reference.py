"""Training end to end against the full-network references in ``tests/reference.py``: the
path decomposition (frozen units as a fixed output offset) and ``train()`` for the study's
rules on tiny data sets, divergence reported as such."""
import numpy as np
import pytest

from neuroenergy.data import Dataset
from neuroenergy.kernels import ACT_LEAKY_RELU, LOSS_MSE, MF_M1, MF_M1_POT, N_METER_F, STATUS_OK
from neuroenergy.config import RunConfig
from neuroenergy.network import Network
from neuroenergy.rules import Backprop, Combined, Path, TopFraction, writes_per_sample
from neuroenergy.sgd_kernel import train_chunk
from neuroenergy.train import _frozen_output, _streams, train

from reference import train_full_ref
from test_kernels import _run_isolated

F32 = np.float32
N_OUT = 10
METER_RTOL = 1e-9


# ============================================================================ path: the full network

def _decompose(w_in, w_out, units, x, activation="leaky_relu"):
    net = Network(w_in.copy(), w_out.copy(), activation, 0.1)
    frozen = np.setdiff1d(np.arange(w_in.shape[1]), units)
    offset = _frozen_output(net, frozen, x) if frozen.size else np.zeros((0, N_OUT), F32)
    return (np.ascontiguousarray(w_in[:, units]), np.ascontiguousarray(w_out[units]),
            offset, units == 0)


@pytest.mark.parametrize("seed", range(12))
def test_path_decomposition_matches_full_network(seed, no_hardware):
    """Training the plastic part with the frozen units' precomputed offset is training the
    whole network with only the path's synapses plastic."""
    rng = np.random.default_rng(seed)
    n_in, hidden = int(rng.integers(5, 25)), int(rng.integers(3, 16))
    n_images = 8
    x = rng.normal(0, 1, (n_images, n_in)).astype(F32)
    y = rng.integers(0, N_OUT, n_images).astype(np.int64)
    sample_idx = rng.integers(0, n_images, 5).astype(np.int64)
    w_in = rng.normal(0, 0.3, (n_in, hidden)).astype(F32)
    w_out = rng.normal(0, 0.3, (hidden, N_OUT)).astype(F32)
    k = int(rng.integers(1, hidden))
    units = np.r_[0, np.sort(1 + rng.choice(hidden - 1, k, replace=False))].astype(np.int64)
    top = seed % 2 == 1
    k1 = writes_per_sample(0.3, n_in * k) if top else -1
    k2 = writes_per_sample(0.5, (k + 1) * N_OUT) if top else -1

    w1, w2, offset, clamped = _decompose(w_in, w_out, units, x)
    meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, N_METER_F))
    c1, c2 = np.zeros(w1.shape, np.int32), np.zeros(w2.shape, np.int32)
    hw_params, hw_stats, dev = no_hardware
    done, status = train_chunk(x, y, sample_idx, offset, w1, w2, clamped, ACT_LEAKY_RELU, 0.1,
                               LOSS_MSE, 0.05, 0.05, k1, k2, -1.0, meter_i, meter_f, c1, c2,
                               hw_params, hw_stats, dev, 0)
    assert (done, status) == (5, STATUS_OK)

    full_in, full_out = w_in.copy(), w_out.copy()
    ref_i, ref_f = np.zeros(2, np.int64), np.zeros((2, N_METER_F))
    rc_in, rc_out = np.zeros(w_in.shape, np.int64), np.zeros(w_out.shape, np.int64)
    train_full_ref(x, y, sample_idx, full_in, full_out, units, ACT_LEAKY_RELU, 0.1, LOSS_MSE,
                   0.05, 0.05, k1, k2, -1.0, ref_i, ref_f, rc_in, rc_out)

    frozen = np.setdiff1d(np.arange(hidden), units)
    np.testing.assert_array_equal(full_in[:, frozen], w_in[:, frozen])
    np.testing.assert_array_equal(full_out[frozen], w_out[frozen])
    np.testing.assert_allclose(w1, full_in[:, units], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w2, full_out[units], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(c1, rc_in[:, units])
    np.testing.assert_array_equal(c2, rc_out[units])
    assert not rc_in[:, frozen].any() and not rc_out[frozen].any()
    np.testing.assert_array_equal(meter_i, ref_i)
    np.testing.assert_allclose(meter_f, ref_f, rtol=1e-5)


# ============================================================================ train() end to end

def _tiny_dataset(seed, n_in=13, n_train=40, n_test=30):
    rng = np.random.default_rng(seed)
    return Dataset("tiny", rng.normal(0, 1, (n_train, n_in)).astype(F32),
                   rng.integers(0, N_OUT, n_train).astype(np.int64),
                   rng.normal(0, 1, (n_test, n_in)).astype(F32),
                   rng.integers(0, N_OUT, n_test).astype(np.int64))


@pytest.mark.parametrize("rule", [Backprop(), TopFraction(p=0.2), TopFraction(p=0.1, p_out=0.3),
                                  Path(k=3), Path(k=3, selection="first"),
                                  Combined(k=4, p=0.25), Combined(k=None, k_fraction=0.5, p=0.5)],
                         ids=repr)
def test_train_matches_full_network_reference(rule):
    """``train`` (plastic part, offsets, k per layer, chunks, write-back, count maps, energy
    summary) against the whole-network reference fed the same initial weights and samples."""
    data = _tiny_dataset(1)
    config = RunConfig(rule=rule, hidden=7, seed=5, lr=0.05, max_epochs=2.0, eval_every=25,
                       target_accuracy=1.0, init_std=0.3)
    result = train(config, data=data)
    assert result.status == "not_converged" and result.samples == 80

    init_rng, path_rng, sample_rng, _ = _streams(config.seed)
    n_train, n_in = data.x_train.shape
    net = Network.initial(n_in, config.hidden, N_OUT, config.init_std, init_rng)
    units = rule.plastic_units(config.hidden, path_rng)
    np.testing.assert_array_equal(result.plastic_units, units)
    p_in, p_out = rule.fractions()
    k1 = writes_per_sample(p_in, n_in * (len(units) - 1))
    k2 = writes_per_sample(p_out, len(units) * N_OUT)
    w_in, w_out = net.w_in.copy(), net.w_out.copy()
    ref_i, ref_f = np.zeros(2, np.int64), np.zeros((2, N_METER_F))
    c_in, c_out = np.zeros(w_in.shape, np.int64), np.zeros(w_out.shape, np.int64)
    done = 0
    while done < 80:
        idx = sample_rng.integers(0, n_train, size=min(25, 80 - done), dtype=np.int64)
        train_full_ref(data.x_train, data.y_train, idx, w_in, w_out, units, ACT_LEAKY_RELU,
                       0.1, LOSS_MSE, 0.05, 0.05, k1, k2, -1.0, ref_i, ref_f, c_in, c_out)
        done += idx.size

    np.testing.assert_allclose(result.network.w_in, w_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.network.w_out, w_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.write_counts[0], c_in)
    np.testing.assert_array_equal(result.write_counts[1], c_out)
    e = result.energy
    assert [e["M0"]["input"], e["M0"]["output"]] == ref_i.tolist()
    np.testing.assert_allclose([e["M1"]["input"], e["M1"]["output"]], ref_f[:, MF_M1],
                               rtol=1e-5)
    np.testing.assert_allclose([e["M1_potentiation"]["input"], e["M1_potentiation"]["output"]],
                               ref_f[:, MF_M1_POT], rtol=1e-5)
    w_start = (net.w_in, net.w_out)
    for li, layer in enumerate(("input", "output")):
        diff = np.abs(result.network.w_in.astype(np.float64) - w_start[0]) if li == 0 else \
            np.abs(result.network.w_out.astype(np.float64) - w_start[1])
        assert e["M0_min"][layer] == np.count_nonzero(diff)
        np.testing.assert_allclose(e["M1_min"][layer], diff.sum(), rtol=1e-12)


def test_train_relu_small_path_with_silent_samples():
    ok, why = _run_isolated(
        "from neuroenergy.data import Dataset\n"
        "from neuroenergy.config import RunConfig\n"
        "from neuroenergy.rules import Combined\n"
        "from neuroenergy.train import train\n"
        "rng = np.random.default_rng(0)\n"
        "d = Dataset('t', rng.normal(0, 1, (200, 30)).astype(np.float32),\n"
        "            rng.integers(0, 10, 200), rng.normal(0, 1, (50, 30)).astype(np.float32),\n"
        "            rng.integers(0, 10, 50))\n"
        "for seed in range(5):\n"
        "    r = train(RunConfig(rule=Combined(k=1, p=0.5), activation='relu', hidden=4,\n"
        "                        seed=seed, max_epochs=2, eval_every=20,\n"
        "                        target_accuracy=1.0), data=d)\n"
        "    assert r.write_counts[0].sum() == r.energy['M0']['input']\n")
    assert ok, why


def test_train_reports_divergence():
    """A run whose outputs stop being finite stops and says so (no NaN accuracy reported as
    a result, no exception)."""
    data = _tiny_dataset(2)
    data.x_train[:] *= 100.0
    result = train(RunConfig(hidden=6, lr=10.0, init_std=3.0, max_epochs=5.0, eval_every=20,
                             target_accuracy=1.0), data=data)
    assert result.status == "diverged" and not result.converged
    assert result.diverged_at_sample is not None and 0 < result.diverged_at_sample <= 200
    assert np.isnan(result.test_accuracy)
    assert result.to_dict()["status"] == "diverged"
