"""Conversion of a trained rate network into integrate-and-fire neurons, and spiking inference
of many images in one Brian2 ``run()``.

Choices (see ``docs/spiking.md`` for their measured cost):

- every hidden unit becomes a non-leaky integrate-and-fire neuron, threshold 1, **reset by
  subtraction**; the output layer is made of the same neurons and read out by spike counts
  (ties broken by the membrane potential left at the end of the presentation);
- **data-based normalisation**: lambda = the 99.9th percentile of the positive activations of
  each layer on training images; a hidden neuron's drive per time step is a / lambda, so its
  firing probability per step approximates the normalised activation;
- **leaky ReLU, slope 0.1**: ``leak_mode='paired'`` (default) gives every hidden unit a second
  neuron driven by -a, whose spikes reach the outputs with weight -0.1 w: the pair computes
  relu(a) - 0.1 relu(-a) exactly in expectation, at the price of twice the hidden neurons;
  ``'drop'`` keeps only the positive neuron (a ReLU network: measured cost below);
- **bias unit**: hidden unit 0 is clamped to 1, so its outgoing weights are the output biases;
  it becomes a constant current into the output neurons (no neuron, no synaptic events);
- **input**: ``'current'`` feeds the first layer's analog drive x @ W_in as a constant current
  (computed once per image: 785 x hidden MACs, counted in the energy), ``'poisson'`` makes
  784 Poisson neurons firing at pixel x max_rate; the preprocessing's mean shift and the bias
  column then become a constant current.

References
----------
Diehl, Neil, Binas, Cook, Liu, Pfeiffer, "Fast-classifying, high-accuracy spiking deep
networks through weight and threshold balancing", IJCNN 2015.
Rueckauer, Lungu, Hu, Pfeiffer, Liu, "Conversion of continuous-valued deep networks to
efficient event-driven networks for image classification", Front. Neurosci. 11:682 (2017).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice, check_number
from ..errors import ConfigError
from ..network import BIAS_UNIT, Network
from ._backend import DEFAULT_TARGET, Session, check_target

INPUT_CODINGS = ("current", "poisson")
LEAK_MODES = ("paired", "drop")
OWNER = "SpikingConfig"
N_OUT = 10


@dataclass(frozen=True)
class SpikingConfig:
    """How a converted network is simulated.

    Attributes
    ----------
    duration_ms : presentation time of one image (ms); a multiple of ``dt_ms``
    dt_ms : simulation time step (ms); the integrate-and-fire neurons move once per step
    input : 'current' (analog drive as a constant current) or 'poisson' (Poisson spikes)
    leak_mode : 'paired' (a negative neuron per hidden unit) or 'drop' (treat as ReLU)
    percentile : percentile of positive activations used as each layer's scale lambda
    max_rate_hz : Poisson rate of a pixel of value 1 ('poisson' only); rate x dt <= 1
    norm_images : training images used for the normalisation percentiles
    target : Brian2 target: 'numpy', 'cython' or 'cpp_standalone'
    seed : Brian2 seed (Poisson input); streams differ between targets
    readouts_ms : extra read-out times within each presentation (ms), e.g. (10, 20, 50):
        one run then gives the result of every shorter presentation time as well
    """

    duration_ms: float = 100.0
    dt_ms: float = 1.0
    input: str = "current"
    leak_mode: str = "paired"
    percentile: float = 99.9
    max_rate_hz: float = 1000.0
    norm_images: int = 10000
    target: str = DEFAULT_TARGET
    seed: int = 0
    readouts_ms: tuple = field(default_factory=tuple)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("dt_ms", check_number(self.dt_ms, "dt_ms", OWNER, 0.0, 10.0, lo_open=True))
        set_("duration_ms", check_number(self.duration_ms, "duration_ms", OWNER, 0.0, 10000.0,
                                         lo_open=True))
        check_choice(self.input, "input", OWNER, INPUT_CODINGS)
        check_choice(self.leak_mode, "leak_mode", OWNER, LEAK_MODES)
        set_("percentile", check_number(self.percentile, "percentile", OWNER, 0.0, 100.0,
                                        lo_open=True))
        set_("max_rate_hz", check_number(self.max_rate_hz, "max_rate_hz", OWNER, 0.0,
                                         1000.0 / self.dt_ms, lo_open=True))
        set_("norm_images", check_number(self.norm_images, "norm_images", OWNER, 1, None,
                                         integer=True))
        check_target(self.target, OWNER)
        set_("seed", check_number(self.seed, "seed", OWNER, 0, 2**31 - 1, integer=True))
        steps_of(self.duration_ms, self.dt_ms, "duration_ms")
        readouts = tuple(sorted({check_number(r, "readouts_ms", OWNER, 0.0, self.duration_ms,
                                              lo_open=True) for r in self.readouts_ms}))
        for r in readouts:
            steps_of(r, self.dt_ms, "readouts_ms")
        set_("readouts_ms", readouts)

    @property
    def steps(self) -> int:
        """Time steps per presentation."""
        return steps_of(self.duration_ms, self.dt_ms, "duration_ms")

    @property
    def readout_steps(self) -> tuple:
        """Sorted read-out steps within a presentation, the full presentation last."""
        steps = {steps_of(r, self.dt_ms, "readouts_ms") for r in self.readouts_ms}
        return tuple(sorted(steps | {self.steps}))

    def replace(self, **changes) -> "SpikingConfig":
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(changes)
        return type(self)(**d)


def table_rows(n_presentations: int) -> int:
    """Rows of a presentation ``TimedArray``: at least one zero row after the last
    presentation, rounded up to a power of two (>= 64). Brian bakes the row count into the
    generated code, so the rounding lets the cython cache serve every batch size in a band
    instead of compiling anew (~1 min) for each image count."""
    return 1 << max(6, n_presentations.bit_length())


def pad_rows(values: np.ndarray, rows: int, front: int = 0) -> np.ndarray:
    """``values`` with ``front`` zero rows before it and zero rows after it up to ``rows``."""
    values = np.asarray(values, np.float64)
    shape = (rows,) + values.shape[1:]
    out = np.zeros(shape)
    out[front:front + len(values)] = values
    return out


def dense_pairs(n_pre: int, n_post: int, first_post: int = 0):
    """All (pre, post) index pairs in presynaptic-major order (the order of ``W.ravel()``
    when ``first_post`` is 0): two int64 arrays."""
    pre, post = np.meshgrid(np.arange(n_pre), np.arange(first_post, n_post), indexing="ij")
    return pre.ravel().astype(np.int64), post.ravel().astype(np.int64)


def steps_of(time_ms: float, dt_ms: float, name: str) -> int:
    """``time_ms / dt_ms`` as an int, or ConfigError when it is not a whole number of steps."""
    n = time_ms / dt_ms
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise ConfigError(f"The '{name}' parameter of {OWNER} must be a whole number (>= 1) of "
                          f"time steps of dt_ms={dt_ms}. Got {time_ms!r} instead.")
    return int(round(n))


@dataclass
class ConvertedNetwork:
    """A rate network as integrate-and-fire neurons, in per-time-step units.

    Hidden neuron ``c`` ("channel") stands for hidden unit ``unit[c]`` with ``sign[c]`` +1
    (the positive part of the activation) or -1 (the negative part, paired mode). With analog
    input its drive per step is ``x @ w_in[:, c]``; it fires about min(max(drive, 0), 1)
    spikes per step. Output neuron ``o`` receives ``w_out[c, o]`` per hidden spike and
    ``b_out[o]`` per step (the bias unit), so its spike rate approximates z_o / lambda_out.

    Attributes
    ----------
    w_in : float64 (n_in, n_channels)
    w_out : float64 (n_channels, 10)
    b_out : float64 (10,)
    unit, sign : int64 (n_channels,)
    lambdas : dict, the scales: 'hidden_pos', 'hidden_neg' (paired mode) and 'output'
    leak_mode : str
    """

    w_in: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    unit: np.ndarray
    sign: np.ndarray
    lambdas: dict
    leak_mode: str

    @property
    def n_channels(self) -> int:
        return self.w_in.shape[1]

    def drive(self, x: np.ndarray) -> np.ndarray:
        """Analog per-step drive of every hidden neuron, float64 (n, n_channels)."""
        return np.asarray(x, np.float64) @ self.w_in

    def expected_scores(self, x: np.ndarray) -> np.ndarray:
        """The converted network's rate limit (long presentations): per-step output drive
        (n, 10) with hidden rates min(max(drive, 0), 1)."""
        h = np.clip(self.drive(x), 0.0, 1.0)
        return h @ self.w_out + self.b_out

    def poisson_coding(self, x: np.ndarray, rate_per_step: float):
        """Poisson input for inputs centred by the study's preprocessing.

        The intensities are u = clip(x + m, 0, 1) for the 784 pixels, where m, the global mean
        subtracted by the preprocessing, is read off the bias column (x[:, -1] = 1 - m). The
        drive then splits into spikes (probability u * rate_per_step per step, weight
        w / rate_per_step) and a constant current for the mean shift and the bias column.

        Returns
        -------
        prob : float64 (n, n_in - 1), spike probability per step of every pixel
        w_syn : float64 (n_in - 1, n_channels), weight of one input spike
        current : float64 (n_channels,), the constant per-step current
        """
        x = np.asarray(x, np.float64)
        m = 1.0 - float(np.mean(x[:, -1]))
        prob = np.clip(x[:, :-1] + m, 0.0, 1.0) * rate_per_step
        w_syn = self.w_in[:-1] / rate_per_step
        current = -m * self.w_in[:-1].sum(axis=0) + (1.0 - m) * self.w_in[-1]
        return np.clip(prob, 0.0, 1.0), w_syn, current


def convert(network: Network, x_norm: np.ndarray, percentile: float = 99.9,
            leak_mode: str = "paired") -> ConvertedNetwork:
    """Convert ``network`` with data-based normalisation on the images ``x_norm``.

    Parameters
    ----------
    network : the rate network (activation 'leaky_relu' or 'relu')
    x_norm : float32 (n, n_in), training inputs for the percentiles (a few thousand suffice)
    percentile : lambda of a layer = this percentile of its positive activations
    leak_mode : 'paired' or 'drop' (see the module docstring)

    References
    ----------
    Rueckauer et al., Front. Neurosci. 11:682 (2017), section 2.2 (robust normalisation).
    """
    check_number(percentile, "percentile", "convert", 0.0, 100.0, lo_open=True)
    check_choice(leak_mode, "leak_mode", "convert", LEAK_MODES)
    if network.activation not in ("leaky_relu", "relu"):
        raise ConfigError(f"Only ReLU-like networks convert to integrate-and-fire neurons; the "
                          f"network's activation is {network.activation!r}. Train with "
                          "activation='leaky_relu' or 'relu'.")
    if len(x_norm) == 0 or x_norm.shape[1] != network.w_in.shape[0]:
        raise ConfigError(f"x_norm must have shape (n >= 1, {network.w_in.shape[0]}). "
                          f"Got {x_norm.shape} instead.")
    w_in = network.w_in.astype(np.float64)
    w_out = network.w_out.astype(np.float64)
    units = np.array([u for u in range(network.hidden) if u != BIAS_UNIT], np.int64)
    a = np.asarray(x_norm, np.float64) @ w_in[:, units]
    leak = network.leak if network.activation == "leaky_relu" else 0.0
    paired = leak > 0.0 and leak_mode == "paired"
    lam_pos = _scale(a[a > 0], percentile)
    lambdas = {"hidden_pos": lam_pos}
    blocks_in = [w_in[:, units] / lam_pos]
    blocks_out = [w_out[units] * lam_pos]
    signs = [np.ones(len(units), np.int64)]
    h = np.maximum(a, 0.0)
    if paired:
        lam_neg = _scale(-a[a < 0], percentile)
        lambdas["hidden_neg"] = lam_neg
        blocks_in.append(-w_in[:, units] / lam_neg)
        blocks_out.append(-leak * w_out[units] * lam_neg)
        signs.append(-np.ones(len(units), np.int64))
        h = h + leak * np.minimum(a, 0.0)
    z = h @ w_out[units] + w_out[BIAS_UNIT]
    lam_out = _scale(z[z > 0], percentile)
    lambdas["output"] = lam_out
    return ConvertedNetwork(
        w_in=np.concatenate(blocks_in, axis=1),
        w_out=np.concatenate(blocks_out, axis=0) / lam_out,
        b_out=w_out[BIAS_UNIT] / lam_out,
        unit=np.concatenate([units] * len(signs)),
        sign=np.concatenate(signs),
        lambdas={k: float(v) for k, v in lambdas.items()},
        leak_mode=leak_mode if leak > 0.0 else "none",
    )


def _scale(values: np.ndarray, percentile: float) -> float:
    if values.size == 0:
        return 1.0  # a layer that is never active: any scale will do
    return float(np.percentile(values, percentile))


# ----------------------------------------------------------------------------- simulation

@dataclass
class SimulationResult:
    """Spike counts of a batch of presentations at each read-out time.

    Attributes
    ----------
    readout_ms : tuple of read-out times within a presentation (ms), ascending
    counts : int64 (n_readouts, n_images, 10), output spikes since the presentation began
    v : float64 (n_readouts, n_images, 10), output membrane potentials at the read-out
    hidden_spikes, input_spikes : int64 (n_readouts, n_images); input spikes are 0 with
        analog input
    wall_seconds : simulation time of the run (compilation excluded)
    build_seconds : code generation and compilation (first run of a target)
    """

    readout_ms: tuple
    counts: np.ndarray
    v: np.ndarray
    hidden_spikes: np.ndarray
    input_spikes: np.ndarray
    wall_seconds: float
    build_seconds: float

    def predictions(self, k: int = -1) -> np.ndarray:
        """Class with the most output spikes at read-out ``k``; ties go to the highest
        membrane potential (then to the lowest index)."""
        counts, v = self.counts[k], self.v[k]
        tied = counts == counts.max(axis=1, keepdims=True)
        return np.argmax(np.where(tied, v, -np.inf), axis=1)

    def tie_fraction(self, k: int = -1) -> float:
        """Fraction of images whose largest output count is shared by several outputs."""
        counts = self.counts[k]
        return float(np.mean((counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1))


def simulate(conv: ConvertedNetwork, x: np.ndarray, config: SpikingConfig) -> SimulationResult:
    """Present the images ``x`` (n, n_in) one after another in a single Brian2 run.

    A 2-D ``TimedArray`` holds the inputs (one row per presentation) and ``run_regularly``
    operations reset the neurons at every presentation boundary.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != conv.w_in.shape[0] or len(x) == 0:
        raise ConfigError(f"x must have shape (n >= 1, {conv.w_in.shape[0]}). "
                          f"Got {x.shape} instead.")
    with Session(config.target, config.seed) as session:
        return InferenceModel(session, conv, x, config).run()


