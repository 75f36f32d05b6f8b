"""Endurance: which cell wears out first, and after how many training runs.

Lifetime = endurance / largest per-cell write rate (NVSim / NVMExplorer convention), so the
most-written cell decides. The per-cell write counts come from the training kernels, one
integer array per layer (shape = the layer's weight matrix).
"""
from dataclasses import asdict, dataclass, field
import math

import numpy as np

from ._validate import HardwareModelError

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class Lifetime:
    """Wear summary of one training run on one technology."""

    endurance_cycles: float | None
    """Write cycles a cell survives; inf: unlimited; None: not known."""
    max_cell_writes: int
    """Writes received by the most-written cell in the run."""
    max_cell: tuple | None
    """(layer, row, column) of the most-written cell; None when nothing was written."""
    layer_max_writes: list
    """Most writes of any cell, per layer."""
    percentiles: dict
    """Per-cell write-count percentiles over all cells ('p50', 'p90', 'p99', 'p99.9')."""
    mean_cell_writes: float
    """Mean writes per cell over all cells."""
    fraction_cells_written: float
    """Fraction of cells written at least once."""
    n_cells: int
    """Number of cells (synapses) over all layers."""
    n_steps: int | None = None
    """Training samples in the run (None: not given)."""
    max_writes_per_step: float | None = None
    """Largest per-cell write rate, writes per training sample."""
    lifetime_steps: float | None = None
    """Training samples before the first cell wears out (endurance / max rate)."""
    lifetime_runs: float | None = None
    """Identical training runs before the first cell wears out (endurance / max writes);
    inf when unlimited or nothing was written, None when the endurance is not known."""
    notes: list = field(default_factory=list)
    """Assumptions behind the numbers."""

    def to_dict(self):
        """JSON-able dict; non-finite floats become None (with ``*_unlimited`` flags)."""
        d = asdict(self)
        d["max_cell"] = list(self.max_cell) if self.max_cell is not None else None
        for key in ("endurance_cycles", "lifetime_steps", "lifetime_runs"):
            v = d[key]
            d[key + "_unlimited"] = v is not None and math.isinf(v)
            d[key] = v if v is not None and math.isfinite(v) else None
        return d


def _percentile_from_hist(hist, q):
    """Smallest count c with cdf(c) >= q (numpy's 'inverted_cdf' percentile)."""
    total = hist.sum()
    cdf = np.cumsum(hist)
    target = q / 100.0 * total
    return int(np.searchsorted(cdf, target, side="left"))


def lifetime_from_counts(write_counts, endurance_cycles, n_steps=None, layer_shapes=None):
    """Summarise per-cell write counts into a :class:`Lifetime`.

    Parameters
    ----------
    write_counts : sequence of int arrays
        One array per layer, shape (rows, cols): writes each cell received in the run.
    endurance_cycles : float or None
        Write cycles a cell survives (inf: unlimited, None: unknown).
    n_steps : int, optional
        Training samples in the run, for the per-step write rate.
    layer_shapes : sequence of (rows, cols), optional
        If given, each count array must have this shape.

    Returns
    -------
    Lifetime
    """
    counts = [np.asarray(c) for c in write_counts]
    if layer_shapes is not None and len(layer_shapes) != len(counts):
        raise HardwareModelError(
            f"write_counts has {len(counts)} layers but layer_shapes has {len(layer_shapes)}.")
    hist = np.zeros(1, dtype=np.int64)
    layer_max = []
    best, best_cell, n_cells, total = -1, None, 0, 0
    for layer, c in enumerate(counts):
        if c.dtype.kind not in "iu":
            raise HardwareModelError(
                f"write_counts[{layer}] must be an integer array. Got dtype {c.dtype} instead.")
        if layer_shapes is not None and tuple(c.shape) != tuple(layer_shapes[layer]):
            raise HardwareModelError(
                f"write_counts[{layer}] has shape {c.shape} but layer_shapes[{layer}] is "
                f"{tuple(layer_shapes[layer])}.")
        if c.size == 0:
            layer_max.append(0)
            continue
        if c.min() < 0:
            raise HardwareModelError(f"write_counts[{layer}] has negative entries.")
        flat = c.ravel().astype(np.int64)
        h = np.bincount(flat)
        if h.size > hist.size:
            h[:hist.size] += hist
            hist = h
        else:
            hist[:h.size] += h
        m = int(flat.max())
        layer_max.append(m)
        n_cells += flat.size
        total += int(flat.sum())
        if m > best:
            best = m
            best_cell = (layer,) + tuple(int(i) for i in np.unravel_index(int(flat.argmax()),
                                                                            c.shape))
    best = max(best, 0)
    if n_cells:
        pct = {f"p{q:g}": _percentile_from_hist(hist, q) for q in PERCENTILES}
        written = 1.0 - hist[0] / n_cells
        mean = total / n_cells
    else:
        pct = {f"p{q:g}": 0 for q in PERCENTILES}
        written, mean = 0.0, 0.0
    if best == 0:
        best_cell = None
    notes = ["one write event of a cell = one endurance cycle, whatever its pulse count"]
    rate = best / n_steps if n_steps else None
    if endurance_cycles is None:
        runs = steps = None
        notes.append("endurance not known for this technology: no lifetime projected")
    elif best == 0 or math.isinf(endurance_cycles):
        runs = steps = math.inf
    else:
        runs = endurance_cycles / best
        steps = endurance_cycles / rate if rate else None
    return Lifetime(endurance_cycles=endurance_cycles, max_cell_writes=best,
                    max_cell=best_cell, layer_max_writes=layer_max, percentiles=pct,
                    mean_cell_writes=float(mean), fraction_cells_written=float(written),
                    n_cells=int(n_cells), n_steps=n_steps, max_writes_per_step=rate,
                    lifetime_steps=steps, lifetime_runs=runs, notes=notes)
