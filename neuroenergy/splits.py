"""The two stopping protocols: on the test set (the study) or on a validation split carved from
the training set (the test set then only reported)."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

# the split depends only on data_seed, so every rule and seed sees the same validation images
_SPLIT_SALT = 0x5A11D


def split_rows(config, n_train: int):
    """(rows to train on, validation rows or None) for ``config.stop_on``."""
    if config.stop_on == "test":
        return np.arange(n_train, dtype=np.int64), None
    if config.stop_on != "validation":
        raise ConfigError(f"The 'stop_on' parameter of RunConfig must be one of 'test', "
                          f"'validation'. Got {config.stop_on!r} instead.")
    if config.validation_size >= n_train:
        raise ConfigError(f"The 'validation_size' parameter of RunConfig must be an int in the "
                          f"range [1, {n_train - 1}] (the training set has {n_train} images). "
                          f"Got {config.validation_size} instead.")
    rng = np.random.default_rng(np.random.SeedSequence([config.data_seed, _SPLIT_SALT]))
    order = rng.permutation(n_train)
    val = np.sort(order[:config.validation_size]).astype(np.int64)
    fit = np.sort(order[config.validation_size:]).astype(np.int64)
    return fit, val


def draw_samples(rng, fit_rows, n_train: int, n: int) -> np.ndarray:
    """n training rows drawn uniformly with replacement (the study's sampling when every row
    trains: the same random numbers as before the validation option existed)."""
    if fit_rows is None or len(fit_rows) == n_train:
        return rng.integers(0, n_train, size=n, dtype=np.int64)
    return fit_rows[rng.integers(0, len(fit_rows), size=n, dtype=np.int64)]