class InferenceModel:
    """The Brian2 objects of one inference run, built once per (shape, target); with
    ``cpp_standalone`` :meth:`run` re-runs the compiled binary with new weights or images."""

    def __init__(self, session: Session, conv: ConvertedNetwork, x: np.ndarray,
                 config: SpikingConfig):
        b2 = session.b2
        n_images = len(x)
        self.session, self.config, self.n_images = session, config, n_images
        t0 = time.perf_counter()
        dt = config.dt_ms * b2.ms
        period = config.duration_ms * b2.ms
        steps = config.steps
        self.readout_every = math.gcd(*config.readout_steps)
        every = self.readout_every * dt
        poisson = config.input == "poisson"
        n_in, n_ch = conv.w_in.shape
        values = self._values(conv, x)
        rows = table_rows(n_images)
        self.ta_active = b2.TimedArray(np.r_[np.ones(n_images), np.zeros(rows - n_images)],
                                       dt=period,
                                       name="ta_active")
        ns = {"ta_active": self.ta_active}
        common = dict(dt=dt, namespace=ns)
        if poisson:
            self.ta_input = b2.TimedArray(values.pop("input"), dt=period, name="ta_prob")
            ns["ta_prob"] = self.ta_input
            drive = "I_b * ta_active(t)"
        else:
            self.ta_input = b2.TimedArray(values.pop("input"), dt=period, name="ta_drive")
            ns["ta_drive"] = self.ta_input
            drive = "ta_drive(t, i) + I_b * ta_active(t)"
        spike_reset = "v -= 1\nn_spk += 1"
        self.hidden = b2.NeuronGroup(n_ch, "v : 1\nI_b : 1 (constant)\nn_spk : integer",
                                     threshold="v >= 1", reset=spike_reset, name="hidden",
                                     **common)
        self.hidden.run_regularly(f"v += {drive}", when="groups", name="hidden_drive")
        self.out = b2.NeuronGroup(N_OUT, "v : 1\nb : 1 (constant)\nn_spk : integer",
                                  threshold="v >= 1", reset=spike_reset, name="out", **common)
        self.out.run_regularly("v += b * ta_active(t)", when="groups", name="out_drive")
        self.s_out = b2.Synapses(self.hidden, self.out, "w : 1", on_pre="v_post += w",
                                 name="s_out", **common)
        pre, post = dense_pairs(n_ch, N_OUT)  # presynaptic-major, as w_out.ravel()
        self.s_out.connect(i=pre, j=post)
        objects = [self.hidden, self.out, self.s_out]
        if poisson:
            self.inp = b2.NeuronGroup(n_in - 1, "", threshold="rand() < ta_prob(t, i)",
                                      name="inp", **common)
            self.s_in = b2.Synapses(self.inp, self.hidden, "w : 1", on_pre="v_post += w",
                                    name="s_in", **common)
            pre, post = dense_pairs(n_in - 1, n_ch)
            self.s_in.connect(i=pre, j=post)
            # a one-neuron population counter: one event per input spike, reset per image
            self.counter = b2.NeuronGroup(1, "n_spk : integer", name="counter", **common)
            self.c_inp = b2.Synapses(self.inp, self.counter, on_pre="n_spk_post += 1",
                                     name="count_inp", **common)
            self.c_inp.connect(i=np.arange(n_in - 1), j=np.zeros(n_in - 1, np.int64))
            self.mon_count = b2.StateMonitor(self.counter, "n_spk", record=True, dt=every,
                                             when="start", order=0, name="mon_count")
            objects += [self.inp, self.s_in, self.counter, self.c_inp, self.mon_count]
        # read out before the reset (order 0 < 1), at every read-out step of a presentation
        self.mon_out = b2.StateMonitor(self.out, ["n_spk", "v"], record=True, dt=every,
                                       when="start", order=0, name="mon_out")
        self.mon_hidden = b2.StateMonitor(self.hidden, "n_spk", record=True, dt=every,
                                          when="start", order=0, name="mon_hidden")
        objects += [self.mon_out, self.mon_hidden]
        for group in objects:
            if group.name in ("hidden", "out", "counter"):
                group.run_regularly("n_spk = 0" if group.name == "counter" else
                                    "v = 0\nn_spk = 0", dt=period, when="start", order=1,
                                    name=group.name + "_boundary")
        self.net = b2.Network(*objects)
        self._assign(values)
        # one extra step records the last presentation's end (the padded input row is zero)
        self.duration = n_images * period + dt
        self.steps = steps
        if session.standalone:
            self.net.run(self.duration, namespace={})
            session.build()
        self.setup_seconds = time.perf_counter() - t0
        session.setup_seconds += self.setup_seconds
        self._pending = True

    def _values(self, conv: ConvertedNetwork, x: np.ndarray) -> dict:
        """Per-run values: 'input' (TimedArray rows, a zero row appended), and the weights
        and currents by variable name."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != conv.w_in.shape[0] or len(x) != self.n_images:
            raise ConfigError(f"x must have shape ({self.n_images}, {conv.w_in.shape[0]}) "
                              f"for this model. Got {x.shape} instead.")
        if self.config.input == "poisson":
            rate = self.config.max_rate_hz * self.config.dt_ms * 1e-3
            prob, w_syn, current = conv.poisson_coding(x, rate)
            values = {"input": prob, "s_in.w": w_syn.ravel(), "hidden.I_b": current}
        else:
            values = {"input": conv.drive(x), "hidden.I_b": np.zeros(conv.n_channels)}
        values["input"] = pad_rows(values["input"], table_rows(self.n_images))
        values["s_out.w"] = conv.w_out.ravel()
        values["out.b"] = conv.b_out
        return values

    def _view(self, name):
        group, var = name.split(".")
        return getattr(getattr(self, group), var)

    def _assign(self, values: dict) -> None:
        for name, value in values.items():
            if name != "input":
                self._view(name)[:] = value

    def run(self, conv: ConvertedNetwork = None, x: np.ndarray = None) -> SimulationResult:
        """Simulate the images given at construction; with ``cpp_standalone`` also new
        weights (``conv``, same shapes) or new images (``x``, same number) without
        recompiling. Runtime targets simulate once per model."""
        session = self.session
        t0 = time.perf_counter()
        if session.standalone:
            args = {}
            if conv is not None or x is not None:
                if conv is None or x is None:
                    raise ConfigError("a standalone re-run needs both conv and x.")
                values = self._values(conv, x)
                args[self.ta_input] = values.pop("input")
                args.update({self._view(k): v for k, v in values.items()})
            session.run_standalone(args)
        else:
            if not self._pending or conv is not None or x is not None:
                raise ConfigError("runtime targets simulate a model once; build a new "
                                  "InferenceModel (compiled code is cached) or use "
                                  "target='cpp_standalone' to re-run with new values.")
            self.net.run(self.duration, namespace={})
        self._pending = False
        wall = time.perf_counter() - t0
        return self._collect(wall)

    def _collect(self, wall: float) -> SimulationResult:
        n, steps, every = self.n_images, self.steps, self.readout_every
        readout_steps = self.config.readout_steps
        # record r is taken at step r * every; image k's read-out s sits at k * steps + s
        idx = (np.arange(n)[None, :] * steps + np.asarray(readout_steps)[:, None]) // every
        n_spk = np.asarray(self.mon_out.n_spk)  # (10, n_records)
        v = np.asarray(self.mon_out.v)
        hidden = np.asarray(self.mon_hidden.n_spk).sum(axis=0)  # (n_records,)
        if self.config.input == "poisson":
            inputs = np.asarray(self.mon_count.n_spk)[0][idx].astype(np.int64)
        else:
            inputs = np.zeros(idx.shape, np.int64)
        counts = np.transpose(n_spk[:, idx], (1, 2, 0)).astype(np.int64)
        vv = np.transpose(v[:, idx], (1, 2, 0))
        readout_ms = tuple(s * self.config.dt_ms for s in readout_steps)
        return SimulationResult(readout_ms, counts, vv, hidden[idx].astype(np.int64), inputs, wall,
                                self.setup_seconds)
