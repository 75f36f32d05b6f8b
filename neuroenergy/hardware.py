"""Bridge from a run's configuration to ``hardware_models``: the arrays the kernels tally
into, and the per-technology report priced from them at the end of the run."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

N_LAYERS = 2
# the trained networks' weights stay within about +-0.5 (784-100-10: max |w| 0.25 input,
# 0.49 output), so electronic devices map [-0.5, 0.5] onto their range by default
DEFAULT_W_MAX = 0.5
# what `compare` prices when no --hardware is given: five technologies and the ATP band
DEFAULT_COMPARE_PRESETS = ("rram-neurosim", "pcm", "fefet", "ecram", "sram-22nm", "stt-mram",
                           "biology-low", "biology-high")


def check_presets(names) -> tuple:
    """Expand group names ('biology' = low and high, 'default' = the compare set) and raise
    ConfigError for unknown ones."""
    from hardware_models import HardwareModelError, presets
    names = [n for item in names
             for n in (DEFAULT_COMPARE_PRESETS if item == "default" else (item,))]
    try:
        return tuple(presets.expand(names))
    except HardwareModelError as exc:
        raise ConfigError(f"The 'hardware' parameter must list hardware presets. {exc}") \
            from None


def build_model(name, w_max=DEFAULT_W_MAX):
    """A preset, with electronic devices mapped onto [-w_max, w_max] (biology keeps its own
    full range of one weight unit)."""
    from hardware_models import presets
    model = presets.get(name)
    if getattr(model, "kind", None) == "biology":
        return model
    return presets.get(name, w_max=w_max)


class HardwareTally:
    """Kernel arrays for the configured presets (empty arrays when there are none).

    Presets whose kernel parameter vectors are equal get equal statistics (the tallies read
    nothing else, and every device gets the same uniforms), so the kernels price each
    distinct vector once: ``params`` / ``stats`` hold one row per distinct vector and
    ``slot[d]`` is preset d's row. The default compare set has eight presets but five
    distinct vectors (RRAM and FeFET of DNN+NeuroSim share their steps and rounding, SRAM
    and STT-MRAM their 16-bit words, the two ATP bands everything but the price)."""

    def __init__(self, names=(), mode="accounting", w_max=DEFAULT_W_MAX, n_layers=N_LAYERS):
        self.names = tuple(names)
        if self.names:
            from hardware_models.tally import N_STATS, pack_kernel_params
            self.models = [build_model(n, w_max) for n in self.names]
            self.device_params = np.ascontiguousarray(pack_kernel_params(self.models),
                                                      dtype=np.float64)
            distinct, slot = [], []
            for p in self.device_params:
                same = [k for k, q in enumerate(distinct) if np.array_equal(p, q)]
                slot.append(same[0] if same else len(distinct))
                if not same:
                    distinct.append(p)
            self.params = np.ascontiguousarray(distinct, dtype=np.float64)
            self.slot = np.asarray(slot, np.int64)
            self.stats = np.zeros((n_layers, len(distinct), N_STATS), np.float64)
        else:
            self.models = []
            self.device_params = self.params = np.zeros((0, 1), np.float64)
            self.slot = np.zeros(0, np.int64)
            self.stats = np.zeros((n_layers, 0, 1), np.float64)
        # the in-loop device is preset 0, whose vector is always distinct row 0
        self.in_loop_device = 0 if (mode == "in-the-loop" and self.names) else -1

    def device_stats(self, d) -> np.ndarray:
        """The statistics of preset ``d``, shape (n_layers, N_STATS)."""
        return self.stats[:, self.slot[d], :]

    def report(self, write_counts, layer_shapes, n_steps) -> dict:
        """Per preset name: the priced report as a JSON-able dict, with the raw tallies and
        the parameters they were made with (for re-pricing later)."""
        out = {}
        for d, (name, model) in enumerate(zip(self.names, self.models)):
            stats = self.device_stats(d)
            rep = model.price(stats, list(write_counts), list(layer_shapes), n_steps)
            out[name] = rep.to_dict()
            out[name]["tally"] = {"params": self.device_params[d].tolist(),
                                  "stats": stats.tolist()}
        return out
