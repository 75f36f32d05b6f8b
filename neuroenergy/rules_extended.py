"""Plasticity rules beyond the study's four, and controls; all run on the general kernel.

Importing this module registers every rule below in ``rules.RULES`` (``rules.py`` imports it),
so ``make_rule('caching', theta=...)``, ``RunConfig.from_dict`` and the command line know
them. Each rule turns itself into a :class:`KernelPlan` (``plan``): which hidden units are
plastic, which of their synapses are written, through which buffer.

Conventions shared with the study's rules: hidden unit 0 of every hidden layer is clamped to 1
(the next layer's bias) and its outgoing synapses are plastic whenever their target is; a path
of k units means k units besides it, in every hidden layer; ``p`` is a fraction of the
*plastic* synapses of a layer, ``p_out`` (output layer) defaults to min(78.4 p, 1); hidden
layers between two hidden layers use ``p``.

References
----------
Stich, Cordonnier & Jaggi, "Sparsified SGD with memory", NeurIPS 2018 (accumulate-and-write).
Li & van Rossum, "Energy efficient synaptic plasticity", eLife 9:e50804 (2020) (caching).
Pache & van Rossum, "Lazy learning: a biologically-inspired plasticity rule for fast and
energy efficient synaptic plasticity", arXiv 2303.16067 (2023).
Sun, Ren, Ma & Wang, "meProp: sparsified back propagation for accelerated deep learning with
reduced overfitting", ICML 2017 (error-selected path).
van Rossum & Pache, PLoS Comput Biol 20(10): e1012553 (2024) (controls, path, top fraction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from . import general_codes as G
from ._validate import check_choice, check_number
from .errors import ConfigError
from .rules import (PATH_SELECTIONS, RULES, Backprop, Combined, Path, Rule, TopFraction,
                    make_rule)
from .rules_extended_more import (ErrorPath, LargestWeights, RandomNeurons, RandomSynapseMask,
                                  ReadoutOnly, RotatingPath, SmallestUpdates,
                                  TopFractionPerNeuron)
from .rules_plan import (Fractions, KernelPlan, check_fraction, check_path, fixed_units,
                         layer_fractions, path_or_all, set_field, units_fixed, validate_k)

CONSOLIDATION = ("synapse", "neuron", "layer")
_SCOPES = {"synapse": G.SCOPE_SYNAPSE, "neuron": G.SCOPE_NEURON, "layer": G.SCOPE_LAYER}


# ----------------------------------------------------------------------------- buffered rules

@dataclass(frozen=True)
class AccumulateWrite(Fractions, Rule):
    """Accumulate-and-write (error feedback): every update is added to a per-synapse buffer
    that the network does not see; a synapse is written (buffer -> weight, buffer cleared)
    when its buffer is among the largest fraction ``p`` of the layer (Stich et al.'s top-k
    with memory; p = 0.01 when neither is given) or, with ``theta``, when |buffer| > theta.

    The buffer is charged as in synaptic caching: ``c`` per unit |buffer| per sample and
    ``b`` per unit change of the buffer (both 0 by default: a free digital accumulator).
    Optional ``k`` / ``k_fraction`` restrict plasticity to a fixed path first.
    Reference: Stich, Cordonnier & Jaggi, NeurIPS 2018.
    """

    name: ClassVar[str] = "accumulate"
    p: Optional[float] = None
    p_out: Optional[float] = None
    theta: Optional[float] = None
    c: float = 0.0
    b: float = 0.0
    k: Optional[int] = None
    k_fraction: Optional[float] = None
    selection: str = "random"

    def __post_init__(self):
        owner = type(self).__name__
        if self.p is not None and self.theta is not None:
            raise ConfigError(f"{owner} takes either 'p' (top fraction of the buffer) or "
                              f"'theta' (a threshold), not both. Got p={self.p!r}, "
                              f"theta={self.theta!r}.")
        if self.theta is not None:
            set_field(self, "theta", check_number(self.theta, "theta", owner, 0.0, None,
                                             lo_open=True))
        else:
            set_field(self, "p", 0.01 if self.p is None else self.p)
            check_fraction(self, "p")
        check_fraction(self, "p_out", required=False)
        set_field(self, "c", check_number(self.c, "c", owner, 0.0, None))
        set_field(self, "b", check_number(self.b, "b", owner, 0.0, None))
        check_path(self, optional=True)
        check_choice(self.selection, "selection", owner, PATH_SELECTIONS)

    def validate(self, hidden):
        validate_k(self, hidden)

    def fractions(self):
        return (1.0, 1.0) if self.p is None else Fractions.fractions(self)

    def plastic_units(self, hidden, rng):
        return path_or_all(self, hidden, rng)

    def plan(self, sizes, rng):
        scope = G.SCOPE_TOP if self.theta is None else G.SCOPE_SYNAPSE
        return KernelPlan.make(sizes, units_fixed(self, sizes, rng), buffer=G.BUF_HIDDEN,
                               scope=scope, p_layer=layer_fractions(self.fractions(), sizes),
                               theta=self.theta or 0.0, c=self.c, b=self.b)


@dataclass(frozen=True)
class SynapticCaching(Rule):
    """Synaptic caching: w = l + s. Updates go to the transient s, which the network uses
    at once, decays with time constant ``tau`` samples (None: no decay) and costs ``c`` per
    unit |s| per sample to maintain (and ``b`` per unit change of s). When |s| > ``theta``
    it is consolidated into the persistent l at cost |s|: only that synapse
    (``consolidation='synapse'``), every synapse of its postsynaptic neuron ('neuron'), or
    the whole layer ('layer'). M1 = consolidation + maintenance + change cost + the final
    consolidation of what is still transient at the end (the learned network must persist).

    Theory without decay (a per-synapse random walk of steps eta, per-step cost
    eta^2 / theta + c theta / 3): theta* = eta sqrt(3 / c), cost 2 eta sqrt(c / 3) per step
    against eta for writing every step - see :func:`caching_threshold`.
    Optional ``k`` / ``k_fraction`` restrict plasticity to a fixed path first.
    Reference: Li & van Rossum, eLife 9:e50804 (2020).
    """

    name: ClassVar[str] = "caching"
    theta: float = 0.001
    tau: Optional[float] = None
    c: float = 0.01
    b: float = 0.0
    consolidation: str = "synapse"
    k: Optional[int] = None
    k_fraction: Optional[float] = None
    selection: str = "random"

    def __post_init__(self):
        owner = type(self).__name__
        set_field(self, "theta", check_number(self.theta, "theta", owner, 0.0, None, lo_open=True))
        if self.tau is not None:
            set_field(self, "tau", check_number(self.tau, "tau", owner, 0.0, None, lo_open=True))
        set_field(self, "c", check_number(self.c, "c", owner, 0.0, None))
        set_field(self, "b", check_number(self.b, "b", owner, 0.0, None))
        check_choice(self.consolidation, "consolidation", owner, CONSOLIDATION)
        check_path(self, optional=True)
        check_choice(self.selection, "selection", owner, PATH_SELECTIONS)

    def validate(self, hidden):
        validate_k(self, hidden)

    def plastic_units(self, hidden, rng):
        return path_or_all(self, hidden, rng)

    def plan(self, sizes, rng):
        decay = 1.0 if self.tau is None else math.exp(-1.0 / self.tau)
        return KernelPlan.make(sizes, units_fixed(self, sizes, rng), buffer=G.BUF_VISIBLE,
                               scope=_SCOPES[self.consolidation], theta=self.theta,
                               decay=decay, c=self.c, b=self.b)


def caching_threshold(eta: float, c: float) -> float:
    """Optimal consolidation threshold theta* = eta sqrt(3 / c) for synaptic caching without
    decay, for a transient doing a random walk of step eta, maintenance c per unit |s| per
    step.

    Derivation: from 0 the walk needs (theta / eta)^2 steps to reach |s| = theta, so
    consolidations cost eta^2 / theta per step; the visits of the walk between resets have a
    triangular density on [-theta, theta], mean |s| = theta / 3, so maintenance costs
    c theta / 3 per step. The sum is least at theta* and is then 2 eta sqrt(c / 3) per step
    (writing every step costs eta). Compare the eLife 2020 theory, theta^2 = eta^2 3K /
    (1 + cT), which also charges the end-of-learning consolidation.
    """
    eta = check_number(eta, "eta", "caching_threshold", 0.0, None, lo_open=True)
    c = check_number(c, "c", "caching_threshold", 0.0, None, lo_open=True)
    return eta * math.sqrt(3.0 / c)


# ----------------------------------------------------------------------------- lazy learning

@dataclass(frozen=True)
class Lazy(Rule):
    """Lazy learning around any rule: a sample updates only when it is misclassified, or more
    generally when z[label] - max_{o != label} z[o] <= ``margin`` (margin 0: misclassified or
    tied). Other samples write nothing (buffers still decay and cost maintenance).
    ``base`` is a rule object, a rule name, or a dict {'name': ..., **params}.
    Reference: Pache & van Rossum, arXiv 2303.16067 (2023).
    """

    name: ClassVar[str] = "lazy"
    base: Union[Rule, str, dict] = "backprop"
    margin: float = 0.0

    def __post_init__(self):
        base = self.base
        if isinstance(base, str):
            base = make_rule(base)
        elif isinstance(base, dict):
            params = dict(base)
            base = make_rule(params.pop("name", "backprop"), **params)
        if not isinstance(base, Rule) or isinstance(base, Lazy):
            raise ConfigError(f"The 'base' parameter of Lazy must be a rule other than lazy "
                              f"(an object, a name or a dict). Got {self.base!r} instead.")
        set_field(self, "base", base)
        set_field(self, "margin", check_number(self.margin, "margin", "Lazy", None, None))

    def params(self):
        return {"base": {"name": self.base.name, **self.base.params()}, "margin": self.margin}

    def validate(self, hidden):
        self.base.validate(hidden)

    def plastic_units(self, hidden, rng):
        return self.base.plastic_units(hidden, rng)

    def fractions(self):
        return self.base.fractions()

    def plan(self, sizes, rng):
        return plan_for(self.base, sizes, rng).with_lazy(self.margin)


EXTENDED_RULES = (AccumulateWrite, SynapticCaching, Lazy, TopFractionPerNeuron, ErrorPath,
                  RotatingPath, RandomSynapseMask, RandomNeurons, ReadoutOnly, SmallestUpdates,
                  LargestWeights)
STUDY_RULES = (Backprop, TopFraction, Path, Combined)


def plan_for(rule: Rule, sizes, rng) -> KernelPlan:
    """The general kernel's plan for any rule (the study's four included)."""
    sizes = tuple(int(s) for s in sizes)
    if hasattr(rule, "plan"):
        return rule.plan(sizes, rng)
    if type(rule) is Backprop:
        return KernelPlan.make(sizes, None)
    if type(rule) is TopFraction:
        return KernelPlan.make(sizes, None, write=G.WRITE_TOP,
                               p_layer=layer_fractions(rule.fractions(), sizes))
    if type(rule) in (Path, Combined):
        units = fixed_units(sizes, lambda h: rule.plastic_units(h, rng))
        write = G.WRITE_TOP if type(rule) is Combined else G.WRITE_ALL
        return KernelPlan.make(sizes, units, write=write,
                               p_layer=layer_fractions(rule.fractions(), sizes))
    raise ConfigError(f"rule {rule.name!r} ({type(rule).__name__}) has no plan for the general "
                      "kernel.")


for _cls in EXTENDED_RULES:
    RULES.setdefault(_cls.name, _cls)
