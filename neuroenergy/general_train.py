"""The training loop around the general kernel: any rule, any number of hidden layers.

``train.train`` sends here every run the fast two-layer kernel cannot do (new rules, lazy
learning, deeper networks); the loop - chunks, evaluation, stopping, curves - is the same.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .config import RunConfig
from .data import Dataset, load_dataset
from .energy import LayeredEnergyMeter, layer_names
from .general_codes import BUF_HIDDEN, BUF_NONE, BUF_VISIBLE, LZ_SKIPPED, LZ_UPDATED
from .general_kernel import train_chunk_general, w_offsets
from .kernels import STATUS_DIVERGED
from .network import ACTIVATIONS, BIAS_UNIT, LOSSES, Network, activate
from .rules_extended import STUDY_RULES, plan_for
from .splits import draw_samples, split_rows

N_OUTPUTS = 10


@dataclass
class LayeredNetwork:
    """Weights of a network with several hidden layers: ``weights[l]`` maps layer l to l + 1
    (float32, (rows, cols)); unit 0 of every hidden layer is clamped to 1."""

    weights: list
    activation: str = "leaky_relu"
    leak: float = 0.1

    @property
    def w_in(self) -> np.ndarray:
        return self.weights[0]

    @property
    def w_out(self) -> np.ndarray:
        return self.weights[-1]

    @property
    def hidden(self) -> tuple:
        return tuple(w.shape[1] for w in self.weights[:-1])

    def logits(self, x: np.ndarray, batch: int = 10000) -> np.ndarray:
        return forward_logits(self.weights, x, self.activation, self.leak, batch)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.logits(x), axis=1) == y))


def forward_logits(weights, x, activation, leak, batch=10000):
    """Batched forward pass through every layer (BLAS, float32)."""
    out = np.empty((len(x), weights[-1].shape[1]), np.float32)
    for start in range(0, len(x), batch):
        h = x[start:start + batch]
        for w in weights[:-1]:
            h = activate(h @ w, activation, leak)
            h[:, BIAS_UNIT] = 1.0
        out[start:start + batch] = h @ weights[-1]
    return out


def uses_general_kernel(config: RunConfig) -> bool:
    """True unless the run is one of the study's four rules on one hidden layer."""
    return isinstance(config.hidden, tuple) or type(config.rule) not in STUDY_RULES


def _accuracy(weights, x, y, config):
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: NaN, said below
        z = forward_logits(weights, x, config.activation, config.leak)
    if not np.all(np.isfinite(z)):
        return float("nan")
    return float(np.mean(np.argmax(z, axis=1) == y))


def _hardware(config, n_layers):
    from .hardware import HardwareTally
    kw = {"w_max": config.hardware_w_max} if hasattr(config, "hardware_w_max") else {}
    return HardwareTally(config.hardware, config.hardware_mode, n_layers=n_layers, **kw)


class _State:
    """Flat weights / buffers of a run and per-layer views of them."""

    def __init__(self, weights, buffered):
        self.shapes = [w.shape for w in weights]
        self.offsets = w_offsets([weights[0].shape[0]] + [w.shape[1] for w in weights])
        self.w = np.concatenate([w.ravel() for w in weights]).astype(np.float32)
        self.s = np.zeros(self.w.size if buffered else 0, np.float32)

    def views(self, flat):
        return [flat[self.offsets[l]:self.offsets[l + 1]].reshape(shape)
                for l, shape in enumerate(self.shapes)]

    def effective(self, visible):
        """The weights the network uses: persistent + transient under synaptic caching."""
        if visible:
            return self.views(self.w + self.s)
        return self.views(self.w)


