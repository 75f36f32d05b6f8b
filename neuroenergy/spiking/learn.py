"""Spiking training with the study's restriction rules as gates, metered like the rate kernels.

The network is 785 input neurons (784 pixels and a bias input) -> hidden integrate-and-fire
neurons (unit 0 fires every step: the output bias) -> 10 output neurons, all non-leaky, reset
by subtraction. Each presentation lasts ``duration_ms``; at its end (a ``run_regularly`` at
the boundary, before the next image moves any neuron) every synapse computes the spiking
counterpart of per-sample SGD:

- eligibility: the presynaptic spike count n_pre / steps (a rate in spikes per step);
- output error: err_o = target_o - n_o / steps (target ``target_rate`` for the label, else 0);
- hidden error: fb_j = sum_o w_jo err_o through the output weights (a summed variable), times
  the surrogate derivative 1 if unit j fired during the presentation, else 0;
- dw = lr * eligibility * error, written only where the rule's gate allows it.

Gates: ``backprop`` writes every nonzero dw; ``path`` only the synapses of the path's units
(a constant ``plastic`` flag per synapse, so frozen synapses cannot change); ``top-fraction``
writes |dw| > theta inside the run, a per-layer **threshold** recalibrated between runs so
that the fraction written tracks p (not an exact per-sample top-k, which would need a global
sort inside the run); ``combined`` is the path with that threshold among its synapses.

Every applied write adds 1 to the synapse's ``m0`` and |dw| to ``m1``: the same meter
semantics as the rate kernels (``neuroenergy.energy.EnergyMeter``). One Brian2 ``run()``
covers a chunk of presentations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import __version__
from .._validate import check_choice, check_number
from ..errors import ConfigError
from ..rules import Backprop, Rule
from ._backend import DEFAULT_TARGET, check_target
from .convert import steps_of

INPUT_CODINGS = ("regular", "poisson")
OWNER = "LearnConfig"
N_OUT = 10


@dataclass(frozen=True)
class LearnConfig:
    """Everything that defines one spiking training run.

    Attributes
    ----------
    rule : the plasticity rule (``neuroenergy.rules``) used as a gate
    hidden : hidden neurons, the bias unit (unit 0) included
    samples : training presentations (drawn with replacement, as the rate trainer does)
    seed : initial weights, path choice and sampling (numpy), and Brian2's seed
    duration_ms, dt_ms : presentation time and time step (ms)
    input : 'regular' (integrate-and-fire encoders: deterministic spike trains) or 'poisson'
    max_rate_hz : firing rate of a pixel of value 1 and of the bias input
    lr, lr_out : learning rate of the input layer, and of the output layer (default: lr)
    target_rate : the label's target output rate, spikes per time step (others: 0)
    init_std : std of the Gaussian initial weights
    chunk : presentations per Brian2 ``run()``; metering, evaluation and the top-fraction
        threshold update happen between runs
    eval_images : test images presented as spikes before and after training (0: none)
    target : Brian2 target ('numpy', 'cython', 'cpp_standalone')
    target_accuracy : for ``samples_to_target`` in the results
    hardware : hardware preset names whose write costs are priced (per-write statistics,
        taken from weight snapshots at every presentation boundary)
    """

    rule: Rule = field(default_factory=Backprop)
    hidden: int = 100
    samples: int = 5000
    seed: int = 0
    duration_ms: float = 50.0
    dt_ms: float = 1.0
    input: str = "regular"
    max_rate_hz: float = 200.0
    lr: float = 0.2
    lr_out: Optional[float] = None
    target_rate: float = 0.5
    init_std: float = 0.03
    chunk: int = 500
    eval_images: int = 1000
    target: str = DEFAULT_TARGET
    target_accuracy: float = 0.85
    hardware: tuple = ()

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        if not isinstance(self.rule, Rule):
            raise ConfigError(f"The 'rule' parameter of {OWNER} must be a Rule object. "
                              f"Got {self.rule!r} instead.")
        set_("hidden", check_number(self.hidden, "hidden", OWNER, 2, 100_000, integer=True))
        set_("samples", check_number(self.samples, "samples", OWNER, 1, 10_000_000,
                                     integer=True))
        set_("seed", check_number(self.seed, "seed", OWNER, 0, 2**31 - 1, integer=True))
        set_("dt_ms", check_number(self.dt_ms, "dt_ms", OWNER, 0.0, 10.0, lo_open=True))
        set_("duration_ms", check_number(self.duration_ms, "duration_ms", OWNER, 0.0, 10000.0,
                                         lo_open=True))
        steps_of(self.duration_ms, self.dt_ms, "duration_ms")
        check_choice(self.input, "input", OWNER, INPUT_CODINGS)
        set_("max_rate_hz", check_number(self.max_rate_hz, "max_rate_hz", OWNER, 0.0,
                                         1000.0 / self.dt_ms, lo_open=True))
        set_("lr", check_number(self.lr, "lr", OWNER, 0.0, 100.0, lo_open=True))
        if self.lr_out is not None:
            set_("lr_out", check_number(self.lr_out, "lr_out", OWNER, 0.0, 100.0,
                                        lo_open=True))
        set_("target_rate", check_number(self.target_rate, "target_rate", OWNER, 0.0, 1.0,
                                         lo_open=True))
        set_("init_std", check_number(self.init_std, "init_std", OWNER, 0.0, 10.0))
        set_("chunk", check_number(self.chunk, "chunk", OWNER, 1, 1_000_000, integer=True))
        set_("eval_images", check_number(self.eval_images, "eval_images", OWNER, 0, 10000,
                                         integer=True))
        check_target(self.target, OWNER)
        set_("target_accuracy", check_number(self.target_accuracy, "target_accuracy", OWNER,
                                             0.0, 1.0, lo_open=True))
        hw = self.hardware
        if isinstance(hw, str):
            hw = tuple(h.strip() for h in hw.split(",") if h.strip())
        set_("hardware", tuple(hw))
        if self.hardware:
            from ..hardware import check_presets
            check_presets(self.hardware)
        self.rule.validate(self.hidden)

    @property
    def steps(self) -> int:
        return steps_of(self.duration_ms, self.dt_ms, "duration_ms")

    @property
    def rate_per_step(self) -> float:
        """Spikes per time step of a pixel of value 1 (and of the bias input)."""
        return self.max_rate_hz * self.dt_ms * 1e-3

    @property
    def lr_output(self) -> float:
        return self.lr if self.lr_out is None else self.lr_out

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "rule"}
        d["hardware"] = list(self.hardware)
        d["rule"] = {"name": self.rule.name, **self.rule.params()}
        return d

    def replace(self, **changes) -> "LearnConfig":
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(changes)
        return type(self)(**d)


def encode(pixels: np.ndarray, rate_per_step: float) -> np.ndarray:
    """Input rates (spikes per step) of 785 neurons: pixel x rate, and the bias input at the
    full rate. ``pixels`` are in [0, 1], shape (n, 784); returns float64 (n, 785)."""
    n = len(pixels)
    return np.concatenate([np.asarray(pixels, np.float64), np.ones((n, 1))], 1) * rate_per_step


def rate_equivalent_scores(w_in, w_out, rates_in) -> np.ndarray:
    """The spiking network's long-presentation limit: hidden rates clip(r_in @ W_in, 0, 1)
    (unit 0 at 1 spike per step), output drive r_h @ W_out, shape (n, 10)."""
    h = np.clip(rates_in @ w_in, 0.0, 1.0)
    h[:, 0] = 1.0
    return h @ w_out


def rate_equivalent_dw(w_in, w_out, rates_in, labels, target_rate):
    """Expected per-sample |dw| of both layers for a few samples (threshold calibration).
    Returns two float64 arrays (n, n_in, hidden) and (n, hidden, 10)."""
    h = np.clip(rates_in @ w_in, 0.0, 1.0)
    h[:, 0] = 1.0
    rate_out = np.clip(h @ w_out, 0.0, 1.0)
    err = -rate_out
    err[np.arange(len(labels)), labels] += target_rate
    delta = (err @ w_out.T) * (h > 0)
    delta[:, 0] = 0.0
    dw_in = np.abs(rates_in[:, :, None] * delta[:, None, :])
    dw_out = np.abs(h[:, :, None] * err[:, None, :])
    return dw_in, dw_out


# ----------------------------------------------------------------------------- training

THETA_STEP_LIMIT = 4.0  # largest factor by which one chunk may move a threshold
RUNTIME_BLOCK = 5000    # presentations per runtime network (TimedArray memory)
CALIBRATION_IMAGES = 16


@dataclass
class SpikingTrainResult:
    """Outcome of one spiking training run (see :meth:`to_dict` for the JSON summary).

    ``w_in`` / ``w_out`` act on input *rates* (:func:`encode`), with ReLU hidden units whose
    unit 0 is clamped to 1; ``curves`` are sampled after every chunk; ``energy`` follows
    :meth:`neuroenergy.energy.EnergyMeter.summary`.
    """

    config: LearnConfig
    samples: int
    rate_equivalent_accuracy: float
    spiking_accuracy: Optional[float]
    initial_rate_equivalent_accuracy: float
    initial_spiking_accuracy: Optional[float]
    samples_to_target: Optional[int]
    curves: dict
    energy: dict
    write_counts: tuple
    plastic_units: np.ndarray
    w_in: np.ndarray
    w_out: np.ndarray
    write_fraction: dict
    thresholds: dict
    simulation_seconds: float
    build_seconds: float
    total_seconds: float
    hardware: dict = field(default_factory=dict)
    version: str = __version__

    @property
    def presentations_per_second(self) -> float:
        return self.samples / self.simulation_seconds if self.simulation_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "network": "spiking", "rule": cfg.rule.name, "rule_params": cfg.rule.params(),
            "hidden": cfg.hidden, "seed": cfg.seed, "samples": self.samples,
            "target": cfg.target, "test_accuracy": self.rate_equivalent_accuracy,
            "rate_equivalent_accuracy": self.rate_equivalent_accuracy,
            "spiking_accuracy": self.spiking_accuracy,
            "initial_rate_equivalent_accuracy": self.initial_rate_equivalent_accuracy,
            "initial_spiking_accuracy": self.initial_spiking_accuracy,
            "eval_images": cfg.eval_images, "target_accuracy": cfg.target_accuracy,
            "samples_to_target": self.samples_to_target, "energy": self.energy,
            "hardware": self.hardware, "write_fraction": self.write_fraction,
            "thresholds": self.thresholds,
            "presentations_per_second": self.presentations_per_second,
            "simulation_seconds": self.simulation_seconds,
            "build_seconds": self.build_seconds, "total_seconds": self.total_seconds,
            "config": cfg.to_dict(), "version": self.version,
        }


def train_spiking(config: LearnConfig, raw=None, progress=None) -> SpikingTrainResult:
    """Train a spiking network on MNIST with ``config.rule`` as the gate.

    Parameters
    ----------
    config : LearnConfig
    raw : a :class:`neuroenergy.data.RawDataset` (default: ``load_raw('mnist')``)
    progress : called after every chunk with a dict (samples, accuracy, M0, M1, ...)
    """
    from ..data import load_raw
    from ._backend import Session
    from .learn_model import LearningNet
    from .learn_hardware import HardwarePricer

    t_total = time.perf_counter()
    raw = load_raw("mnist") if raw is None else raw
    cfg = config
    rate = cfg.rate_per_step
    train_px = raw.train_images
    test_rates = encode(raw.test_images / 255.0, rate)
    init_rng, path_rng, sample_rng = [np.random.default_rng(s) for s in
                                      np.random.SeedSequence(cfg.seed).spawn(3)]
    n_in, hidden = train_px.shape[1] + 1, cfg.hidden
    w_in = init_rng.normal(0.0, cfg.init_std, (n_in, hidden))
    w_out = init_rng.normal(0.0, cfg.init_std, (hidden, N_OUT))
    w_in[:, 0] = 0.0  # the bias unit has no input synapses
    w_in_start, w_out_start = w_in.copy(), w_out.copy()
    units = cfg.rule.plastic_units(hidden, path_rng)
    plastic_in = np.zeros((n_in, hidden))
    plastic_in[:, units] = 1.0
    plastic_in[:, 0] = 0.0
    plastic_out = np.zeros((hidden, N_OUT))
    plastic_out[units, :] = 1.0
    n_plastic = (int(plastic_in.sum()), int(plastic_out.sum()))
    fractions = cfg.rule.fractions()
    sample_idx = sample_rng.integers(0, len(train_px), size=cfg.samples)

    def batch(idx):
        targets = np.zeros((len(idx), N_OUT))
        targets[np.arange(len(idx)), raw.train_labels[idx]] = cfg.target_rate
        return encode(train_px[idx] / 255.0, rate), targets

    theta = _initial_thresholds(w_in, w_out, plastic_in, plastic_out, fractions, cfg,
                                batch(sample_rng.integers(0, len(train_px),
                                                          size=CALIBRATION_IMAGES)))
    theta_start = list(theta)
    pricer = HardwarePricer(cfg.hardware, hidden, n_in)
    m0_maps = [None, None]
    totals = np.zeros((2, 3))  # layer x (M0, M1, M1 potentiation)
    curves = {k: [] for k in ("samples", "accuracy", "online_accuracy", "M0_input",
                              "M0_output", "M1_input", "M1_output", "seconds",
                              "theta_input", "theta_output")}
    sim_seconds = 0.0
    chunk = min(cfg.chunk, cfg.samples)
    block_size = chunk if (cfg.hardware or cfg.target == "cpp_standalone") else \
        max(chunk, min(RUNTIME_BLOCK, cfg.samples))
    initial_rate_acc = _rate_accuracy(w_in, w_out, test_rates, raw.test_labels)
    initial_spiking = None
    with Session(cfg.target, cfg.seed) as session:
        standalone = session.standalone
        net = None
        if standalone:
            rates0, targets0 = batch(sample_idx[:chunk])
            net = LearningNet(session, rates0, targets0, w_in, w_out, plastic_in, plastic_out,
                              cfg, record_weights=pricer.active)
        if cfg.eval_images:
            initial_spiking = _spiking_accuracy(session, net, w_in, w_out, test_rates,
                                                raw.test_labels, cfg)
        done, block_start, block_end = 0, 0, 0
        last_read = None
        while done < cfg.samples:
            n = min(chunk, cfg.samples - done)
            idx = sample_idx[done:done + n]
            if standalone:
                rates_c, targets_c = batch(idx)
                active = np.r_[np.ones(n), np.zeros(chunk - n)]
                pad = chunk - n
                rates_c = np.vstack([rates_c, np.zeros((pad, n_in))])
                targets_c = np.vstack([targets_c, np.zeros((pad, N_OUT))])
                sim_seconds += net.run_standalone(rates_c, targets_c, active, w_in, w_out,
                                                  theta)
                last_read = None  # every standalone run starts its meters at zero
            else:
                if done >= block_end:
                    block_start, block_end = done, min(cfg.samples, done + block_size)
                    rates_b, targets_b = batch(sample_idx[done:block_end])
                    net = LearningNet(session, rates_b, targets_b, w_in, w_out, plastic_in,
                                      plastic_out, cfg, record_weights=pricer.active)
                    net.s_in.theta, net.s_out.theta = theta
                    last_read = None
                sim_seconds += net.run_runtime(n, last=done + n == block_end)
            w_in, w_out = net.weights(w_in, w_out)
            meters = net.meters()
            delta, last_read = _meter_delta(meters, last_read)
            for layer in range(2):
                m0_maps[layer] = delta["m0"][layer] if m0_maps[layer] is None else \
                    m0_maps[layer] + delta["m0"][layer]
                totals[layer] += [delta["m0"][layer].sum(), delta["m1"][layer].sum(),
                                  delta["m1pot"][layer].sum()]
            if pricer.active:
                pricer.tally(net, n)
            counts, v = net.readout()
            # record k is presentation k of the network's run(s); a runtime chunk's last
            # presentation is read out at the start of the next chunk
            lo = 0 if standalone else done - block_start
            hi = min(lo + n, len(counts))
            online = _online_accuracy(counts[lo:hi], v[lo:hi],
                                      raw.train_labels[idx[:max(hi - lo, 0)]])
            done += n
            theta = _update_thresholds(theta, delta, n, n_plastic, fractions)
            if not standalone:
                net.s_in.theta, net.s_out.theta = theta
            acc = _rate_accuracy(w_in, w_out, test_rates, raw.test_labels)
            point = {"samples": done, "accuracy": acc, "online_accuracy": online,
                     "M0_input": int(totals[0, 0]), "M0_output": int(totals[1, 0]),
                     "M1_input": float(totals[0, 1]), "M1_output": float(totals[1, 1]),
                     "seconds": sim_seconds, "theta_input": theta[0],
                     "theta_output": theta[1]}
            for key, value in point.items():
                curves[key].append(value)
            if progress is not None:
                progress(dict(point, max_samples=cfg.samples))
        final_spiking = None
        if cfg.eval_images:
            final_spiking = _spiking_accuracy(session, net, w_in, w_out, test_rates,
                                              raw.test_labels, cfg)
        build_seconds = session.setup_seconds
    energy, counts = _energy_summary(totals, m0_maps, net, w_in_start, w_out_start, w_in,
                                     w_out, units)
    curves = {k: np.asarray(v) for k, v in curves.items()}
    reached = np.flatnonzero(curves["accuracy"] >= cfg.target_accuracy)
    made = {layer: float(totals[li, 0] / (cfg.samples * n_plastic[li]))
            if n_plastic[li] else 0.0 for li, layer in enumerate(("input", "output"))}
    return SpikingTrainResult(
        config=cfg, samples=cfg.samples,
        rate_equivalent_accuracy=float(curves["accuracy"][-1]),
        spiking_accuracy=final_spiking, initial_rate_equivalent_accuracy=initial_rate_acc,
        initial_spiking_accuracy=initial_spiking,
        samples_to_target=int(curves["samples"][reached[0]]) if reached.size else None,
        curves=curves, energy=energy, write_counts=counts, plastic_units=units,
        w_in=w_in, w_out=w_out,
        write_fraction={"target": {"input": fractions[0], "output": fractions[1]},
                        "measured": made},
        thresholds={"start": {"input": theta_start[0], "output": theta_start[1]},
                    "end": {"input": theta[0], "output": theta[1]},
                    "kind": "threshold inside the run, recalibrated between runs"
                    if min(fractions) < 1.0 else "none"},
        simulation_seconds=sim_seconds, build_seconds=build_seconds,
        total_seconds=time.perf_counter() - t_total,
        hardware=pricer.report(counts, cfg.samples))


def _rate_accuracy(w_in, w_out, rates, labels) -> float:
    scores = rate_equivalent_scores(w_in, w_out, rates)
    if not np.all(np.isfinite(scores)):
        return float("nan")
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def _predict(counts, v) -> np.ndarray:
    """Most output spikes; ties go to the highest membrane potential."""
    tied = counts == counts.max(axis=1, keepdims=True)
    return np.argmax(np.where(tied, v, -np.inf), axis=1)


def _online_accuracy(counts, v, labels) -> float:
    """Accuracy of the training presentations themselves (before their own update)."""
    if len(counts) == 0:
        return float("nan")
    return float(np.mean(_predict(counts, v) == labels))


def _spiking_accuracy(session, net, w_in, w_out, test_rates, labels, cfg) -> float:
    """Present the first ``cfg.eval_images`` test images as spikes, without learning."""
    from .learn_model import LearningNet
    n = cfg.eval_images
    rates, y = test_rates[:n], labels[:n]
    zeros_t = np.zeros((n, N_OUT))
    frozen_in, frozen_out = np.zeros(w_in.shape), np.zeros(w_out.shape)
    if session.standalone:
        preds = []
        size = net.n_images
        for start in range(0, n, size):
            r = rates[start:start + size]
            pad = size - len(r)
            net.run_standalone(np.vstack([r, np.zeros((pad, r.shape[1]))]),
                               np.zeros((size, N_OUT)), np.r_[np.ones(len(r)), np.zeros(pad)],
                               w_in, w_out, (0.0, 0.0), learn=False)
            counts, v = net.readout()
            preds.append(_predict(counts[:len(r)], v[:len(r)]))
        pred = np.concatenate(preds)
    else:
        eval_net = LearningNet(session, rates, zeros_t, w_in, w_out, frozen_in, frozen_out,
                               cfg, learn=False)
        eval_net.run_runtime(n, last=True)
        counts, v = eval_net.readout()
        pred = _predict(counts, v)
    return float(np.mean(pred == y))


def _initial_thresholds(w_in, w_out, plastic_in, plastic_out, fractions, cfg, calibration):
    """Per-layer |dw| threshold: the (1 - p) quantile of the rate-equivalent |dw| of the
    plastic synapses over a few training images (0 where every update is written)."""
    theta = [0.0, 0.0]
    if min(fractions) >= 1.0:
        return theta
    rates, targets = calibration
    labels = np.argmax(targets, axis=1)
    dws = rate_equivalent_dw(w_in, w_out, rates, labels, cfg.target_rate)
    for layer, (dw, mask, p) in enumerate(zip(dws, (plastic_in, plastic_out), fractions)):
        if p < 1.0:
            values = dw[:, mask > 0].ravel()
            theta[layer] = float(np.quantile(values, 1.0 - p)) if values.size else 0.0
    return theta


def _update_thresholds(theta, delta, n, n_plastic, fractions):
    """Move each threshold by the ratio of measured to wanted write fraction (bounded)."""
    new = list(theta)
    for layer in range(2):
        p = fractions[layer]
        if p >= 1.0 or n_plastic[layer] == 0 or n == 0:
            continue
        made = delta["m0"][layer].sum() / (n * n_plastic[layer])
        factor = THETA_STEP_LIMIT if made > p * THETA_STEP_LIMIT else \
            max(made / p, 1.0 / THETA_STEP_LIMIT)
        new[layer] = float(theta[layer] * factor) if theta[layer] > 0 else 1e-6
    return new


def _meter_delta(meters: dict, last_read):
    """What the synapses' accumulators gained since ``last_read`` (None: since zero)."""
    if last_read is None:
        delta = meters
    else:
        delta = {k: tuple(a - b for a, b in zip(meters[k], last_read[k])) for k in meters}
    return delta, meters


def _energy_summary(totals, m0_maps, net, w_in_start, w_out_start, w_in, w_out, units):
    """The EnergyMeter summary (same keys and semantics as rate training) and the full
    write-count maps (n_in, hidden), (hidden, 10)."""
    from ..energy import EnergyMeter
    from ..kernels import MF_M1, MF_M1_POT
    meter = EnergyMeter(w_in_start, w_out_start, units)
    counts = (np.zeros(w_in_start.shape, np.int32), np.zeros(w_out_start.shape, np.int32))
    for layer, idx in enumerate((net.idx_in, net.idx_out)):
        meter.writes[layer] = int(round(totals[layer, 0]))
        meter.sums[layer, MF_M1] = totals[layer, 1]
        meter.sums[layer, MF_M1_POT] = totals[layer, 2]
        counts[layer][idx] = m0_maps[layer]
    meter.counts_plastic = (counts[0][:, units], counts[1][units, :])
    return meter.summary(w_in, w_out), counts
