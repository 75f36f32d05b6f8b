"""Conversion and spiking inference on the numpy target (small network, real MNIST)."""
import numpy as np
import pytest

from neuroenergy.errors import ConfigError
from neuroenergy.network import Network
from neuroenergy.spiking import SpikingConfig, convert, evaluate_conversion, simulate
from neuroenergy.spiking.energy import inference_energy, rate_macs_per_image

from spiking_reference import simulate_converted

# brian2 2.9 parses equations with pyparsing arguments that pyparsing 3.3 deprecates
pytestmark = [pytest.mark.brian2,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing")]
brian2 = pytest.importorskip("brian2")

NUMPY = dict(target="numpy")


@pytest.fixture(scope="module")
def conv(small_net, mnist):
    return convert(small_net, mnist.x_train[:5000])


def test_paired_conversion_is_exact_in_the_rate_limit(small_net, conv, mnist):
    """Without clipping, the paired channels reproduce the leaky-ReLU network's argmax."""
    x = mnist.x_test[:2000]
    ann = np.argmax(small_net.logits(x), axis=1)
    snn_limit = np.argmax(conv.expected_scores(x), axis=1)
    assert np.mean(ann == snn_limit) >= 0.99
    assert conv.n_channels == 2 * (small_net.hidden - 1)
    assert set(conv.lambdas) == {"hidden_pos", "hidden_neg", "output"}


def test_drop_mode_is_a_relu_network(small_net, mnist):
    conv = convert(small_net, mnist.x_train[:5000], leak_mode="drop")
    assert conv.n_channels == small_net.hidden - 1
    relu = Network(small_net.w_in, small_net.w_out, "relu")
    x = mnist.x_test[:1000]
    assert np.mean(np.argmax(conv.expected_scores(x), 1) == np.argmax(relu.logits(x), 1)) > 0.99


def test_numpy_target_matches_the_reference_simulation(conv, mnist):
    x = mnist.x_test[:12]
    cfg = SpikingConfig(duration_ms=30, readouts_ms=(10, 20), **NUMPY)
    sim = simulate(conv, x, cfg)
    counts, v, hidden = simulate_converted(conv, x, cfg.steps, list(cfg.readout_steps))
    assert sim.readout_ms == (10.0, 20.0, 30.0)
    np.testing.assert_array_equal(sim.counts, counts)
    np.testing.assert_array_equal(sim.hidden_spikes, hidden)
    np.testing.assert_allclose(sim.v, v, atol=1e-9)
    assert np.all(sim.input_spikes == 0)


def test_conversion_accuracy_close_to_the_rate_network(small_net, mnist):
    report = evaluate_conversion(small_net, mnist, SpikingConfig(duration_ms=100,
                                                                 norm_images=5000, **NUMPY),
                                 n_images=60)
    assert report["snn_accuracy"] >= report["ann_accuracy"] - 0.05
    assert report["duration_ms"] == 100.0
    assert report["spikes_per_image"] > 0
    assert report["synaptic_ops_per_image"] == pytest.approx(
        10 * report["rows"][-1]["hidden_spikes_per_image"])
    assert set(report["energy_j_per_image"]) == {"rate_mac_45nm", "spiking_add_45nm", "loihi",
                                                 "truenorth"}


def test_poisson_input_is_deterministic_with_brians_seed(conv, mnist):
    x = mnist.x_test[:5]
    cfg = SpikingConfig(duration_ms=20, input="poisson", seed=3, **NUMPY)
    a, b = simulate(conv, x, cfg), simulate(conv, x, cfg)
    c = simulate(conv, x, cfg.replace(seed=4))
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.input_spikes, b.input_spikes)
    assert a.input_spikes.sum() > 0
    assert not np.array_equal(a.input_spikes, c.input_spikes)


def test_poisson_coding_recovers_the_drive_in_expectation(conv, mnist):
    x = mnist.x_test[:50].astype(np.float64)
    prob, w_syn, current = conv.poisson_coding(x, 0.5)
    assert prob.min() >= 0 and prob.max() <= 0.5
    # the preprocessing's noise (std 0.001) is the only difference
    np.testing.assert_allclose(prob @ w_syn + current, conv.drive(x), atol=0.05)


def test_energy_profiles():
    assert rate_macs_per_image(785, 100) == 785 * 99 + 100 * 10
    e = inference_energy(1000, 2000, 0)
    assert e["rate_mac_45nm"] == pytest.approx(4.6e-9)
    assert e["spiking_add_45nm"] == pytest.approx(1.8e-9)
    assert e["loihi"] == pytest.approx(2000 * 23.6e-12)
    assert e["truenorth"] == pytest.approx(2000 * 26e-12)
    assert inference_energy(0, 0, 10)["loihi"] == pytest.approx(10 * 4.6e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(duration_ms=10.5), "whole number"),
    (dict(dt_ms=0), "'dt_ms' parameter of SpikingConfig"),
    (dict(input="spikes"), "'input' parameter of SpikingConfig must be one of 'current', "
                           "'poisson'"),
    (dict(target="gpu"), "'target' parameter of SpikingConfig must be one of 'numpy', "
                         "'cython', 'cpp_standalone'"),
    (dict(readouts_ms=(150,)), "'readouts_ms' parameter of SpikingConfig"),
    (dict(max_rate_hz=5000), "'max_rate_hz' parameter of SpikingConfig"),
])
def test_bad_configuration_messages(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SpikingConfig(**kwargs)


def test_bad_network_and_inputs(small_net, conv, mnist):
    sig = Network(small_net.w_in, small_net.w_out, "sigmoid")
    with pytest.raises(ConfigError, match="Only ReLU-like networks convert"):
        convert(sig, mnist.x_train[:100])
    with pytest.raises(ConfigError, match=r"x_norm must have shape \(n >= 1, 785\)"):
        convert(small_net, mnist.x_train[:10, :100])
    with pytest.raises(ConfigError, match=r"x must have shape \(n >= 1, 785\)"):
        simulate(conv, mnist.x_test[:3, :10], SpikingConfig(**NUMPY))
