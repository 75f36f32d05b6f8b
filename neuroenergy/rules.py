"""Plasticity rules: which synapses may be written on each sample.

A rule decides two things the kernel needs: the set of plastic hidden units (the "path"; all
units for rules without one) and how many synapses each layer writes per sample (all, or the
largest fraction p of |dw| among the plastic synapses).

Hidden unit 0 is clamped to 1 and acts as the output bias. It has no incoming plasticity; its
outgoing synapses (the output biases) are plastic under every rule, paths included, and a path
of k units means k units besides it.

References
----------
van Rossum & Pache, "Competitive plasticity to reduce the energetic costs of learning",
PLoS Comput Biol 20(10): e1012553 (2024).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Optional

import numpy as np

from ._validate import check_choice, check_number
from .errors import ConfigError

# both layers make about the same number of writes when p_out = 78.4 p_in (784 inputs, 10 outputs)
TIED_OUTPUT_RATIO = 78.4
PATH_SELECTIONS = ("random", "first")
DEFAULT_PATH_K = 50  # used when neither k nor k_fraction is given


def tied_output_fraction(p: float) -> float:
    """The study's output-layer fraction that matches the input layer's number of writes."""
    return min(TIED_OUTPUT_RATIO * p, 1.0)


def writes_per_sample(fraction: float, n_plastic: int) -> int:
    """Synapses written per sample for a fraction of ``n_plastic``: ceil(p n), -1 means all."""
    if fraction >= 1.0:
        return -1
    return max(1, int(math.ceil(fraction * n_plastic - 1e-9)))


@dataclass(frozen=True)
class Rule:
    """Base class. Subclasses set ``name`` and validate their parameters."""

    name: ClassVar[str] = ""

    def params(self) -> dict:
        """The rule's parameters as a JSON-able dict (without the name)."""
        return asdict(self)

    def validate(self, hidden: int) -> None:
        """Check the parameters that depend on the network size."""

    def plastic_units(self, hidden: int, rng: np.random.Generator) -> np.ndarray:
        """Sorted indices of the plastic hidden units, always including unit 0 (bias)."""
        return np.arange(hidden)

    def fractions(self) -> tuple:
        """(p_in, p_out): fraction of plastic synapses written per sample in each layer."""
        return 1.0, 1.0


@dataclass(frozen=True)
class Backprop(Rule):
    """Every update is written (plain per-sample SGD)."""

    name: ClassVar[str] = "backprop"


@dataclass(frozen=True)
class TopFraction(Rule):
    """Per sample, only the largest fraction ``p`` of |dw| in each layer is written; the rest
    is discarded. ``p_out`` defaults to min(78.4 p, 1) so both layers write about equally."""

    name: ClassVar[str] = "top-fraction"
    p: float = 0.01
    p_out: Optional[float] = None

    def __post_init__(self):
        object.__setattr__(self, "p", check_number(self.p, "p", type(self).__name__,
                                                    0.0, 1.0, lo_open=True))
        if self.p_out is not None:
            object.__setattr__(self, "p_out", check_number(
                self.p_out, "p_out", type(self).__name__, 0.0, 1.0, lo_open=True))

    def fractions(self):
        p_out = tied_output_fraction(self.p) if self.p_out is None else self.p_out
        return self.p, p_out


def _path_units(hidden, k, k_fraction, selection, rng, owner):
    n_candidates = hidden - 1  # unit 0 is the bias
    if k is None:
        k = max(1, int(round(k_fraction * n_candidates)))
    if k > n_candidates:
        raise ConfigError(f"The 'k' parameter of {owner} must be an int in the range "
                          f"[1, {n_candidates}] (hidden - 1, unit 0 is the output bias). "
                          f"Got {k} instead.")
    if selection == "first":
        chosen = np.arange(1, k + 1)
    elif selection == "random":
        chosen = 1 + rng.choice(n_candidates, size=k, replace=False)
    else:
        raise ConfigError(f"unknown path selection {selection!r}")
    return np.concatenate([[0], np.sort(chosen)]).astype(np.int64)


def _check_k(rule):
    owner = type(rule).__name__
    if rule.k is None and rule.k_fraction is None:
        object.__setattr__(rule, "k", DEFAULT_PATH_K)
    if (rule.k is None) == (rule.k_fraction is None):
        raise ConfigError(f"{owner} needs exactly one of 'k' (an int >= 1) and 'k_fraction' "
                          f"(a float in (0, 1]). Got k={rule.k!r}, k_fraction={rule.k_fraction!r}.")
    if rule.k is not None:
        object.__setattr__(rule, "k", check_number(rule.k, "k", owner, 1, None, integer=True))
    else:
        object.__setattr__(rule, "k_fraction", check_number(
            rule.k_fraction, "k_fraction", owner, 0.0, 1.0, lo_open=True))
    check_choice(rule.selection, "selection", owner, PATH_SELECTIONS)


@dataclass(frozen=True)
class Path(Rule):
    """Only ``k`` hidden units learn (50 when neither k nor k_fraction is given), with all
    their incoming and outgoing synapses; every
    other synapse is frozen. The units are a fixed random set (``selection='random'``) or the
    first k (``'first'``, also random given the random initialisation)."""

    name: ClassVar[str] = "path"
    k: Optional[int] = None
    k_fraction: Optional[float] = None
    selection: str = "random"

    def __post_init__(self):
        _check_k(self)

    def validate(self, hidden):
        _path_units(hidden, self.k, self.k_fraction, "first", None, type(self).__name__)

    def plastic_units(self, hidden, rng):
        return _path_units(hidden, self.k, self.k_fraction, self.selection, rng,
                           type(self).__name__)


@dataclass(frozen=True)
class Combined(Path):
    """A path of ``k`` units, and within its plastic synapses only the largest fraction ``p``
    of |dw| per layer is written. ``p`` is relative to the *plastic* synapses of the layer
    (785 k in the input layer, 10 (k + 1) in the output layer), not to the whole layer;
    ``p_out`` defaults to min(78.4 p, 1)."""

    name: ClassVar[str] = "combined"
    p: float = 0.2
    p_out: Optional[float] = None

    def __post_init__(self):
        super().__post_init__()
        TopFraction.__post_init__(self)

    def fractions(self):
        return TopFraction.fractions(self)


RULES = {cls.name: cls for cls in (Backprop, TopFraction, Path, Combined)}


def make_rule(name: str, **params) -> Rule:
    """Build a rule from its command-line name and keyword parameters (None values dropped)."""
    if name not in RULES:
        raise ConfigError(f"The 'rule' parameter must be one of {', '.join(map(repr, RULES))}. "
                          f"Got {name!r} instead.")
    cls = RULES[name]
    allowed = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(given) - allowed)
    if unknown:
        takes = f"the parameters {', '.join(sorted(allowed))}" if allowed else "no parameters"
        raise ConfigError(f"The rule {name!r} takes {takes}; got {', '.join(unknown)}, "
                          "which it does not use.")
    return cls(**given)


# the rules beyond the study (accumulate-and-write, caching, lazy, controls...) register
# themselves in RULES on import
from . import rules_extended  # noqa: E402,F401
