"""Generic memory-technology cost models with cited presets, for pricing the weight writes
of learning rules.

- ``tally``: compiled per-write tallies called by training kernels (``tally_write``,
  ``tally_row``, ``device_write``, ``pack_kernel_params``, ``N_STATS``, ``STAT_*``);
- ``AnalogCrossbar``, ``DigitalMemory``, ``BiologySynapse``: generic models (dataclasses,
  every field documented with its unit); ``model.price(stats, write_counts, layer_shapes,
  n_steps) -> EnergyReport``;
- ``presets``: published devices and arrays (``presets.get(name)``, ``presets.names()``);
- ``price_many``: price one run on several technologies at once.

This package imports nothing from ``neuroenergy``.
"""
from ._validate import HardwareModelError
from .analog import AnalogCrossbar
from .biology import BiologySynapse
from .digital import DigitalMemory
from .endurance import Lifetime, lifetime_from_counts
from .report import EnergyReport, price_many, summary_table
from .tally import (N_STATS, STAT_NAMES, device_write, new_stats, pack_kernel_params,
                    tally_row, tally_write)
from . import presets

__all__ = [
    "AnalogCrossbar", "BiologySynapse", "DigitalMemory", "EnergyReport", "HardwareModelError",
    "Lifetime", "N_STATS", "STAT_NAMES", "device_write", "lifetime_from_counts", "new_stats",
    "pack_kernel_params", "presets", "price_many", "summary_table", "tally_row", "tally_write",
]
