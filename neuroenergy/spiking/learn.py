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
    from .learn_loop import SpikingTrainer
    raw = load_raw("mnist") if raw is None else raw
    return SpikingTrainer(config, raw).run(progress)
