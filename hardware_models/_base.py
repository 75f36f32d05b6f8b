"""Base class shared by the hardware models: common fields, pricing skeleton, description."""
from dataclasses import dataclass, fields
import math

import numpy as np

from ._validate import HardwareModelError, check_float, check_str
from .endurance import lifetime_from_counts
from .report import EnergyReport, as_layer_stats, check_layer_shapes
from . import tally as T
from .tally import STAT_NAMES, STAT_NOOP, STAT_NOOP_ABS_DW


ROWS_CHARGED = ("written", "touched")


@dataclass
class HardwareModel:
    """Common fields of every hardware model (not used directly)."""

    name: str = "model"
    """Registry name of a preset, or a label for a custom model."""
    citation: str = ""
    """Source of the default numbers; presets must name the paper or tool."""
    w_max: float = 1.0
    """Largest weight magnitude the device represents: weights span [-w_max, w_max];
    network weight units."""
    endurance_cycles: float | None = math.inf
    """Write cycles one cell survives; inf: unlimited; None: not known."""

    kind = "none"

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every field; raise HardwareModelError with a clear message if one is bad."""
        check_str(self, "name", self.name)
        check_str(self, "citation", self.citation)
        self.w_max = check_float(self, "w_max", self.w_max, lo=0.0, lo_open=True)
        self.endurance_cycles = check_float(self, "endurance_cycles", self.endurance_cycles,
                                            lo=0.0, lo_open=True, allow_inf=True,
                                            allow_none=True)

    # --- to be provided by each model ---------------------------------------------------
    def kernel_params(self):
        """float64 parameter vector read by the compiled tallies (see ``tally.py``)."""
        raise NotImplementedError

    def _layer_energy(self, s, shape):
        """dict of energy terms (J) for one layer's statistics ``s`` (length N_STATS)."""
        raise NotImplementedError

    def _layer_latency(self, s, shape):
        """Write latency (s) of one layer, or None."""
        return None

    def _counts(self, total):
        """Event totals (dict) from the statistics summed over layers."""
        return {name: float(total[i]) for i, name in enumerate(STAT_NAMES)}

    def _extra(self, total):
        return {}

    def _notes(self):
        return []

    def key_parameters(self):
        """Key parameters with units for listings (dict name -> value)."""
        return {}

    # kernel parameter slots the tallies depend on (slot -> label); the other fields only
    # enter pricing, so statistics stay valid when they change
    tally_slots = {T.P_KIND: "model kind"}

    def reprice_issues(self, stored_params):
        """Why statistics tallied with ``stored_params`` cannot be priced by this model.

        Statistics depend on the kernel parameters (kind, weight range, step sizes or word
        width, rounding rule); energies, voltages, overheads and endurance can change freely.

        Parameters
        ----------
        stored_params : float64 array
            The kernel parameter vector the statistics were tallied with.

        Returns
        -------
        list of str
            Empty when this model can re-price the statistics; otherwise one message per
            differing quantity (those costs need a re-run).
        """
        mine = self.kernel_params()
        stored = np.zeros(T.N_PARAMS)
        v = np.asarray(stored_params, dtype=np.float64).ravel()[:T.N_PARAMS]
        stored[:v.size] = v
        issues = []
        for slot, label in self.tally_slots.items():
            if not np.isclose(mine[slot], stored[slot], rtol=1e-9, atol=0.0):
                issues.append(f"{self.name}: {label} differs (tallied with {stored[slot]:.6g},"
                              f" model has {mine[slot]:.6g}): needs a re-run")
                if slot == T.P_KIND:
                    break
        return issues

    def summary(self):
        """One line describing the model for ``neuroenergy hardware --list``."""
        return self.kind

    # --- shared -------------------------------------------------------------------------
    def _rows(self, s):
        """Rows that pay the per-row overhead in one layer's statistics ``s``."""
        if getattr(self, "rows_charged", "written") == "touched":
            return s[T.STAT_ROWS]
        return s[T.STAT_ROWS_ACTIVE]

    def price(self, stats, write_counts=None, layer_shapes=None, n_steps=None):
        """Price the writes of one training run.

        Parameters
        ----------
        stats : float64 array, shape (n_layers, N_STATS)
            This device's statistics filled by the training kernels (``tally_write`` and
            ``tally_row``).
        write_counts : sequence of int arrays, optional
            Per-cell write counts, one (rows, cols) array per layer, for the lifetime.
        layer_shapes : sequence of (rows, cols), optional
            Weight-matrix shape per layer (rows = presynaptic index); needed for line and
            half-select energy. Taken from ``write_counts`` when omitted.
        n_steps : int, optional
            Training samples in the run.

        Returns
        -------
        EnergyReport
        """
        s = as_layer_stats(stats)
        n_layers = s.shape[0]
        if write_counts is not None and len(write_counts) != n_layers:
            raise HardwareModelError(
                f"write_counts has {len(write_counts)} layers but stats has {n_layers}.")
        if layer_shapes is None and write_counts is not None:
            layer_shapes = [np.shape(c) for c in write_counts]
        shapes = check_layer_shapes(layer_shapes, n_layers)
        if n_steps is not None:
            if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
                raise HardwareModelError(
                    f"n_steps must be a non-negative int. Got {n_steps!r} instead.")
            n_steps = int(n_steps)
        layer_terms, layer_total, latency = [], [], 0.0
        for layer in range(n_layers):
            shape = None if shapes is None else shapes[layer]
            terms = {k: float(v) for k, v in self._layer_energy(s[layer], shape).items()}
            layer_terms.append(terms)
            layer_total.append(math.fsum(terms.values()))
            lat = self._layer_latency(s[layer], shape)
            latency = None if lat is None or latency is None else latency + lat
        keys = list(layer_terms[0]) if layer_terms else []
        breakdown = {k: math.fsum(t[k] for t in layer_terms) for k in keys}
        total = s.sum(axis=0)
        lifetime = None
        if write_counts is not None:
            lifetime = lifetime_from_counts(write_counts, self.endurance_cycles, n_steps,
                                            shapes)
        return EnergyReport(
            model=self.name, kind=self.kind, energy_j=math.fsum(layer_total),
            breakdown_j=breakdown, layer_energy_j=layer_total, layer_breakdown_j=layer_terms,
            latency_s=latency, lifetime=lifetime, lost_updates=int(round(total[STAT_NOOP])),
            lost_abs_dw=float(total[STAT_NOOP_ABS_DW]), counts=self._counts(total),
            extra=self._extra(total), n_steps=n_steps, citation=self.citation,
            notes=self._notes())

    def describe(self):
        """Key parameters and citation of this model (for listings).

        Returns
        -------
        dict
            ``name``, ``kind``, ``class``, ``summary`` (one line), ``parameters`` (all
            fields), ``key_parameters`` and ``citation``.
        """
        params = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)
                  if f.name not in ("name", "citation")}
        key = {k: _jsonable(v) for k, v in self.key_parameters().items()}
        return {"name": self.name, "kind": self.kind, "class": type(self).__name__,
                "summary": self.summary(), "key_parameters": key,
                "parameters": params, "citation": self.citation}


def _jsonable(v):
    """inf -> 'inf' so that descriptions are strict JSON; lists element-wise."""
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return v


def fmt_energy(e_j):
    """Human-readable energy: '33 fJ', '3.3 pJ'."""
    if e_j == 0:
        return "0 J"
    for scale, unit in ((1e-18, "aJ"), (1e-15, "fJ"), (1e-12, "pJ"), (1e-9, "nJ"),
                        (1e-6, "uJ"), (1e-3, "mJ"), (1.0, "J")):
        if abs(e_j) < scale * 1000:
            return f"{e_j / scale:.3g} {unit}"
    return f"{e_j:.3g} J"


def fmt_endurance(c):
    """Human-readable endurance."""
    if c is None:
        return "endurance unknown"
    if math.isinf(c):
        return "endurance unlimited"
    return f"endurance {c:.2g} cycles"
