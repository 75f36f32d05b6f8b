"""The energy meter: what the writes of a run cost in the study's units.

M_alpha = sum over synapses and samples of |w(t) - w(t-1)|^alpha; M0 counts writes, M1 sums the
change. The minimum is M_min = sum |w_end - w_start| (every weight set once to its final
value); for alpha = 0 it is the number of synapses that changed at all. All sums are float64.

References
----------
Li & van Rossum, "Energy efficient synaptic plasticity", eLife 9:e50804 (2020).
"""
from __future__ import annotations

import numpy as np

from .kernels import MF_M1, MF_M1_POT, MF_MALPHA, N_METER_F

LAYERS = ("input", "output")


class EnergyMeter:
    """Accumulators filled by the kernels, plus the start weights for the minimum.

    ``counts`` are per-synapse write-count maps of the full layers (int32); the kernels fill
    ``counts_plastic`` (the plastic columns / rows only) and :meth:`full_counts` scatters them.
    """

    def __init__(self, w_in_start, w_out_start, units, alpha=None):
        self.writes = np.zeros(2, np.int64)
        self.sums = np.zeros((2, N_METER_F), np.float64)
        self.alpha = alpha
        self.units = np.asarray(units)
        self.w_start = (w_in_start.copy(), w_out_start.copy())
        self.counts_plastic = (np.zeros((w_in_start.shape[0], len(units)), np.int32),
                               np.zeros((len(units), w_out_start.shape[1]), np.int32))

    def full_counts(self):
        """Write-count maps (n_in, hidden) and (hidden, n_out)."""
        c_in = np.zeros(self.w_start[0].shape, np.int32)
        c_out = np.zeros(self.w_start[1].shape, np.int32)
        c_in[:, self.units] = self.counts_plastic[0]
        c_out[self.units, :] = self.counts_plastic[1]
        return c_in, c_out

    def snapshot(self) -> dict:
        """Running totals (for the curves): M0 and M1 per layer."""
        return {"M0_input": int(self.writes[0]), "M0_output": int(self.writes[1]),
                "M1_input": float(self.sums[0, MF_M1]), "M1_output": float(self.sums[1, MF_M1])}

    def summary(self, w_in_end, w_out_end) -> dict:
        """Per layer and total: M0, M1, their minima, potentiation-only M1, M_alpha, and the
        inefficiencies M / M_min."""
        out = {}
        ends = (w_in_end, w_out_end)
        for key in ("M0", "M1", "M0_min", "M1_min", "M1_potentiation"):
            out[key] = {}
        if self.alpha is not None:
            out["M_alpha"] = {}
            out["alpha"] = self.alpha
        for li, layer in enumerate(LAYERS):
            diff = np.abs(ends[li].astype(np.float64) - self.w_start[li].astype(np.float64))
            out["M0"][layer] = int(self.writes[li])
            out["M1"][layer] = float(self.sums[li, MF_M1])
            out["M0_min"][layer] = int(np.count_nonzero(diff))
            out["M1_min"][layer] = float(diff.sum())
            out["M1_potentiation"][layer] = float(self.sums[li, MF_M1_POT])
            if self.alpha is not None:
                out["M_alpha"][layer] = float(self.sums[li, MF_MALPHA])
        for key in [k for k in out if isinstance(out[k], dict)]:
            out[key]["total"] = sum(out[key][layer] for layer in LAYERS)
        out["inefficiency_M1"] = _ratio(out["M1"]["total"], out["M1_min"]["total"])
        out["inefficiency_M0"] = _ratio(out["M0"]["total"], out["M0_min"]["total"])
        return out


def _ratio(a, b):
    return float(a / b) if b > 0 else float("nan")


def layer_names(n_layers: int) -> tuple:
    """Weight-layer names: ('input', 'output') for one hidden layer; deeper networks name the
    matrices between hidden layers 'hidden1', 'hidden2', ... (hidden layer l -> l + 1)."""
    if n_layers == 2:
        return LAYERS
    return ("input",) + tuple(f"hidden{l}" for l in range(1, n_layers - 1)) + ("output",)


