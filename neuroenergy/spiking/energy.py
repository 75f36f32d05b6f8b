"""Inference energy per image on cited per-operation figures: the rate network's
multiply-accumulates against the spiking network's synaptic operations.

These are order-of-magnitude figures, as in the spiking literature: every profile prices one
kind of operation and ignores memory access, leakage and neuron updates; compare profiles
with each other, not with a measured chip.

References
----------
Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014:
45 nm, fp32 multiply-accumulate 4.6 pJ (3.7 pJ mult + 0.9 pJ add), fp32 add 0.9 pJ.
Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro
38(1):82-99 (2018), Table 2: 23.6 pJ per synaptic spike operation (minimum, pre-silicon).
Merolla et al., "A million spiking-neuron integrated circuit with a scalable communication
network and interface", Science 345:668-673 (2014): 26 pJ per synaptic event, all-in.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..network import BIAS_UNIT

N_OUT = 10
MAC_45NM_J = 4.6e-12
LABEL = ("order of magnitude: one cited figure per operation, memory access and neuron "
         "updates not included")


@dataclass(frozen=True)
class OperationProfile:
    """Energy of one operation on one technology.

    Attributes
    ----------
    name : key in the reports
    network : 'rate' (priced per MAC) or 'spiking' (priced per synaptic operation)
    energy_per_op_j : joules per operation
    operation : what one operation is
    citation : where the figure comes from
    """

    name: str
    network: str
    energy_per_op_j: float
    operation: str
    citation: str


PROFILES = (
    OperationProfile("rate_mac_45nm", "rate", MAC_45NM_J, "fp32 multiply-accumulate",
                     "Horowitz, ISSCC 2014 (45 nm)"),
    OperationProfile("spiking_add_45nm", "spiking", 0.9e-12, "fp32 add per synaptic event",
                     "Horowitz, ISSCC 2014 (45 nm)"),
    OperationProfile("loihi", "spiking", 23.6e-12, "synaptic spike operation",
                     "Davies et al., IEEE Micro 38(1), 2018, Table 2"),
    OperationProfile("truenorth", "spiking", 26e-12, "synaptic event, all-in (20 Hz, 0.775 V)",
                     "Merolla et al., Science 345:668, 2014"),
)


def rate_macs_per_image(n_in: int, hidden: int) -> int:
    """MACs of one forward pass: every input into every hidden unit except the clamped bias
    unit, and every hidden unit (bias included) into every output."""
    n_computed = hidden - 1 if 0 <= BIAS_UNIT < hidden else hidden
    return n_in * n_computed + hidden * N_OUT


def inference_energy(rate_macs: float, synaptic_ops: float, input_macs: float = 0.0) -> dict:
    """Joules per image for every profile.

    Parameters
    ----------
    rate_macs : MACs per image of the rate network
    synaptic_ops : synaptic events per image of the spiking network (spikes x fan-out)
    input_macs : MACs per image the spiking network still computes conventionally (the
        analog first layer with constant-current input, once per image); priced as 45 nm
        fp32 MACs for every spiking profile and reported separately, never folded into the
        per-event figures

    Returns
    -------
    dict: profile name -> joules per image
    """
    out = {}
    for p in PROFILES:
        if p.network == "rate":
            out[p.name] = rate_macs * p.energy_per_op_j
        else:
            out[p.name] = synaptic_ops * p.energy_per_op_j + input_macs * MAC_45NM_J
    return out


def profile_table() -> list:
    """The profiles as JSON-able dicts (for reports)."""
    return [{"name": p.name, "network": p.network, "energy_per_op_j": p.energy_per_op_j,
             "operation": p.operation, "citation": p.citation} for p in PROFILES]
