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
