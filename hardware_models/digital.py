"""Digital memory model (SRAM, eDRAM, digital NVM): weights as b-bit fixed-point words.

A weight w maps onto the integer code round(w / lsb) with lsb = w_max / 2^(b-1), clipped to
the code range ([-2^(b-1), 2^(b-1) - 1] in two's complement, [-(2^(b-1) - 1), 2^(b-1) - 1]
in sign-magnitude). A write from w_old to w_new stores

- 'nearest': code(w_new), so a change that leaves the nearest code unchanged is lost;
- 'stochastic': code(w_old) + floor((w_new - w_old) / lsb + u), unbiased: a sub-LSB update
  changes the code with probability |dw| / lsb.

Energy of one layer:

- cell: 'flipped-bits' mode: ``energy_per_bit_j`` per bit whose value changes (Hamming
  distance of the old and new codes, MLP NeuroSim: 2 C Vdd^2 per flipped bit); 'word' mode:
  ``bits * energy_per_bit_j`` per word whose code changes (NVSim / NVMExplorer price per word
  written);
- rows: ``row_overhead_j`` per row written in a step (a row whose writes changed no bit is
  skipped).

Latency: ``write_time_s`` per row written (rows one after another); none when it is 0.
"""
from dataclasses import dataclass

import numpy as np

from ._base import ROWS_CHARGED, HardwareModel, fmt_endurance, fmt_energy
from ._validate import HardwareModelError, check_choice, check_float, check_int
from . import tally as T

ROUNDING_RULES = {"nearest": T.ROUND_NEAREST, "stochastic": T.ROUND_STOCHASTIC}
ENCODINGS = {"twos-complement": T.ENC_TWOS, "sign-magnitude": T.ENC_SIGN_MAGNITUDE}
WRITE_MODES = ("flipped-bits", "word")
MAX_BITS = 32


@dataclass
class DigitalMemory(HardwareModel):
    """b-bit fixed-point weights in a digital memory; defaults: 16-bit cell-only SRAM."""

    name: str = "digital-memory"
    """Registry name of a preset, or a label for a custom model."""
    bits: int = 16
    """Word width b of one weight; bits."""
    encoding: str = "twos-complement"
    """Bit pattern of a code: 'twos-complement' or 'sign-magnitude'."""
    rounding: str = "nearest"
    """How a write is rounded to the grid: 'nearest' (sub-LSB updates lost) or
    'stochastic'."""
    write_mode: str = "flipped-bits"
    """'flipped-bits': pay per bit whose value changes; 'word': pay every bit of each word
    whose code changes."""
    energy_per_bit_j: float = 1.6e-15
    """Energy per flipped bit ('flipped-bits') or per bit of a written word ('word');
    joules."""
    row_overhead_j: float = 0.0
    """Decoder / driver / precharge energy per row written in a step; joules."""
    write_time_s: float = 0.0
    """Time to write one row (all its changed words at once); seconds."""
    rows_charged: str = "written"
    """Rows that pay the per-row overhead: 'written' (at least one device change; NeuroSim
    skips unchanged batches) or 'touched' (every row the rule wrote to in a step)."""

    kind = "digital"
    tally_slots = {T.P_KIND: "model kind", T.P_W_MAX: "w_max", T.P_ROUNDING: "rounding rule",
                   T.P_BITS: "word width", T.P_ENCODING: "encoding"}

    def validate(self):
        super().validate()
        c = self
        c.bits = check_int(c, "bits", c.bits, lo=1, hi=MAX_BITS)
        check_choice(c, "encoding", c.encoding, tuple(ENCODINGS))
        check_choice(c, "rounding", c.rounding, tuple(ROUNDING_RULES))
        check_choice(c, "rows_charged", c.rows_charged, ROWS_CHARGED)
        check_choice(c, "write_mode", c.write_mode, WRITE_MODES)
        if c.encoding == "sign-magnitude" and c.bits < 2:
            raise HardwareModelError(
                f"The 'bits' parameter of {type(c).__name__} must be an int >= 2 with "
                f"sign-magnitude encoding. Got {c.bits!r} instead.")
        for name in ("energy_per_bit_j", "row_overhead_j", "write_time_s"):
            setattr(c, name, check_float(c, name, getattr(c, name), lo=0.0))

    @property
    def lsb_w(self):
        """Weight change of one least-significant bit, weight units."""
        return self.w_max / 2.0 ** (self.bits - 1)

    def kernel_params(self):
        p = np.zeros(T.N_PARAMS, dtype=np.float64)
        p[T.P_KIND] = T.KIND_DIGITAL
        p[T.P_W_MAX] = self.w_max
        p[T.P_ROUNDING] = ROUNDING_RULES[self.rounding]
        p[T.P_BITS] = self.bits
        p[T.P_ENCODING] = ENCODINGS[self.encoding]
        return p

    def _layer_energy(self, s, shape):
        if self.write_mode == "flipped-bits":
            cell = self.energy_per_bit_j * (s[T.STAT_SIZE_POT] + s[T.STAT_SIZE_DEP])
        elif self.write_mode == "word":
            cell = self.energy_per_bit_j * self.bits * s[T.STAT_CHANGED]
        else:
            raise HardwareModelError(f"unknown write_mode {self.write_mode!r}")
        return {"cell": cell, "rows": self.row_overhead_j * self._rows(s)}

    def _layer_latency(self, s, shape):
        if self.write_time_s == 0:
            return None
        return self.write_time_s * self._rows(s)

    def _counts(self, total):
        return {"writes": total[T.STAT_WRITES], "words_written": total[T.STAT_CHANGED],
                "bits_flipped": total[T.STAT_SIZE_POT] + total[T.STAT_SIZE_DEP],
                "bits_set": total[T.STAT_SIZE_POT], "bits_reset": total[T.STAT_SIZE_DEP],
                "rows_touched": total[T.STAT_ROWS], "rows_written": total[T.STAT_ROWS_ACTIVE],
                "clipped": total[T.STAT_CLIPPED], "abs_dw": total[T.STAT_ABS_DW]}

    def _notes(self):
        notes = [f"{self.bits}-bit {self.encoding} codes, lsb {self.lsb_w:.3g}, "
                 f"{self.rounding} rounding, priced per {self.write_mode}"]
        if self.row_overhead_j == 0:
            notes.append("per-row periphery energy not priced separately: row_overhead_j = 0")
        return notes

    def key_parameters(self):
        return {"bits": self.bits, "write_mode": self.write_mode,
                "energy_per_bit_j": self.energy_per_bit_j,
                "energy_per_word_j": self.energy_per_bit_j * self.bits,
                "row_overhead_j": self.row_overhead_j, "rounding": self.rounding,
                "endurance_cycles": self.endurance_cycles}

    def summary(self):
        per = "flipped bit" if self.write_mode == "flipped-bits" else "bit of a written word"
        return (f"digital {self.bits}-bit {self.encoding}, {fmt_energy(self.energy_per_bit_j)}"
                f" per {per}, {self.rounding} rounding, "
                f"{fmt_endurance(self.endurance_cycles)}")
