"""Bridge from a run's configuration to ``hardware_models``: the arrays the kernels tally
into, and the per-technology report priced from them at the end of the run."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

N_LAYERS = 2


def check_presets(names) -> None:
    """Raise ConfigError for unknown hardware preset names."""
    from hardware_models import presets
    valid = presets.names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ConfigError(f"The 'hardware' parameter must list presets from {', '.join(valid)}. "
                          f"Got unknown {', '.join(map(repr, unknown))} instead.")


class HardwareTally:
    """Kernel arrays for the configured presets (empty arrays when there are none)."""

    def __init__(self, names=(), mode="accounting"):
        self.names = tuple(names)
        if self.names:
            from hardware_models import presets
            from hardware_models.tally import N_STATS, pack_kernel_params
            self.models = [presets.get(n) for n in self.names]
            self.params = np.ascontiguousarray(pack_kernel_params(self.models), dtype=np.float64)
            self.stats = np.zeros((N_LAYERS, len(self.models), N_STATS), np.float64)
        else:
            self.models = []
            self.params = np.zeros((0, 1), np.float64)
            self.stats = np.zeros((N_LAYERS, 0, 1), np.float64)
        self.in_loop_device = 0 if (mode == "in-the-loop" and self.names) else -1

    def report(self, write_counts, layer_shapes, n_steps) -> dict:
        """Per preset name: the priced report as a JSON-able dict."""
        out = {}
        for d, (name, model) in enumerate(zip(self.names, self.models)):
            rep = model.price(self.stats[:, d, :], list(write_counts), list(layer_shapes), n_steps)
            out[name] = rep.to_dict()
        return out
