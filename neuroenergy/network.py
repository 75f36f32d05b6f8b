"""The feed-forward network: inputs (+ bias input) -> hidden -> outputs, and its batched
forward pass (BLAS) used for evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_choice

ACTIVATIONS = ("leaky_relu", "relu", "sigmoid")
LOSSES = ("mse", "softmax_ce")
BIAS_UNIT = 0  # hidden unit clamped to 1: its outgoing weights are the output biases


def activate(a: np.ndarray, activation: str, leak: float = 0.1) -> np.ndarray:
    """Elementwise hidden activation (float32 in, float32 out)."""
    if activation == "leaky_relu":
        return np.where(a > 0, a, np.float32(leak) * a)
    elif activation == "relu":
        return np.maximum(a, np.float32(0))
    elif activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-a))).astype(a.dtype)
    raise ValueError(f"unknown activation {activation!r}")


@dataclass
class Network:
    """Weights ``w_in`` (n_in, hidden) and ``w_out`` (hidden, n_out), float32."""

    w_in: np.ndarray
    w_out: np.ndarray
    activation: str = "leaky_relu"
    leak: float = 0.1

    def __post_init__(self):
        check_choice(self.activation, "activation", "Network", ACTIVATIONS)

    @classmethod
    def initial(cls, n_in: int, hidden: int, n_out: int, init_std: float,
                rng: np.random.Generator, activation="leaky_relu", leak=0.1) -> "Network":
        """Gaussian N(0, init_std^2) weights in both layers."""
        w_in = rng.normal(0.0, init_std, size=(n_in, hidden)).astype(np.float32)
        w_out = rng.normal(0.0, init_std, size=(hidden, n_out)).astype(np.float32)
        return cls(w_in, w_out, activation, leak)

    @property
    def hidden(self) -> int:
        return self.w_in.shape[1]

    def hidden_activity(self, x: np.ndarray, units=None) -> np.ndarray:
        """Hidden activities (n, hidden) or of the listed units; the bias unit reads 1."""
        w = self.w_in if units is None else self.w_in[:, units]
        h = activate(x @ w, self.activation, self.leak)
        bias_cols = [BIAS_UNIT] if units is None else np.flatnonzero(np.asarray(units) == BIAS_UNIT)
        h[:, bias_cols] = 1.0
        return h

    def logits(self, x: np.ndarray, batch: int = 10000) -> np.ndarray:
        out = np.empty((len(x), self.w_out.shape[1]), np.float32)
        for start in range(0, len(x), batch):
            stop = start + batch
            out[start:stop] = self.hidden_activity(x[start:stop]) @ self.w_out
        return out

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.logits(x), axis=1) == y))
