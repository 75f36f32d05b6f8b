"""Energy reports: what one technology would have spent on the writes of one training run."""
from dataclasses import dataclass, field
import math

import numpy as np

from ._validate import HardwareModelError
from .endurance import Lifetime
from .tally import N_STATS


def _json_float(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class EnergyReport:
    """Energy, latency and wear of one training run priced on one technology."""

    model: str
    """Registry name (or label) of the model that priced the run."""
    kind: str
    """'analog', 'digital' or 'biology'."""
    energy_j: float
    """Total write energy over all layers, joules."""
    breakdown_j: dict
    """Energy per cost term over all layers (cell, rows, lines, half_select, verify,
    refresh...), joules; the terms sum to ``energy_j``."""
    layer_energy_j: list
    """Total energy per layer, joules."""
    layer_breakdown_j: list
    """``breakdown_j`` per layer."""
    latency_s: float | None
    """Write time summed over rows written one after another, seconds; None where the model
    gives none."""
    lifetime: Lifetime | None
    """Wear summary (None when no write counts were given)."""
    lost_updates: int
    """Requested writes the device did not perform (sub-LSB digital updates, analog updates
    that round to zero pulses)."""
    lost_abs_dw: float
    """Summed |dw| of the lost updates, weight units."""
    counts: dict
    """Event totals behind the energy (writes, pulses, bits flipped, rows...)."""
    extra: dict = field(default_factory=dict)
    """Model-specific quantities in other units (e.g. 'atp' for biology)."""
    n_steps: int | None = None
    """Training samples in the run."""
    citation: str = ""
    """Source of the model's numbers."""
    notes: list = field(default_factory=list)
    """Assumptions and caveats that apply to this report."""

    @property
    def lifetime_runs(self):
        """Training runs before the first cell wears out (None if unknown)."""
        return None if self.lifetime is None else self.lifetime.lifetime_runs

    @property
    def energy_per_step_j(self):
        """Mean write energy per training sample, joules (None if n_steps unknown)."""
        return self.energy_j / self.n_steps if self.n_steps else None

    def to_dict(self):
        """JSON-able dict (non-finite floats become None; ``lifetime_runs_unlimited`` flags
        an unlimited lifetime)."""
        runs = self.lifetime_runs
        return {
            "model": self.model,
            "kind": self.kind,
            "energy_j": _json_float(self.energy_j),
            "breakdown_j": {k: _json_float(v) for k, v in self.breakdown_j.items()},
            "layer_energy_j": [_json_float(v) for v in self.layer_energy_j],
            "layer_breakdown_j": [{k: _json_float(v) for k, v in d.items()}
                                  for d in self.layer_breakdown_j],
            "latency_s": _json_float(self.latency_s),
            "lifetime_runs": _json_float(runs),
            "lifetime_runs_unlimited": runs is not None and math.isinf(runs),
            "lifetime": None if self.lifetime is None else self.lifetime.to_dict(),
            "lost_updates": int(self.lost_updates),
            "lost_abs_dw": _json_float(self.lost_abs_dw),
            "counts": {k: _json_float(v) for k, v in self.counts.items()},
            "extra": {k: _json_float(v) for k, v in self.extra.items()},
            "n_steps": self.n_steps,
            "citation": self.citation,
            "notes": list(self.notes),
        }


def as_layer_stats(stats):
    """Check and return ``stats`` as a float64 array of shape (n_layers, N_STATS)."""
    s = np.asarray(stats, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != N_STATS:
        raise HardwareModelError(
            f"stats must have shape (n_layers, {N_STATS}) for one device. "
            f"Got shape {np.shape(stats)} instead.")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise HardwareModelError("stats must be finite and non-negative.")
    return s


def check_layer_shapes(layer_shapes, n_layers):
    """Return ``layer_shapes`` as a list of (rows, cols) int tuples, or None."""
    if layer_shapes is None:
        return None
    shapes = [tuple(int(x) for x in s) for s in layer_shapes]
    if len(shapes) != n_layers or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise HardwareModelError(
            f"layer_shapes must be {n_layers} pairs (rows, cols) of positive ints, one per "
            f"layer. Got {layer_shapes!r} instead.")
    return shapes


def price_many(models, stats, write_counts=None, layer_shapes=None, n_steps=None):
    """Price one training run on several technologies at once.

    Parameters
    ----------
    models : sequence of models
        Hardware models (presets or custom); their ``name`` keys the result.
    stats : dict or float64 array
        Either ``{model.name: array (n_layers, N_STATS)}`` or the kernel's array of shape
        (n_layers, n_devices, N_STATS) with devices in the order of ``models``.
    write_counts, layer_shapes, n_steps
        As for ``model.price``; shared by all models.

    Returns
    -------
    dict
        ``{model.name: EnergyReport}`` in the order of ``models``.
    """
    models = list(models)
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise HardwareModelError(f"Model names must be unique to key the reports. Got {names}.")
    if isinstance(stats, dict):
        missing = [n for n in names if n not in stats]
        if missing:
            raise HardwareModelError(
                f"No statistics for {missing}; stats has {sorted(stats)}.")
        per_model = [stats[n] for n in names]
    else:
        arr = np.asarray(stats, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1] != len(models) or arr.shape[2] != N_STATS:
            raise HardwareModelError(
                f"stats must have shape (n_layers, {len(models)}, {N_STATS}). "
                f"Got shape {arr.shape} instead.")
        per_model = [arr[:, d, :] for d in range(len(models))]
    return {m.name: m.price(s, write_counts, layer_shapes, n_steps)
            for m, s in zip(models, per_model)}


def summary_table(reports):
    """Plain-text table of reports: technology, energy, main terms, latency, lifetime.

    Parameters
    ----------
    reports : dict of EnergyReport
        As returned by :func:`price_many`.

    Returns
    -------
    str
    """
    head = f"{'technology':<16} {'energy_j':>11} {'cell_j':>11} {'overhead_j':>11} " \
           f"{'latency_s':>10} {'lifetime_runs':>13} {'lost':>9}"
    lines = [head]
    for name, r in reports.items():
        cell = r.breakdown_j.get("cell", 0.0)
        other = r.energy_j - cell
        lat = "-" if r.latency_s is None else f"{r.latency_s:.3g}"
        runs = r.lifetime_runs
        life = "-" if runs is None else ("inf" if math.isinf(runs) else f"{runs:.3g}")
        lines.append(f"{name:<16} {r.energy_j:>11.4g} {cell:>11.4g} {other:>11.4g} "
                     f"{lat:>10} {life:>13} {r.lost_updates:>9d}")
    return "\n".join(lines)
