"""The Python loop of spiking training: one Brian2 ``run()`` per chunk of presentations, and
between runs the meters, the top-fraction thresholds, the evaluation and the hardware tally.

Runtime targets (numpy, cython) keep one network for a block of presentations (its
``TimedArray`` holds the block) and continue it chunk by chunk; ``cpp_standalone`` compiles a
chunk-sized network once and re-runs it with the next chunk's images, weights and
thresholds through ``run_args``.
"""
from __future__ import annotations

import time

import numpy as np

from ._backend import Session
from .learn import (N_OUT, LearnConfig, SpikingTrainResult, encode, rate_equivalent_dw,
                    rate_equivalent_scores)
from .learn_hardware import HardwarePricer
from .learn_model import LearningNet

THETA_STEP_LIMIT = 4.0  # largest factor by which one chunk may move a threshold
RUNTIME_BLOCK = 5000    # presentations per runtime network (TimedArray memory)
CALIBRATION_IMAGES = 16
LAYERS = ("input", "output")
CURVES = ("samples", "accuracy", "online_accuracy", "M0_input", "M0_output", "M1_input",
          "M1_output", "seconds", "theta_input", "theta_output")


class SpikingTrainer:
    """State of one spiking training run (weights, gates, meters, curves)."""

    def __init__(self, config: LearnConfig, raw):
        cfg = self.cfg = config
        self.raw = raw
        self.t0 = time.perf_counter()
        self.test_rates = encode(raw.test_images / 255.0, cfg.rate_per_step)
        init_rng, path_rng, sample_rng = [np.random.default_rng(s) for s in
                                          np.random.SeedSequence(cfg.seed).spawn(3)]
        n_in, hidden = raw.train_images.shape[1] + 1, cfg.hidden
        self.n_in = n_in
        self.w_in = init_rng.normal(0.0, cfg.init_std, (n_in, hidden))
        self.w_out = init_rng.normal(0.0, cfg.init_std, (hidden, N_OUT))
        self.w_in[:, 0] = 0.0  # the bias unit has no input synapses
        self.w_start = (self.w_in.copy(), self.w_out.copy())
        self.units = cfg.rule.plastic_units(hidden, path_rng)
        self.plastic_in = np.zeros((n_in, hidden))
        self.plastic_in[:, self.units] = 1.0
        self.plastic_in[:, 0] = 0.0
        self.plastic_out = np.zeros((hidden, N_OUT))
        self.plastic_out[self.units, :] = 1.0
        self.n_plastic = (int(self.plastic_in.sum()), int(self.plastic_out.sum()))
        self.fractions = cfg.rule.fractions()
        self.sample_idx = sample_rng.integers(0, len(raw.train_images), size=cfg.samples)
        calibration = self.batch(sample_rng.integers(0, len(raw.train_images),
                                                     size=CALIBRATION_IMAGES))
        self.theta = initial_thresholds(self.w_in, self.w_out, self.plastic_in,
                                        self.plastic_out, self.fractions, cfg, calibration)
        self.theta_start = list(self.theta)
        self.pricer = HardwarePricer(cfg.hardware, hidden, n_in)
        self.m0_maps = [None, None]
        self.totals = np.zeros((2, 3))  # layer x (M0, M1, M1 potentiation)
        self.curves = {k: [] for k in CURVES}
        self.sim_seconds = 0.0
        self.chunk = min(cfg.chunk, cfg.samples)
        self.block_size = self.chunk if (cfg.hardware or cfg.target == "cpp_standalone") \
            else max(self.chunk, min(RUNTIME_BLOCK, cfg.samples))

    def batch(self, idx):
        """Input rates and target rates (n, 785), (n, 10) of training images ``idx``."""
        cfg = self.cfg
        targets = np.zeros((len(idx), N_OUT))
        targets[np.arange(len(idx)), self.raw.train_labels[idx]] = cfg.target_rate
        return encode(self.raw.train_images[idx] / 255.0, cfg.rate_per_step), targets

    def _new_net(self, session, idx, size):
        rates, targets = self.batch(idx)
        active = np.r_[np.ones(len(idx)), np.zeros(size - len(idx))]
        rates = np.vstack([rates, np.zeros((size - len(idx), self.n_in))])
        targets = np.vstack([targets, np.zeros((size - len(idx), N_OUT))])
        net = LearningNet(session, rates, targets, self.w_in, self.w_out, self.plastic_in,
                          self.plastic_out, self.cfg, record_weights=self.pricer.active,
                          active=active)
        net.s_in.theta, net.s_out.theta = self.theta
        return net

    def run(self, progress=None) -> SpikingTrainResult:
        cfg = self.cfg
        initial_rate_acc = self.rate_accuracy()
        initial_spiking = final_spiking = None
        with Session(cfg.target, cfg.seed) as session:
            standalone = session.standalone
            net = self._new_net(session, self.sample_idx[:self.chunk], self.chunk) \
                if standalone else None
            if cfg.eval_images:
                initial_spiking = spiking_accuracy(session, net, self.w_in, self.w_out,
                                                   self.test_rates, self.raw.test_labels, cfg)
            done, block_start, block_end, last_read = 0, 0, 0, None
            while done < cfg.samples:
                n = min(self.chunk, cfg.samples - done)
                idx = self.sample_idx[done:done + n]
                if standalone:
                    rates, targets = self.batch(idx)
                    pad = self.chunk - n
                    self.sim_seconds += net.run_standalone(
                        np.vstack([rates, np.zeros((pad, self.n_in))]),
                        np.vstack([targets, np.zeros((pad, N_OUT))]),
                        np.r_[np.ones(n), np.zeros(pad)], self.w_in, self.w_out, self.theta)
                    last_read = None  # every standalone run starts its meters at zero
                else:
                    if done >= block_end:
                        block_start, block_end = done, min(cfg.samples, done + self.block_size)
                        net = self._new_net(session, self.sample_idx[done:block_end],
                                            block_end - done)
                        last_read = None
                    self.sim_seconds += net.run_runtime(n, last=done + n == block_end)
                last_read = self._account(net, n, last_read)
                # record k is presentation k of the network's run(s); a runtime chunk's last
                # presentation is read out at the start of the next chunk
                lo = 0 if standalone else done - block_start
                online = self._online_accuracy(net, lo, idx)
                done += n
                self.theta = update_thresholds(self.theta, self._last_delta, n, self.n_plastic,
                                               self.fractions)
                if not standalone:
                    net.s_in.theta, net.s_out.theta = self.theta
                self._record(done, online, progress)
            if cfg.eval_images:
                final_spiking = spiking_accuracy(session, net, self.w_in, self.w_out,
                                                 self.test_rates, self.raw.test_labels, cfg)
            setup_seconds = session.setup_seconds
        return self._result(net, initial_rate_acc, initial_spiking, final_spiking,
                            setup_seconds)

    def _account(self, net, n, last_read):
        """Read the weights and meters after a chunk; tally hardware statistics."""
        self.w_in, self.w_out = net.weights(self.w_in, self.w_out)
        meters = net.meters()
        delta = meters if last_read is None else \
            {k: tuple(a - b for a, b in zip(meters[k], last_read[k])) for k in meters}
        for layer in range(2):
            m0 = delta["m0"][layer]
            self.m0_maps[layer] = m0 if self.m0_maps[layer] is None else \
                self.m0_maps[layer] + m0
            self.totals[layer] += [m0.sum(), delta["m1"][layer].sum(),
                                   delta["m1pot"][layer].sum()]
        if self.pricer.active:
            self.pricer.tally(net, n)
        self._last_delta = delta
        self._idx = (net.idx_in, net.idx_out)
        return meters

    def _online_accuracy(self, net, lo, idx):
        counts, v = net.readout()
        hi = min(lo + len(idx), len(counts))
        if hi <= lo:
            return float("nan")
        pred = predict(counts[lo:hi], v[lo:hi])
        return float(np.mean(pred == self.raw.train_labels[idx[:hi - lo]]))

    def rate_accuracy(self) -> float:
        scores = rate_equivalent_scores(self.w_in, self.w_out, self.test_rates)
        if not np.all(np.isfinite(scores)):
            return float("nan")
        return float(np.mean(np.argmax(scores, axis=1) == self.raw.test_labels))

    def _record(self, done, online, progress):
        t = self.totals
        point = {"samples": done, "accuracy": self.rate_accuracy(), "online_accuracy": online,
                 "M0_input": int(t[0, 0]), "M0_output": int(t[1, 0]),
                 "M1_input": float(t[0, 1]), "M1_output": float(t[1, 1]),
                 "seconds": self.sim_seconds, "theta_input": self.theta[0],
                 "theta_output": self.theta[1]}
        for key, value in point.items():
            self.curves[key].append(value)
        if progress is not None:
            progress(dict(point, max_samples=self.cfg.samples))

    def _result(self, net, initial_rate_acc, initial_spiking, final_spiking, setup_seconds):
        cfg = self.cfg
        energy, counts = energy_summary(self.totals, self.m0_maps, self._idx, self.w_start,
                                        self.w_in, self.w_out, self.units)
        curves = {k: np.asarray(v) for k, v in self.curves.items()}
        reached = np.flatnonzero(curves["accuracy"] >= cfg.target_accuracy)
        made = {layer: float(self.totals[li, 0] / (cfg.samples * self.n_plastic[li]))
                if self.n_plastic[li] else 0.0 for li, layer in enumerate(LAYERS)}
        thresholded = min(self.fractions) < 1.0
        return SpikingTrainResult(
            config=cfg, samples=cfg.samples,
            rate_equivalent_accuracy=float(curves["accuracy"][-1]),
            spiking_accuracy=final_spiking, initial_rate_equivalent_accuracy=initial_rate_acc,
            initial_spiking_accuracy=initial_spiking,
            samples_to_target=int(curves["samples"][reached[0]]) if reached.size else None,
            curves=curves, energy=energy, write_counts=counts, plastic_units=self.units,
            w_in=self.w_in, w_out=self.w_out,
            write_fraction={"target": dict(zip(LAYERS, self.fractions)), "measured": made},
            thresholds={"start": dict(zip(LAYERS, self.theta_start)),
                        "end": dict(zip(LAYERS, self.theta)),
                        "kind": "threshold inside the run, recalibrated between runs"
                        if thresholded else "none"},
            simulation_seconds=self.sim_seconds, build_seconds=setup_seconds,
            total_seconds=time.perf_counter() - self.t0,
            hardware=self.pricer.report(counts, cfg.samples))


