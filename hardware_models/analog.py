"""Analog crossbar model (RRAM, PCM, FeFET, ECRAM...): weights as conductances, updates as
programming pulses.

A weight w in [-w_max, w_max] maps linearly onto a conductance in [g_min_s, g_max_s]
(g = g_min + (w + w_max) / (2 w_max) (g_max - g_min)). A change dw becomes
``pulses = rule(|dw| / step)`` where step = ``dw_min * w_max`` for potentiation and
``dw_min_dep * w_max`` for depression, with the rounding rule

- 'nearest' (MLP NeuroSim V3.0): changes under half a step give no pulse;
- 'ceil' (DNN+NeuroSim V2.1): ceil(|dw| / step), only where |dw| >= one step;
- 'stochastic' (IBM aihwkit): floor(|dw| / step + u), expected value |dw| / step.

Energy of one layer (sums over the run, from the statistics of ``tally.py``):

- cell: ``E_pot * P_pot + E_dep * P_dep`` with constant pulse energies, or, when
  ``conductance_dependent``, ``V^2 t (g_min P + (g_max - g_min) sum(pulses * g_norm))``
  (V^2 G t, G the mean of the conductances before and after the write);
- rows: ``row_overhead_j`` per row written in a step (rows with at least one pulse);
- lines: ``C V^2`` per pulse on the written column (C = rows * wire_cap_per_cell_f, MLP
  NeuroSim) plus ``C V^2`` per pulse slot of the row line (C = cols * wire_cap_per_cell_f,
  slots = largest pulse count of the row, DNN+NeuroSim);
- half_select (passive crossbar only): ``(V/2)^2 g_mid t`` per half-selected cell and pulse
  slot: unselected cells of a written row during its pulse train and the other cells of each
  written column during each of its pulses;
- verify: one read (``read_energy_j``) after every pulse when ``verify`` is on;
- refresh (unidirectional pairs): ``refresh_energy_j`` per refresh plus the potentiation
  pulses that re-program |w| onto one device.

Latency of one layer: rows are written one after another, each lasting its largest pulse
count times the pulse width (plus a verify read per pulse slot) plus ``row_time_s``.
"""
from dataclasses import dataclass

import numpy as np

from ._base import ROWS_CHARGED, HardwareModel, fmt_endurance, fmt_energy
from ._validate import HardwareModelError, check_bool, check_choice, check_float
from . import tally as T

ROUNDING_RULES = {"nearest": T.ROUND_NEAREST, "ceil": T.ROUND_CEIL,
                  "stochastic": T.ROUND_STOCHASTIC}
ACCESS = ("1T1R", "passive")


