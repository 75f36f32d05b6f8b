"""Refuse a run that cannot fit in memory before it starts, with the estimate."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

FLOAT32_BYTES = 4
INT32_BYTES = 4
# the per-sample selection buffers of a top-k layer: pairs (2 x int64) + candidate scores
SELECTION_BYTES_PER_SYNAPSE = 3 * 8


def estimate_bytes(n_in: int, hidden_layers, n_out: int, n_train: int, n_test: int,
                   plastic_fraction: float = 1.0, selective: bool = False) -> int:
    """Rough peak memory of a run: weights (current, start copy, plastic copy), write-count
    maps, selection buffers, frozen-output offsets and one evaluation batch."""
    sizes = [n_in, *hidden_layers, n_out]
    synapses = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    weights = 3 * synapses * FLOAT32_BYTES
    counts = 2 * synapses * INT32_BYTES
    selection = int(plastic_fraction * synapses) * SELECTION_BYTES_PER_SYNAPSE if selective else 0
    offsets = (n_train + n_test) * n_out * FLOAT32_BYTES
    eval_batch = 10_000 * max(hidden_layers) * FLOAT32_BYTES * 2
    return int(weights + counts + selection + offsets + eval_batch)


def available_bytes() -> int:
    """Memory available to this process now (psutil when present, else /proc/meminfo)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return int(np.iinfo(np.int64).max)


def check_fits(needed: int, available: int = None, what: str = "this run") -> None:
    """Raise ConfigError when ``needed`` exceeds the available memory."""
    available = available_bytes() if available is None else available
    if needed > available:
        raise ConfigError(f"{what} needs about {needed / 2**30:.1f} GiB of memory but only "
                          f"{available / 2**30:.1f} GiB are available; use fewer hidden units "
                          "or a machine with more memory.")
