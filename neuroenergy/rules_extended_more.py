"""Selection rules without buffers: per-neuron top fraction, per-sample paths (error-selected,
random, rotating), and the study's controls. Registered by ``rules_extended``.

References
----------
van Rossum & Pache, "Competitive plasticity to reduce the energetic costs of learning",
PLoS Comput Biol 20(10): e1012553 (2024): per-neuron top fraction and the controls (fixed
random synapse mask, top units by |delta|, random neuron mask, smallest |dw|, largest |w|,
readout only).
Sun, Ren, Ma & Wang, "meProp: sparsified back propagation for accelerated deep learning with
reduced overfitting", ICML 2017: top-k of the backpropagated error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from . import general_codes as G
from ._validate import check_number
from .errors import ConfigError
from .rules import Rule, writes_per_sample
from .rules_plan import (Fractions, KernelPlan, check_fraction, check_path, layer_fractions,
                         layer_k, set_field, validate_k)


@dataclass(frozen=True)
class _FractionRule(Fractions, Rule):
    """A rule with a fraction ``p`` (and optional ``p_out``, tied by default)."""

    p: float = 0.01
    p_out: Optional[float] = None

    def __post_init__(self):
        check_fraction(self, "p")
        check_fraction(self, "p_out", required=False)

    def _plan(self, sizes, write, **kw):
        return KernelPlan.make(sizes, None, write=write,
                               p_layer=layer_fractions(self.fractions(), sizes), **kw)


@dataclass(frozen=True)
class TopFractionPerNeuron(_FractionRule):
    """Per sample, each postsynaptic neuron writes the largest fraction ``p`` of the |dw| of
    its incoming synapses (the study's per-neuron variant of the top fraction).

    Because dw_ij = -lr pre_i post_j, the ranking inside one neuron depends on |pre_i| only:
    every neuron of a layer writes the synapses from the same, most active, presynaptic units.
    """

    name: ClassVar[str] = "top-fraction-neuron"

    def plan(self, sizes, rng):
        return self._plan(sizes, G.WRITE_TOP_NEURON)


@dataclass(frozen=True)
class SmallestUpdates(_FractionRule):
    """Control: per sample, only the *smallest* fraction ``p`` of the nonzero |dw| of each
    layer is written - the opposite of the competitive top fraction."""

    name: ClassVar[str] = "smallest-updates"

    def plan(self, sizes, rng):
        return self._plan(sizes, G.WRITE_SMALLEST)


@dataclass(frozen=True)
class LargestWeights(_FractionRule):
    """Control: per sample, the updates of the fraction ``p`` of synapses with the largest
    |w| (among those with a nonzero update) are written, whatever their size."""

    name: ClassVar[str] = "largest-weights"

    def plan(self, sizes, rng):
        return self._plan(sizes, G.WRITE_LARGEST_W)


@dataclass(frozen=True)
class RandomSynapseMask(_FractionRule):
    """Control: a fixed random set of synapses, a fraction ``p`` of each layer (``p_out`` in
    the output layer), chosen once; they write every update, all others are frozen."""

    name: ClassVar[str] = "random-mask"

    def plan(self, sizes, rng):
        fractions = layer_fractions(self.fractions(), sizes)
        masks = []
        for l, p in enumerate(fractions):
            n = sizes[l] * sizes[l + 1]
            m = np.zeros(n, np.uint8)
            n_on = writes_per_sample(p, n)
            if n_on < 0:
                m[:] = 1
            else:
                m[rng.choice(n, size=n_on, replace=False)] = 1
            masks.append(m)
        return KernelPlan.make(sizes, None, write=G.WRITE_MASK, mask=np.concatenate(masks),
                               p_layer=fractions)


@dataclass(frozen=True)
class ReadoutOnly(Rule):
    """Control: only the output layer learns (every update); the input layer (and any other
    hidden layer) keeps its random initial weights."""

    name: ClassVar[str] = "readout-only"

    def plan(self, sizes, rng):
        return KernelPlan.make(sizes, None, readout_only=True)


@dataclass(frozen=True)
class _PerSamplePath(Rule):
    """k units per hidden layer (or a fraction ``k_fraction`` of them), chosen anew on each
    sample; within their plastic synapses the largest fraction ``p`` is written (p = 1: all;
    ``p_out`` as for the top fraction)."""

    k: Optional[int] = None
    k_fraction: Optional[float] = None
    p: float = 1.0
    p_out: Optional[float] = None

    def __post_init__(self):
        check_path(self)
        check_fraction(self, "p")
        check_fraction(self, "p_out", required=False)

    def validate(self, hidden):
        validate_k(self, hidden)

    def fractions(self):
        if self.p >= 1.0 and self.p_out is None:
            return 1.0, 1.0
        return Fractions.fractions(self)

    def _plan(self, sizes, mode, **kw):
        ks = np.array([layer_k(self.k, self.k_fraction, h, type(self).__name__)
                       for h in sizes[1:-1]], np.int64)
        write = G.WRITE_ALL if self.fractions() == (1.0, 1.0) else G.WRITE_TOP
        return KernelPlan.make(sizes, np.zeros(int(sum(sizes[1:-1])), np.uint8),
                               unit_mode=mode, k_units=ks, write=write,
                               p_layer=layer_fractions(self.fractions(), sizes), **kw)


@dataclass(frozen=True)
class ErrorPath(_PerSamplePath):
    """Error-selected path: on each sample, the k hidden units with the largest |delta| (the
    backpropagated error) learn, with their incoming and outgoing synapses - a path chosen
    per sample, as meProp keeps the top-k of the error. ``outgoing=False`` restricts only the
    incoming synapses (the study's control "top hidden units by |delta|"; the output layer
    then learns fully). The selection does not feed back into the errors.
    Reference: Sun et al., ICML 2017 (meProp).
    """

    name: ClassVar[str] = "error-path"
    outgoing: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.outgoing, (bool, np.bool_)):
            raise ConfigError(f"The 'outgoing' parameter of ErrorPath must be a bool. "
                              f"Got {self.outgoing!r} instead.")
        set_field(self, "outgoing", bool(self.outgoing))

    def plan(self, sizes, rng):
        return self._plan(sizes, G.UNITS_ERROR, restrict_out=self.outgoing)


@dataclass(frozen=True)
class RandomNeurons(_PerSamplePath):
    """Control: a random set of k hidden units per layer learns on each sample (in and out) -
    the error-selected path without the selection."""

    name: ClassVar[str] = "random-neurons"

    def plan(self, sizes, rng):
        return self._plan(sizes, G.UNITS_RANDOM)


@dataclass(frozen=True)
class RotatingPath(_PerSamplePath):
    """A path of k units that moves every ``period`` samples to the next k units of a fixed
    random order (wrapping around), so that writes - and device wear - spread over all units.
    The price is learning time and energy (each new path starts from untrained units); the
    gain shows in the write-count maps (``Result.write_counts``): a lower maximum per device.
    """

    name: ClassVar[str] = "rotating-path"
    period: int = 2000

    def __post_init__(self):
        super().__post_init__()
        set_field(self, "period", check_number(self.period, "period", "RotatingPath", 1, None,
                                               integer=True))

    def plan(self, sizes, rng):
        perm = np.concatenate([1 + rng.permutation(h - 1) for h in sizes[1:-1]]).astype(np.int64)
        return self._plan(sizes, G.UNITS_ROTATING, perm=perm, period=self.period)
