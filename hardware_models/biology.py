"""Biological synapse model: the parsimonious energy measures M1 / M0 in ATP and joules.

ATP = atp_per_full_range * M1 / full_range_w + atp_per_write * M0, and
energy_j = ATP * joule_per_atp, where M1 = sum |dw| and M0 = number of writes that changed a
weight (Li & van Rossum, eLife 2020). ``potentiation_only`` charges only positive changes.

The per-synapse cost of one full-range weight change is not measured; the project ships it
as a documented band of 1e5 (low) to 1e6 (high) ATP (receptor insertion and structural
change), never hidden. 8.3e-20 J per ATP follows from ~50 kJ/mol for ATP hydrolysis in cells
(range 44-56 kJ/mol).
"""
from dataclasses import dataclass

import numpy as np

from ._base import HardwareModel, fmt_energy
from ._validate import check_bool, check_float
from . import tally as T


@dataclass
class BiologySynapse(HardwareModel):
    """ATP cost of synaptic weight changes; defaults: the low end of the band."""

    name: str = "biology-synapse"
    """Registry name of a preset, or a label for a custom model."""
    atp_per_full_range: float = 1e5
    """ATP molecules spent on one full-range weight change of one synapse; molecules."""
    full_range_w: float = 1.0
    """Size of a full-range weight change, network weight units."""
    atp_per_write: float = 0.0
    """Fixed ATP per weight change, whatever its size (M0 term); molecules."""
    joule_per_atp: float = 8.3e-20
    """Free energy of hydrolysing one ATP (~50 kJ/mol / N_A); joules."""
    potentiation_only: bool = False
    """Charge only weight increases (a variant of the energy measure)."""

    kind = "biology"

    def validate(self):
        super().validate()
        c = self
        c.atp_per_full_range = check_float(c, "atp_per_full_range", c.atp_per_full_range,
                                           lo=0.0)
        c.full_range_w = check_float(c, "full_range_w", c.full_range_w, lo=0.0, lo_open=True)
        c.atp_per_write = check_float(c, "atp_per_write", c.atp_per_write, lo=0.0)
        c.joule_per_atp = check_float(c, "joule_per_atp", c.joule_per_atp, lo=0.0,
                                      lo_open=True)
        check_bool(c, "potentiation_only", c.potentiation_only)

    def kernel_params(self):
        p = np.zeros(T.N_PARAMS, dtype=np.float64)
        p[T.P_KIND] = T.KIND_BIOLOGY
        p[T.P_W_MAX] = self.w_max
        return p

    def _m1(self, s):
        return s[T.STAT_SIZE_POT] if self.potentiation_only else (
            s[T.STAT_SIZE_POT] + s[T.STAT_SIZE_DEP])

    def atp(self, s):
        """(change ATP, per-write ATP) for statistics ``s`` (length N_STATS)."""
        change = self.atp_per_full_range * self._m1(s) / self.full_range_w
        return change, self.atp_per_write * s[T.STAT_CHANGED]

    def _layer_energy(self, s, shape):
        change, per_write = self.atp(s)
        # "cell": the synapse's own cost of the change, the counterpart of a device's cell term
        return {"cell": change * self.joule_per_atp,
                "per_write": per_write * self.joule_per_atp}

    def _counts(self, total):
        return {"writes": total[T.STAT_WRITES], "m0": total[T.STAT_CHANGED],
                "m1": total[T.STAT_SIZE_POT] + total[T.STAT_SIZE_DEP],
                "m1_potentiation": total[T.STAT_SIZE_POT],
                "m1_depression": total[T.STAT_SIZE_DEP],
                "rows_touched": total[T.STAT_ROWS]}

    def _extra(self, total):
        change, per_write = self.atp(total)
        return {"atp": change + per_write}

    def _notes(self):
        return [f"assumed {self.atp_per_full_range:.3g} ATP per full-range change "
                f"({self.full_range_w:g} weight units) and {self.joule_per_atp:.3g} J per ATP: "
                f"a documented band, not a measurement"]

    def key_parameters(self):
        return {"atp_per_full_range": self.atp_per_full_range,
                "full_range_w": self.full_range_w, "atp_per_write": self.atp_per_write,
                "joule_per_atp": self.joule_per_atp,
                "energy_per_full_range_j": self.atp_per_full_range * self.joule_per_atp}

    def summary(self):
        e = fmt_energy(self.atp_per_full_range * self.joule_per_atp)
        return (f"biology, {self.atp_per_full_range:.0e} ATP ({e}) per full-range change of "
                f"{self.full_range_w:g}, {self.joule_per_atp:.2g} J/ATP")