@dataclass
class AnalogCrossbar(HardwareModel):
    """Analog non-volatile crossbar; defaults: MLP NeuroSim V3.0 ideal RRAM device."""

    name: str = "analog-crossbar"
    """Registry name of a preset, or a label for a custom model."""
    dw_min: float = 2.0 / 64
    """Weight change of one potentiation pulse as a fraction of w_max (aihwkit convention on
    [-1, 1]; 2 / dw_min pulses span the full range; for pairs, 1 / dw_min pulses fill one
    device); unitless."""
    dw_min_dep: float | None = None
    """Weight change of one depression pulse as a fraction of w_max (None: same as dw_min);
    unitless."""
    rounding: str = "nearest"
    """Pulse count rule: 'nearest' (MLP NeuroSim), 'ceil' (DNN+NeuroSim), 'stochastic'
    (aihwkit)."""
    pulse_energy_pot_j: float = 0.0
    """Energy of one potentiation pulse when not conductance dependent; joules."""
    pulse_energy_dep_j: float = 0.0
    """Energy of one depression pulse when not conductance dependent; joules."""
    conductance_dependent: bool = True
    """Price each pulse as V^2 G t (G from the weight mapping) instead of the constants."""
    g_min_s: float = 100e-9
    """Conductance at w = -w_max; siemens."""
    g_max_s: float = 5e-6
    """Conductance at w = +w_max; siemens."""
    v_pot_v: float = 2.0
    """Potentiation write voltage; volts."""
    v_dep_v: float = 2.0
    """Depression write voltage (magnitude); volts."""
    pulse_width_pot_s: float = 10e-9
    """Potentiation pulse width; seconds."""
    pulse_width_dep_s: float = 10e-9
    """Depression pulse width; seconds."""
    access: str = "1T1R"
    """'1T1R' (access transistor per cell) or 'passive' (crossbar with half-select energy)."""
    row_overhead_j: float = 0.0
    """Decoder / driver energy per row written in a step; joules."""
    row_time_s: float = 0.0
    """Fixed time added per row written in a step; seconds."""
    rows_charged: str = "written"
    """Rows that pay the per-row overhead: 'written' (at least one device change; NeuroSim
    skips unchanged batches) or 'touched' (every row the rule wrote to in a step)."""
    wire_cap_per_cell_f: float = 0.0
    """Wire capacitance of one cell pitch of a row or column line (0: lines not priced);
    farads."""
    verify: bool = False
    """Read the cell after every pulse (write-verify)."""
    read_energy_j: float = 0.0
    """Energy of one verify (or refresh) read; joules."""
    read_time_s: float = 0.0
    """Duration of one verify read; seconds."""
    write_noise: float = 0.0
    """Cycle-to-cycle std of one pulse's weight change as a fraction of the full range
    2 w_max (MLP NeuroSim sigmaCtoC; n pulses: std * sqrt(n)); unitless."""
    pair: bool = False
    """Unidirectional pair w = G+ - G- (potentiation pulses only, refresh when a device
    saturates; Nandakumar et al. 2020)."""
    refresh_energy_j: float = 0.0
    """Fixed energy of one pair refresh (reads and RESETs of both devices); joules."""

    kind = "analog"
    tally_slots = {T.P_KIND: "model kind", T.P_W_MAX: "w_max", T.P_ROUNDING: "rounding rule",
                   T.P_DW_POT: "potentiation step", T.P_DW_DEP: "depression step",
                   T.P_PAIR: "pair mode"}

    def validate(self):
        super().validate()
        c = self
        c.dw_min = check_float(c, "dw_min", c.dw_min, lo=0.0, hi=2.0, lo_open=True)
        if c.dw_min_dep is not None:
            c.dw_min_dep = check_float(c, "dw_min_dep", c.dw_min_dep, lo=0.0, hi=2.0,
                                       lo_open=True, allow_none=True)
        check_choice(c, "rounding", c.rounding, tuple(ROUNDING_RULES))
        check_choice(c, "rows_charged", c.rows_charged, ROWS_CHARGED)
        check_choice(c, "access", c.access, ACCESS)
        for name in ("pulse_energy_pot_j", "pulse_energy_dep_j", "g_min_s", "g_max_s",
                     "v_pot_v", "v_dep_v", "pulse_width_pot_s", "pulse_width_dep_s",
                     "row_overhead_j", "row_time_s", "wire_cap_per_cell_f", "read_energy_j",
                     "read_time_s", "write_noise", "refresh_energy_j"):
            setattr(c, name, check_float(c, name, getattr(c, name), lo=0.0))
        for name in ("conductance_dependent", "verify", "pair"):
            check_bool(c, name, getattr(c, name))
        if c.g_max_s < c.g_min_s:
            raise HardwareModelError(
                f"The 'g_max_s' parameter of {type(c).__name__} must be >= g_min_s "
                f"({c.g_min_s!r}). Got {c.g_max_s!r} instead.")
        needs_g = c.conductance_dependent or c.access == "passive"
        if needs_g and c.g_max_s <= 0.0:
            raise HardwareModelError(
                f"The 'g_max_s' parameter of {type(c).__name__} must be a float > 0 when "
                f"conductance_dependent is on or access is 'passive'. Got {c.g_max_s!r} "
                f"instead.")
        if c.pair and c.access == "passive":
            raise HardwareModelError(
                f"{type(c).__name__}: unidirectional pairs are modelled on 1T1R arrays only; "
                f"set access='1T1R' or pair=False.")

    # --- derived ------------------------------------------------------------------------
    @property
    def step_pot_w(self):
        """Weight change of one potentiation pulse, weight units."""
        return self.dw_min * self.w_max

    @property
    def step_dep_w(self):
        """Weight change of one depression pulse, weight units."""
        d = self.dw_min if self.dw_min_dep is None else self.dw_min_dep
        return d * self.w_max

    @property
    def levels_pot(self):
        """Potentiation pulses that span the range (one device of a pair)."""
        return (1.0 if self.pair else 2.0) / self.dw_min

    @property
    def levels_dep(self):
        """Depression pulses that span the range."""
        d = self.dw_min if self.dw_min_dep is None else self.dw_min_dep
        return (1.0 if self.pair else 2.0) / d

    def pulse_energy_range_j(self):
        """(lowest, highest) potentiation pulse energy, joules."""
        if self.conductance_dependent:
            k = self.v_pot_v ** 2 * self.pulse_width_pot_s
            return k * self.g_min_s, k * self.g_max_s
        return self.pulse_energy_pot_j, self.pulse_energy_pot_j

    def kernel_params(self):
        p = np.zeros(T.N_PARAMS, dtype=np.float64)
        p[T.P_KIND] = T.KIND_ANALOG
        p[T.P_W_MAX] = self.w_max
        p[T.P_ROUNDING] = ROUNDING_RULES[self.rounding]
        p[T.P_DW_POT] = self.step_pot_w
        p[T.P_DW_DEP] = self.step_dep_w
        p[T.P_NOISE] = self.write_noise * 2.0 * self.w_max
        p[T.P_PAIR] = 1.0 if self.pair else 0.0
        return p

    # --- pricing ------------------------------------------------------------------------
    def _pulse_cost(self, pulses, g_sum, v, t, e_const):
        if self.conductance_dependent:
            return v * v * t * (self.g_min_s * pulses + (self.g_max_s - self.g_min_s) * g_sum)
        return e_const * pulses

    def _layer_energy(self, s, shape):
        p_pot, p_dep = s[T.STAT_SIZE_POT], s[T.STAT_SIZE_DEP]
        cell = (self._pulse_cost(p_pot, s[T.STAT_G_POT], self.v_pot_v,
                                 self.pulse_width_pot_s, self.pulse_energy_pot_j)
                + self._pulse_cost(p_dep, s[T.STAT_G_DEP], self.v_dep_v,
                                   self.pulse_width_dep_s, self.pulse_energy_dep_j))
        terms = {"cell": cell, "rows": self.row_overhead_j * self._rows(s)}
        v_max = max(self.v_pot_v, self.v_dep_v)
        t_max = max(self.pulse_width_pot_s, self.pulse_width_dep_s)
        needs_shape = self.wire_cap_per_cell_f > 0 or self.access == "passive"
        if needs_shape and shape is None and (p_pot + p_dep) > 0:
            raise HardwareModelError(
                f"{self.name}: layer_shapes (or write_counts) are needed to price line and "
                f"half-select energy.")
        lines = half = 0.0
        if shape is not None:
            rows, cols = shape
            c = self.wire_cap_per_cell_f
            lines = c * (rows * (self.v_pot_v ** 2 * p_pot + self.v_dep_v ** 2 * p_dep)
                         + cols * v_max ** 2 * s[T.STAT_ROW_MAX])
            if self.access == "passive":
                g_mid = 0.5 * (self.g_min_s + self.g_max_s)
                e_half = (v_max / 2.0) ** 2 * g_mid * t_max
                in_rows = cols * s[T.STAT_ROW_MAX] - s[T.STAT_ROW_NW_MAX]
                in_cols = (rows - 1) * (p_pot + p_dep)
                half = e_half * (max(in_rows, 0.0) + in_cols)
        terms["lines"] = lines
        terms["half_select"] = half
        terms["verify"] = self.read_energy_j * (p_pot + p_dep) if self.verify else 0.0
        if self.pair:
            # re-programming starts from a RESET device: mean normalised conductance 0.5
            reprogram = self._pulse_cost(s[T.STAT_REFRESH_PULSES],
                                         0.5 * s[T.STAT_REFRESH_PULSES], self.v_pot_v,
                                         self.pulse_width_pot_s, self.pulse_energy_pot_j)
            terms["refresh"] = self.refresh_energy_j * s[T.STAT_REFRESH] + reprogram
        else:
            terms["refresh"] = 0.0
        return terms

    def _layer_latency(self, s, shape):
        t_max = max(self.pulse_width_pot_s, self.pulse_width_dep_s)
        per_slot = t_max + (self.read_time_s if self.verify else 0.0)
        return s[T.STAT_ROW_MAX] * per_slot + self._rows(s) * self.row_time_s

    def _counts(self, total):
        return {"writes": total[T.STAT_WRITES], "cells_changed": total[T.STAT_CHANGED],
                "pulses_pot": total[T.STAT_SIZE_POT], "pulses_dep": total[T.STAT_SIZE_DEP],
                "pulses": total[T.STAT_SIZE_POT] + total[T.STAT_SIZE_DEP],
                "rows_touched": total[T.STAT_ROWS], "rows_written": total[T.STAT_ROWS_ACTIVE],
                "row_max_pulses_sum": total[T.STAT_ROW_MAX],
                "refreshes": total[T.STAT_REFRESH], "clipped": total[T.STAT_CLIPPED],
                "abs_dw": total[T.STAT_ABS_DW]}

    def _notes(self):
        notes = [f"rounding rule: {self.rounding}"]
        if self.pair:
            notes.append("pair refreshes are expected values: the pulsed device's fill level "
                         "is taken as uniform over its range (hazard = pulses / capacity)")
        if self.wire_cap_per_cell_f == 0:
            notes.append("line (wire) energy not priced: wire_cap_per_cell_f = 0")
        if self.row_overhead_j == 0:
            notes.append("per-row decoder/driver energy not priced: row_overhead_j = 0")
        return notes

    # --- description --------------------------------------------------------------------
    def key_parameters(self):
        lo, hi = self.pulse_energy_range_j()
        d = {"levels_pot": self.levels_pot, "levels_dep": self.levels_dep,
             "rounding": self.rounding, "access": self.access, "pair": self.pair,
             "pulse_energy_pot_j": [lo, hi], "pulse_width_pot_s": self.pulse_width_pot_s,
             "endurance_cycles": self.endurance_cycles}
        if not self.conductance_dependent:
            d["pulse_energy_dep_j"] = self.pulse_energy_dep_j
        return d

    def summary(self):
        lo, hi = self.pulse_energy_range_j()
        e = fmt_energy(lo) if lo == hi else f"{fmt_energy(lo)}-{fmt_energy(hi)}"
        how = " (V^2 G t)" if self.conductance_dependent else ""
        pair = ", unidirectional pairs" if self.pair else ""
        return (f"analog {self.access}{pair}, {self.levels_pot:.0f}/{self.levels_dep:.0f} "
                f"levels, {self.rounding} rounding, {e}/pulse{how}, "
                f"{fmt_endurance(self.endurance_cycles)}")