class LayeredEnergyMeter:
    """The general kernel's meter: any number of layers, flat per-synapse write counts, and
    the costs of update buffers (accumulate-and-write, synaptic caching).

    With a buffer, M0 / M1 count the consolidations (buffer -> weight); ``buffer_sums`` holds
    the maintenance (c sum |s| per sample) and transient-change (b sum |ds|) costs, which
    :meth:`summary` adds to M1, as does the final consolidation of the transient that is still
    part of the weights at the end (synaptic caching: ``remainder_counts``).
    """

    def __init__(self, weights_start, alpha=None):
        from .general_codes import N_BUF_F
        n = len(weights_start)
        self.names = layer_names(n)
        self.alpha = alpha
        self.writes = np.zeros(n, np.int64)
        self.sums = np.zeros((n, N_METER_F), np.float64)
        self.buffer_sums = np.zeros((n, N_BUF_F), np.float64)
        self.w_start = tuple(np.array(w, np.float32, copy=True) for w in weights_start)
        self.counts = np.zeros(sum(w.size for w in weights_start), np.int32)

    def count_maps(self):
        """Per-layer write-count maps (rows, cols), int32 views of the flat counts."""
        out, start = [], 0
        for w in self.w_start:
            out.append(self.counts[start:start + w.size].reshape(w.shape))
            start += w.size
        return tuple(out)

    def _m1(self, li):
        from .general_codes import BF_CHANGE, BF_MAINTENANCE
        return float(self.sums[li, MF_M1] + self.buffer_sums[li, BF_MAINTENANCE]
                     + self.buffer_sums[li, BF_CHANGE])

    def snapshot(self) -> dict:
        """Running totals (for the curves): M0 and M1 (buffer costs included) per layer."""
        out = {f"M0_{name}": int(self.writes[li]) for li, name in enumerate(self.names)}
        out.update({f"M1_{name}": self._m1(li) for li, name in enumerate(self.names)})
        return out

    def summary(self, weights_end, remainders=None, charge_remainder=True) -> dict:
        """As :meth:`EnergyMeter.summary`, per layer and total. ``remainders`` (per layer) is
        what the buffers still hold at the end: with ``charge_remainder`` (synaptic caching,
        where it is part of the weights and must be consolidated to last) it adds to M0 / M1;
        otherwise it is only reported. Buffer terms are listed separately when present."""
        from .general_codes import BF_CHANGE, BF_MAINTENANCE
        buffered = remainders is not None or bool(np.any(self.buffer_sums))
        keys = ["M0", "M1", "M0_min", "M1_min", "M1_potentiation"]
        if buffered:
            keys += ["M1_consolidation", "M1_maintenance", "M1_transient_change",
                     "M1_remainder"]
        out = {key: {} for key in keys}
        if self.alpha is not None:
            out["M_alpha"] = {}
            out["alpha"] = self.alpha
        for li, layer in enumerate(self.names):
            end = np.asarray(weights_end[li], np.float64)
            diff = np.abs(end - self.w_start[li].astype(np.float64))
            rest = np.zeros(0) if remainders is None else \
                np.asarray(remainders[li], np.float64).ravel()
            rest = rest[rest != 0.0]
            reported = float(np.abs(rest).sum())
            if not charge_remainder:
                rest = rest[:0]
            out["M0"][layer] = int(self.writes[li]) + int(rest.size)
            out["M1"][layer] = self._m1(li) + float(np.abs(rest).sum())
            out["M0_min"][layer] = int(np.count_nonzero(diff))
            out["M1_min"][layer] = float(diff.sum())
            out["M1_potentiation"][layer] = float(self.sums[li, MF_M1_POT] + rest[rest > 0].sum())
            if buffered:
                out["M1_consolidation"][layer] = float(self.sums[li, MF_M1])
                out["M1_maintenance"][layer] = float(self.buffer_sums[li, BF_MAINTENANCE])
                out["M1_transient_change"][layer] = float(self.buffer_sums[li, BF_CHANGE])
                out["M1_remainder"][layer] = reported
            if self.alpha is not None:
                out["M_alpha"][layer] = float(self.sums[li, MF_MALPHA]
                                              + (np.abs(rest) ** self.alpha).sum())
        for key in [k for k in out if isinstance(out[k], dict)]:
            out[key]["total"] = sum(out[key][layer] for layer in self.names)
        out["inefficiency_M1"] = _ratio(out["M1"]["total"], out["M1_min"]["total"])
        out["inefficiency_M0"] = _ratio(out["M0"]["total"], out["M0_min"]["total"])
        return out
