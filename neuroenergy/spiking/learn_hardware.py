"""Hardware pricing of spiking training: the per-write statistics of ``hardware_models``,
tallied from the weights recorded after every presentation boundary.

Brian2 applies the updates inside the run, so the writes are recovered afterwards: between two
consecutive records every synapse whose weight changed was written once, from the old value
to the new one. Rows are presynaptic neurons, as in the rate kernels.
"""
from __future__ import annotations

import numba
import numpy as np

from hardware_models import _kernel_cache, llvm_ops
from hardware_models import tally as tally_source
from hardware_models.tally import tally_row, tally_write


@numba.njit(cache=True)
def tally_history(history, pre, layer, hw_params, hw_stats, seed):
    """Tally every write between consecutive rows of ``history``.

    Parameters
    ----------
    history : float64 (n_records, n_synapses), weights after each boundary, the first row
        being the weights before the first presentation of the chunk
    pre : int64 (n_synapses,), presynaptic index of every synapse, nondecreasing
    layer : 0 (input) or 1 (output)
    hw_params : float64 (n_devices, n_params); hw_stats : float64 (2, n_devices, N_STATS)
    seed : seeds the uniform numbers of stochastic rounding
    """
    np.random.seed(seed)
    n_dev = hw_params.shape[0]
    row_max = np.zeros(max(n_dev, 1))
    for r in range(1, history.shape[0]):
        current, row_n = -1, 0
        for s in range(history.shape[1] + 1):
            i = pre[s] if s < history.shape[1] else -1
            if i != current:
                if row_n > 0:
                    for d in range(n_dev):
                        tally_row(hw_params[d], hw_stats[layer, d], row_n, row_max[d])
                if s == history.shape[1]:
                    break
                current, row_n = i, 0
                for d in range(n_dev):
                    row_max[d] = 0.0
            w_old, w_new = history[r - 1, s], history[r, s]
            if w_new != w_old:
                row_n += 1
                for d in range(n_dev):
                    size = tally_write(hw_params[d], hw_stats[layer, d], w_old, w_new,
                                       np.random.random())
                    row_max[d] = max(row_max[d], size)


class HardwarePricer:
    """Collects the statistics of the configured presets (inactive without presets)."""

    def __init__(self, names, hidden, n_in):
        self.names = tuple(names)
        self.active = bool(self.names)
        self.shapes = [(n_in, hidden), (hidden, 10)]
        self.chunks = 0
        if self.active:
            from ..hardware import HardwareTally
            self.tally_ = HardwareTally(self.names)

    def tally(self, net, n_presentations) -> None:
        """Tally the chunk just simulated by ``net`` (its weight monitors)."""
        for layer, (hist, idx) in enumerate(zip(net.weight_history(),
                                                (net.idx_in, net.idx_out))):
            hist = np.ascontiguousarray(hist[:n_presentations + 1], np.float64)
            tally_history(hist, np.ascontiguousarray(idx[0], np.int64), layer,
                          self.tally_.params, self.tally_.stats, self.chunks * 2 + layer)
        self.chunks += 1

    def report(self, write_counts, n_steps) -> dict:
        if not self.active:
            return {}
        return self.tally_.report(write_counts, self.shapes, n_steps)


# tally_history inlines tally.py's tallies (and llvm_ops' operations in them), which numba's
# cache does not check
_kernel_cache.refresh(tally_history, [llvm_ops.__file__, tally_source.__file__, __file__],
                      "learn_hardware.deps.sha256")
