"""The training loop: chunks of compiled per-sample SGD, evaluation every ``eval_every``
samples, stopping at the target accuracy or after ``max_epochs``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import __version__
from .config import RunConfig
from .data import Dataset, check_dataset, load_dataset
from .energy import EnergyMeter
from .kernels import STATUS_DIVERGED, activate_inplace
from .network import ACTIVATIONS, BIAS_UNIT, LOSSES, Network
from .rules import writes_per_sample
from .sgd_kernel import train_chunk
from .splits import draw_samples, split_rows

STATUS_CONVERGED = "converged"
STATUS_NOT_CONVERGED = "not_converged"
STATUS_DIVERGED_NAME = "diverged"
# blocks for batched BLAS work: hidden activities of one block stay in cache
EVAL_BLOCK_BYTES = 8 << 20
OFFSET_BLOCK_BYTES = 16 << 20
OFFSET_BLOCK_UNITS = 4096


@dataclass
class Result:
    """Outcome of one run. ``energy`` follows :meth:`EnergyMeter.summary`; ``curves`` holds
    arrays sampled at every evaluation; ``hardware`` is per preset (empty without presets)."""

    config: RunConfig
    status: str
    samples: int
    epochs: float
    test_accuracy: float
    train_seconds: float
    energy: dict
    curves: dict
    network: Network
    write_counts: tuple
    plastic_units: np.ndarray
    hardware: dict = field(default_factory=dict)
    diverged_at_sample: Optional[int] = None
    version: str = __version__
    validation_accuracy: Optional[float] = None

    @property
    def converged(self) -> bool:
        return self.status == STATUS_CONVERGED

    def to_dict(self) -> dict:
        """The JSON summary printed by ``neuroenergy train --json``."""
        cfg = self.config
        return {
            "rule": cfg.rule.name, "rule_params": cfg.rule.params(), "hidden": cfg.hidden,
            "seed": cfg.seed, "status": self.status, "converged": self.converged,
            "epochs": self.epochs, "samples": self.samples,
            "test_accuracy": self.test_accuracy, "train_seconds": self.train_seconds,
            "diverged_at_sample": self.diverged_at_sample,
            "stop_on": cfg.stop_on, "validation_accuracy": self.validation_accuracy,
            "energy": self.energy, "hardware": self.hardware, "config": cfg.to_dict(),
            "version": self.version,
        }


class _PlasticPart:
    """The kernel's view: plastic units' weights, and the frozen units' fixed output term."""

    def __init__(self, net: Network, units: np.ndarray, data: Dataset):
        self.units = units
        self.all_plastic = len(units) == net.hidden
        self.w1 = np.ascontiguousarray(net.w_in[:, units])
        self.w2 = np.ascontiguousarray(net.w_out[units, :])
        self.clamped = units == BIAS_UNIT
        if self.all_plastic:
            n_out = net.w_out.shape[1]
            self.offset_train = np.zeros((0, n_out), np.float32)
            self.offset_test = np.zeros((0, n_out), np.float32)
        else:
            frozen = np.setdiff1d(np.arange(net.hidden), units)
            self.offset_train = _frozen_output(net, frozen, data.x_train)
            self.offset_test = _frozen_output(net, frozen, data.x_test)

    def write_back(self, net: Network) -> None:
        net.w_in[:, self.units] = self.w1
        net.w_out[self.units, :] = self.w2

    def test_accuracy(self, net: Network, data: Dataset) -> float:
        """Batched evaluation of the whole test set, frozen part from the precomputed term."""
        return self.accuracy(net, data.x_test, data.y_test, self.offset_test)

    def accuracy(self, net: Network, x, y, offset) -> float:
        """Accuracy on ``x`` whose frozen-unit output term is ``offset`` (rows of x): BLAS
        on blocks of rows whose hidden activities stay in cache, activation in place."""
        rows = max(256, EVAL_BLOCK_BYTES // (4 * self.w1.shape[1]))
        clamped_cols = np.flatnonzero(self.clamped)
        correct = 0
        for start in range(0, len(x), rows):
            stop = min(start + rows, len(x))
            with np.errstate(over="ignore", invalid="ignore"):  # diverging: NaN, said below
                z = _hidden(x[start:stop], self.w1, net, clamped_cols) @ self.w2
                if not self.all_plastic:
                    z += offset[start:stop]
            if not np.all(np.isfinite(z)):
                return float("nan")
            correct += int(np.count_nonzero(np.argmax(z, axis=1) == y[start:stop]))
        return correct / len(x)


def _hidden(x: np.ndarray, w_in: np.ndarray, net: Network, clamped_cols) -> np.ndarray:
    """act(x @ w_in) in float32 with the arithmetic of ``network.activate``, computed in
    place (no temporaries the size of the block); ``clamped_cols`` read 1."""
    a = x @ w_in
    if net.activation == "sigmoid":
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += np.float32(1.0)
        np.reciprocal(a, out=a)
        a[:, clamped_cols] = 1.0
    else:
        activate_inplace(a, ACTIVATIONS.index(net.activation), float(net.leak),
                         np.asarray(clamped_cols, np.int64))
    return a


def _frozen_output(net: Network, frozen: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum over frozen units u of act(x w_in[:, u]) w_out[u] per image (float32).

    Blocks of at most ``OFFSET_BLOCK_UNITS`` units and of rows sized to
    ``OFFSET_BLOCK_BYTES`` of activities keep memory bounded at any network size (10^5
    hidden units included) and the work in BLAS."""
    out = np.zeros((len(x), net.w_out.shape[1]), np.float32)
    no_clamp = np.zeros(0, np.int64)
    for u0 in range(0, len(frozen), OFFSET_BLOCK_UNITS):
        block = frozen[u0:u0 + OFFSET_BLOCK_UNITS]
        w_in = np.ascontiguousarray(net.w_in[:, block])
        w_out = np.ascontiguousarray(net.w_out[block, :])
        rows = max(256, OFFSET_BLOCK_BYTES // (4 * len(block)))
        for r0 in range(0, len(x), rows):
            out[r0:r0 + rows] += _hidden(x[r0:r0 + rows], w_in, net, no_clamp) @ w_out
    return out


def _streams(seed: int):
    """Independent generators for initialisation, path choice, sampling, and kernel seeds."""
    children = np.random.SeedSequence(seed).spawn(4)
    return [np.random.default_rng(c) for c in children]


def _check_memory(config: RunConfig, data: Optional[Dataset]) -> None:
    """Refuse, before any work, a network that will not fit in the available memory."""
    from .resources import check_fits, estimate_bytes
    n_train, n_test = (60_000, 10_000) if data is None else (len(data.x_train), len(data.x_test))
    p_in, _ = config.rule.fractions()
    needed = estimate_bytes(785, config.hidden_layers, 10, n_train, n_test,
                            selective=p_in < 1.0)
    check_fits(needed, what=f"a network with hidden layers {config.hidden_layers}")


def kernel_key(config: RunConfig) -> tuple:
    """Which compiled training kernel a run of ``config`` takes (runs with equal keys share
    one; ``sgd_kernel._flag``), read from the rule's write fractions. A key that errs costs
    a compilation, nothing else."""
    from .general_train import uses_general_kernel
    from .sgd_kernel import MASK_SHARE
    if uses_general_kernel(config):
        return ("general",)
    p_in, p_out = config.rule.fractions()
    if config.hardware_mode == "in-the-loop":
        return ("device in the loop",)
    if config.hardware:
        return ("priced", p_in >= 1.0 and p_out >= 1.0)
    metered = config.alpha is not None  # every write metered: no dense or mask writers
    return ("plain",) + tuple((p >= 1.0 and not metered,
                               not metered and 1.0 / MASK_SHARE <= p < 1.0)
                              for p in (p_in, p_out))


def warm_up(config: RunConfig, data: Dataset) -> None:
    """Compile (or load from numba's cache) the training kernel of ``config``: ``train`` for
    one sample on the first images of ``data``, so that the workers of a pool can compile
    different kernels at once before their runs need them."""
    import dataclasses
    n = min(len(data.y_train), len(data.y_test), 16)
    tiny = Dataset(f"{data.name} (warm-up)", np.ascontiguousarray(data.x_train[:n]),
                   np.ascontiguousarray(data.y_train[:n]), np.ascontiguousarray(data.x_test[:n]),
                   np.ascontiguousarray(data.y_test[:n]))
    train(dataclasses.replace(config, max_epochs=1e-9, stop_on="test"), tiny)


def train(config: RunConfig, data: Optional[Dataset] = None,
          progress: Optional[Callable[[dict], None]] = None) -> Result:
    """Train one network with ``config``; returns a :class:`Result`.

    ``data`` defaults to ``load_dataset(config.dataset, ...)``. ``progress`` is called after
    every evaluation with a dict (samples, accuracy, M0, M1...). Rules beyond the study's four
    and deeper networks run on the general kernel (``general_train``).
    """
    if data is not None:
        data = check_dataset(data)  # clear errors for NaN, shapes, dtypes, labels
    _check_memory(config, data)
    from .general_train import train_general, uses_general_kernel
    if uses_general_kernel(config):
        return train_general(config, data, progress)
    if data is None:
        data = load_dataset(config.dataset, config.zero_mean, config.noise_std, config.data_seed)
    init_rng, path_rng, sample_rng, kernel_rng = _streams(config.seed)
    n_train, n_in = data.x_train.shape
    net = Network.initial(n_in, config.hidden, 10, config.init_std, init_rng,
                          config.activation, config.leak)
    units = config.rule.plastic_units(config.hidden, path_rng)
    part = _PlasticPart(net, units, data)
    meter = EnergyMeter(net.w_in, net.w_out, units, config.alpha)
    p_in, p_out = config.rule.fractions()
    n_plastic_in = n_in * int(np.count_nonzero(~part.clamped))
    k1 = writes_per_sample(p_in, n_plastic_in)
    k2 = writes_per_sample(p_out, len(units) * 10)

    from .hardware import HardwareTally
    hw = HardwareTally(config.hardware, config.hardware_mode, config.hardware_w_max)
    args = dict(act=ACTIVATIONS.index(config.activation), loss=LOSSES.index(config.loss))

    def run_chunk(sample_idx, seed):
        return train_chunk(data.x_train, data.y_train, sample_idx, part.offset_train,
                           part.w1, part.w2, part.clamped, args["act"], float(config.leak),
                           args["loss"], float(config.lr), float(config.lr_output), k1, k2,
                           -1.0 if config.alpha is None else float(config.alpha),
                           meter.writes, meter.sums, meter.counts_plastic[0],
                           meter.counts_plastic[1], hw.params, hw.stats, hw.in_loop_device,
                           seed)

    run_chunk(np.zeros(0, np.int64), 0)  # compile (or load from cache) outside the timing

    fit_rows, val_rows = split_rows(config, n_train)
    max_samples = int(math.ceil(config.max_epochs * len(fit_rows)))
    curves = {k: [] for k in ("samples", "accuracy", "M0_input", "M0_output",
                              "M1_input", "M1_output", "seconds")}
    val_accuracy = None
    if val_rows is not None:
        curves["validation_accuracy"] = []
        offset_val = part.offset_train[val_rows] if not part.all_plastic else part.offset_train
    samples = 0
    accuracy = float("nan")
    status = STATUS_NOT_CONVERGED
    diverged_at = None
    t0 = time.perf_counter()
    while samples < max_samples:
        n = min(config.eval_every, max_samples - samples)
        sample_idx = draw_samples(sample_rng, fit_rows, n_train, n)
        done, code = run_chunk(sample_idx, int(kernel_rng.integers(0, 2**62)))
        samples += int(done)
        if code == STATUS_DIVERGED or not (np.all(np.isfinite(part.w1))
                                           and np.all(np.isfinite(part.w2))):
            status, diverged_at = STATUS_DIVERGED_NAME, samples
            accuracy = float("nan")
            break
        accuracy = part.test_accuracy(net, data)
        if not math.isfinite(accuracy):  # outputs overflow although the weights are finite
            status, diverged_at = STATUS_DIVERGED_NAME, samples
            break
        criterion = accuracy
        if val_rows is not None:  # stop on the validation split; the test set is only reported
            val_accuracy = part.accuracy(net, data.x_train[val_rows], data.y_train[val_rows],
                                         offset_val)
            curves["validation_accuracy"].append(val_accuracy)
            criterion = val_accuracy
        snap = meter.snapshot()
        for key, value in snap.items():
            curves[key].append(value)
        curves["samples"].append(samples)
        curves["accuracy"].append(accuracy)
        curves["seconds"].append(time.perf_counter() - t0)
        if progress is not None:
            progress({"samples": samples, "max_samples": max_samples, "accuracy": accuracy,
                      **snap})
        if criterion >= config.target_accuracy:
            status = STATUS_CONVERGED
            break
    train_seconds = time.perf_counter() - t0
    part.write_back(net)
    energy = meter.summary(net.w_in, net.w_out)
    counts = meter.full_counts()
    hardware = hw.report(counts, [net.w_in.shape, net.w_out.shape], samples)
    return Result(config, status, samples, samples / len(fit_rows), accuracy, train_seconds,
                  energy, {k: np.asarray(v) for k, v in curves.items()}, net, counts, units,
                  hardware, diverged_at, validation_accuracy=val_accuracy)