def train_general(config: RunConfig, data: Optional[Dataset] = None,
                  progress: Optional[Callable[[dict], None]] = None):
    """Train one network with the general kernel; returns a ``train.Result``."""
    from .train import STATUS_CONVERGED, STATUS_DIVERGED_NAME, STATUS_NOT_CONVERGED, Result, \
        _streams
    if data is None:
        data = load_dataset(config.dataset, config.zero_mean, config.noise_std, config.data_seed)
    init_rng, path_rng, sample_rng, kernel_rng = _streams(config.seed)
    n_train, n_in = data.x_train.shape
    sizes = (n_in,) + config.hidden_layers + (N_OUTPUTS,)
    n_layers = len(sizes) - 1
    weights = [init_rng.normal(0.0, config.init_std, size=(sizes[l], sizes[l + 1]))
               .astype(np.float32) for l in range(n_layers)]
    plan = plan_for(config.rule, sizes, path_rng)
    visible = plan.buffer == BUF_VISIBLE
    state = _State(weights, plan.buffer != BUF_NONE)
    meter = LayeredEnergyMeter(weights, config.alpha)
    hw = _hardware(config, n_layers)
    ispec, fspec = plan.specs(ACTIVATIONS.index(config.activation), LOSSES.index(config.loss),
                              float(config.leak), config.alpha, hw.in_loop_device)
    sizes_arr = np.asarray(sizes, np.int64)
    p_layer = np.asarray(plan.p_layer, np.float64)
    lr_layer = np.asarray([config.lr] * (n_layers - 1) + [config.lr_output], np.float64)
    counter = np.zeros(1, np.int64)
    lazy_i = np.zeros(2, np.int64)
    fit_rows, val_rows = split_rows(config, n_train)

    def run_chunk(sample_idx, seed):
        return train_chunk_general(data.x_train, data.y_train, sample_idx, sizes_arr, state.w,
                                   state.s, plan.mask, meter.counts, plan.unit_on, plan.k_units,
                                   plan.perm, p_layer, lr_layer, ispec, fspec, counter,
                                   meter.writes, meter.sums, meter.buffer_sums, lazy_i,
                                   hw.params, hw.stats, seed)

    run_chunk(np.zeros(0, np.int64), 0)  # compile (or load from cache) outside the timing

    n_fit = len(fit_rows)
    max_samples = int(math.ceil(config.max_epochs * n_fit))
    names = layer_names(n_layers)
    curves = {k: [] for k in ["samples", "accuracy", "seconds"]
              + [f"M{a}_{n}" for a in (0, 1) for n in names]}
    if val_rows is not None:
        curves["validation_accuracy"] = []
    samples, accuracy, val_accuracy = 0, float("nan"), None
    status, diverged_at = STATUS_NOT_CONVERGED, None
    t0 = time.perf_counter()
    while samples < max_samples:
        n = min(config.eval_every, max_samples - samples)
        sample_idx = draw_samples(sample_rng, fit_rows, n_train, n)
        done, code = run_chunk(sample_idx, int(kernel_rng.integers(0, 2**62)))
        samples += int(done)
        if code == STATUS_DIVERGED or not (np.all(np.isfinite(state.w))
                                           and np.all(np.isfinite(state.s))):
            status, diverged_at, accuracy = STATUS_DIVERGED_NAME, samples, float("nan")
            break
        eff = state.effective(visible)
        accuracy = _accuracy(eff, data.x_test, data.y_test, config)
        if not math.isfinite(accuracy):  # outputs overflow although the weights are finite
            status, diverged_at = STATUS_DIVERGED_NAME, samples
            break
        criterion = accuracy
        if val_rows is not None:
            val_accuracy = _accuracy(eff, data.x_train[val_rows], data.y_train[val_rows], config)
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
                      "validation_accuracy": val_accuracy, **snap})
        if criterion >= config.target_accuracy:
            status = STATUS_CONVERGED
            break
    train_seconds = time.perf_counter() - t0

    final = [np.array(w, copy=True) for w in state.effective(visible)]
    remainders = state.views(state.s) if plan.buffer != BUF_NONE else None
    energy = meter.summary(final, remainders, charge_remainder=visible)
    if plan.lazy >= 0.0:
        energy["lazy"] = {"updated": int(lazy_i[LZ_UPDATED]), "skipped": int(lazy_i[LZ_SKIPPED])}
    if plan.buffer == BUF_HIDDEN:
        energy["buffer"] = "accumulate"
    elif visible:
        energy["buffer"] = "caching"
    counts = tuple(np.array(c, copy=True) for c in meter.count_maps())
    hardware = hw.report(counts, [w.shape for w in final], samples)
    if n_layers == 2:
        network = Network(final[0], final[1], config.activation, config.leak)
    else:
        network = LayeredNetwork(final, config.activation, config.leak)
    return Result(config, status, samples, samples / n_fit, accuracy, train_seconds, energy,
                  {k: np.asarray(v) for k, v in curves.items()}, network, counts,
                  plan.plastic_units(), hardware, diverged_at, validation_accuracy=val_accuracy)