def predict(counts, v) -> np.ndarray:
    """Most output spikes; ties go to the highest membrane potential."""
    tied = counts == counts.max(axis=1, keepdims=True)
    return np.argmax(np.where(tied, v, -np.inf), axis=1)


def spiking_accuracy(session, net, w_in, w_out, test_rates, labels, cfg) -> float:
    """Present the first ``cfg.eval_images`` test images as spikes, without learning (a new
    runtime network, or the compiled standalone one in chunk-sized batches)."""
    n = cfg.eval_images
    rates, y = test_rates[:n], labels[:n]
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
            preds.append(predict(counts[:len(r)], v[:len(r)]))
        pred = np.concatenate(preds)
    else:
        eval_net = LearningNet(session, rates, np.zeros((n, N_OUT)), w_in, w_out,
                               np.zeros(w_in.shape), np.zeros(w_out.shape), cfg, learn=False)
        eval_net.run_runtime(n, last=True)
        pred = predict(*eval_net.readout())
    return float(np.mean(pred == y))


def initial_thresholds(w_in, w_out, plastic_in, plastic_out, fractions, cfg, calibration):
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


def update_thresholds(theta, delta, n, n_plastic, fractions):
    """Move each threshold by the ratio of measured to wanted write fraction (at most
    ``THETA_STEP_LIMIT`` either way); a zero threshold restarts from 1e-6."""
    new = list(theta)
    for layer in range(2):
        p = fractions[layer]
        if p >= 1.0 or n_plastic[layer] == 0 or n == 0:
            continue
        made = delta["m0"][layer].sum() / (n * n_plastic[layer])
        factor = min(max(made / p, 1.0 / THETA_STEP_LIMIT), THETA_STEP_LIMIT)
        new[layer] = float(theta[layer] * factor) if theta[layer] > 0 else 1e-6
    return new


def energy_summary(totals, m0_maps, idx, w_start, w_in, w_out, units):
    """The EnergyMeter summary (same keys and semantics as rate training) and the full
    write-count maps (n_in, hidden), (hidden, 10)."""
    from ..energy import EnergyMeter
    from ..kernels import MF_M1, MF_M1_POT
    meter = EnergyMeter(w_start[0], w_start[1], units)
    counts = (np.zeros(w_start[0].shape, np.int32), np.zeros(w_start[1].shape, np.int32))
    for layer in range(2):
        meter.writes[layer] = int(round(totals[layer, 0]))
        meter.sums[layer, MF_M1] = totals[layer, 1]
        meter.sums[layer, MF_M1_POT] = totals[layer, 2]
        counts[layer][idx[layer]] = m0_maps[layer]
    meter.counts_plastic = (counts[0][:, units], counts[1][units, :])
    return meter.summary(w_in, w_out), counts
