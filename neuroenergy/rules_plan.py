"""What a rule asks of the general kernel: a :class:`KernelPlan` (unit choice, write
selection, buffer, lazy gate) and the per-layer arrays it needs."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from . import general_codes as G
from ._validate import check_number
from .errors import ConfigError
from .rules import Path, tied_output_fraction

DEFAULT_K = 50


def set_field(rule, name, value):
    object.__setattr__(rule, name, value)


def check_fraction(rule, name, required=True):
    owner = type(rule).__name__
    value = getattr(rule, name)
    if value is None and not required:
        return
    set_field(rule, name, check_number(value, name, owner, 0.0, 1.0, lo_open=True))


def check_path(rule, optional=False):
    """k or k_fraction (one of them); both None means DEFAULT_K, or no path if optional."""
    owner = type(rule).__name__
    if rule.k is not None and rule.k_fraction is not None:
        raise ConfigError(f"{owner} needs at most one of 'k' (an int >= 1) and 'k_fraction' "
                          f"(a float in (0, 1]). Got k={rule.k!r}, k_fraction={rule.k_fraction!r}.")
    if rule.k is None and rule.k_fraction is None and not optional:
        set_field(rule, "k", DEFAULT_K)
    if rule.k is not None:
        set_field(rule, "k", check_number(rule.k, "k", owner, 1, None, integer=True))
    if rule.k_fraction is not None:
        set_field(rule, "k_fraction", check_number(rule.k_fraction, "k_fraction", owner, 0.0, 1.0,
                                              lo_open=True))


def has_path(rule):
    return rule.k is not None or rule.k_fraction is not None


def validate_k(rule, hidden):
    if has_path(rule):
        layer_k(rule.k, rule.k_fraction, hidden, type(rule).__name__)


class Fractions:
    """``fractions()`` of a rule with fields p and p_out (p_out tied by default)."""

    def fractions(self):
        p_out = tied_output_fraction(self.p) if self.p_out is None else self.p_out
        return self.p, p_out


def layer_k(k: Optional[int], k_fraction: Optional[float], hidden: int, owner: str) -> int:
    """Units per hidden layer of ``hidden`` units (bias unit 0 not counted, never chosen)."""
    n_candidates = hidden - 1
    if k is None:
        k = max(1, int(round(k_fraction * n_candidates)))
    if k > n_candidates:
        raise ConfigError(f"The 'k' parameter of {owner} must be an int in the range "
                          f"[1, {n_candidates}] (hidden - 1, unit 0 is the bias). "
                          f"Got {k} instead.")
    return int(k)


def layer_fractions(fractions, sizes) -> tuple:
    """(p_in, p_out) -> one fraction per weight layer: p_in for all but the output layer."""
    p_in, p_out = fractions
    n_layers = len(sizes) - 1
    return tuple([float(p_in)] * (n_layers - 1) + [float(p_out)])


def fixed_units(sizes, units_of_layer) -> np.ndarray:
    """Flags (uint8, all hidden units of all layers) from ``units_of_layer(H) -> indices``."""
    flags = []
    for h in sizes[1:-1]:
        f = np.zeros(h, np.uint8)
        f[np.asarray(units_of_layer(h), np.int64)] = 1
        f[0] = 1
        flags.append(f)
    return np.concatenate(flags)


def _hidden(sizes):
    return tuple(sizes[1:-1])


@dataclass(frozen=True)
class KernelPlan:
    """Everything the general kernel needs to know about a rule (see ``general_codes``)."""

    sizes: tuple
    unit_mode: int = G.UNITS_ALL
    unit_on: np.ndarray = field(default=None, repr=False)
    k_units: np.ndarray = field(default=None, repr=False)
    perm: np.ndarray = field(default=None, repr=False)
    period: int = 1
    write: int = G.WRITE_ALL
    p_layer: tuple = ()
    mask: np.ndarray = field(default=None, repr=False)
    buffer: int = G.BUF_NONE
    scope: int = G.SCOPE_SYNAPSE
    theta: float = 0.0
    decay: float = 1.0
    c: float = 0.0
    b: float = 0.0
    restrict_out: bool = True
    readout_only: bool = False
    lazy: float = -1.0

    @classmethod
    def make(cls, sizes, unit_on=None, **kw) -> "KernelPlan":
        """A plan with defaults filled in; ``unit_on`` None means every unit is plastic."""
        sizes = tuple(int(s) for s in sizes)
        n_hidden_units = int(sum(_hidden(sizes)))
        if unit_on is None:
            unit_on = np.ones(n_hidden_units, np.uint8)
            kw.setdefault("unit_mode", G.UNITS_ALL)
        else:
            kw.setdefault("unit_mode", G.UNITS_FIXED)
        kw.setdefault("k_units", np.zeros(len(_hidden(sizes)), np.int64))
        kw.setdefault("perm", np.zeros(0, np.int64))
        kw.setdefault("mask", np.zeros(0, np.uint8))
        kw.setdefault("p_layer", tuple([1.0] * (len(sizes) - 1)))
        return cls(sizes, unit_on=np.ascontiguousarray(unit_on, np.uint8), **kw)

    def with_lazy(self, margin: float) -> "KernelPlan":
        return replace(self, lazy=float(margin))

    def plastic_units(self) -> np.ndarray:
        """Hidden units that may ever learn, flat over the layers (layer l's unit j at
        sum(H_1..H_{l-1}) + j); per-sample modes report every unit."""
        if self.unit_mode in (G.UNITS_ALL, G.UNITS_FIXED):
            return np.flatnonzero(self.unit_on).astype(np.int64)
        return np.arange(int(sum(_hidden(self.sizes))), dtype=np.int64)

    def specs(self, act_code, loss_code, leak, alpha, in_loop):
        """The kernel's ``ispec`` (int64) and ``fspec`` (float64) vectors."""
        ispec = np.zeros(G.N_ISPEC, np.int64)
        ispec[G.I_ACT] = act_code
        ispec[G.I_LOSS] = loss_code
        ispec[G.I_UNITS] = self.unit_mode
        ispec[G.I_WRITE] = self.write
        ispec[G.I_BUFFER] = self.buffer
        ispec[G.I_SCOPE] = self.scope
        ispec[G.I_RESTRICT_OUT] = 1 if self.restrict_out else 0
        ispec[G.I_READOUT_ONLY] = 1 if self.readout_only else 0
        ispec[G.I_PERIOD] = max(1, int(self.period))
        ispec[G.I_IN_LOOP] = in_loop
        fspec = np.zeros(G.N_FSPEC, np.float64)
        fspec[G.F_LEAK] = leak
        fspec[G.F_ALPHA] = -1.0 if alpha is None else float(alpha)
        fspec[G.F_THETA] = self.theta
        fspec[G.F_DECAY] = self.decay
        fspec[G.F_C] = self.c
        fspec[G.F_B] = self.b
        fspec[G.F_LAZY] = self.lazy
        return ispec, fspec


def path_or_all(rule, hidden, rng):
    if not has_path(rule):
        return np.arange(hidden)
    return Path(k=rule.k, k_fraction=rule.k_fraction, selection=rule.selection) \
        .plastic_units(hidden, rng)


def units_fixed(rule, sizes, rng):
    """Flags of the plastic hidden units for a rule with an optional fixed path."""
    if not has_path(rule):
        return None
    return fixed_units(sizes, lambda h: path_or_all(rule, h, rng))
