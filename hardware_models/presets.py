"""Published devices and arrays as presets: subclasses that only override defaults and cite
their source.

Usage::

    from hardware_models import presets
    presets.names()                      # registry names
    model = presets.get("rram-neurosim") # a validated model; keyword overrides allowed
    presets.describe("pcm")              # key parameters and citation

Where a number is not in the cited source it is marked "assumed" in the citation. Endurance
values without a device-specific source are the geometric midpoint of the technology's range
in the NVMExplorer endurance summary (2016-2020 literature): RRAM 1e4-1e9 -> 3.2e6, PCM
1e5-2e11 -> 1.4e8, FeFET 1e4-1e11 -> 3.2e7, STT-MRAM 1e6-1e15 -> 3.2e10.
"""
from dataclasses import dataclass
import math

from ._validate import HardwareModelError
from .analog import AnalogCrossbar
from .biology import BiologySynapse
from .digital import DigitalMemory

# NeuroSim wire model: 0.2 fF per um of row/column line; 1T1R cell 4F wide, FeFET cell 6F
_NEUROSIM_WIRE_F_PER_M = 0.2e-15 / 1e-6
_F_32NM_M = 32e-9
_ENDURANCE_RRAM = math.sqrt(1e4 * 1e9)
_ENDURANCE_PCM = math.sqrt(1e5 * 2e11)
_ENDURANCE_FEFET = math.sqrt(1e4 * 1e11)
_ENDURANCE_STT = math.sqrt(1e6 * 1e15)
_ENDURANCE_NOTE = ("endurance: geometric midpoint of the NVMExplorer endurance summary range "
                   "(assumed)")

# PCM cell of NVSim's sample file (Lee et al., ISCA 2009): SET 150 uA / 150 ns,
# RESET 300 uA / 40 ns; the cell voltage (1-1.5 V in the literature) is assumed 1.25 V
_PCM_V = 1.25
_PCM_SET_J = _PCM_V * 150e-6 * 150e-9
_PCM_RESET_J = _PCM_V * 300e-6 * 40e-9

# FeFET, DNN+NeuroSim V2.1: full polarisation swing 2 Pr over a 2F^2 gate at 4 V, 60 levels
_FEFET_PR_C_PER_M2 = 20e-6 / 1e-4
_FEFET_FULL_SWING_J = 2 * _FEFET_PR_C_PER_M2 * 2 * _F_32NM_M ** 2 * 4.0


@dataclass
class RramNeuroSim(AnalogCrossbar):
    """RRAM 1T1R, DNN+NeuroSim V2.1 defaults (Peng et al., IEEE TCAD 2020)."""

    name: str = "rram-neurosim"
    citation: str = (
        "DNN+NeuroSim V2.1 RRAM defaults (Param.cpp): Ron 240 kOhm, Roff 24 MOhm, 60 levels "
        "each way, 4 V, 50 ns, 32 nm, pulses = ceil(|dG|/dG_min), E = V^2 G t; X. Peng et al., "
        "'DNN+NeuroSim V2.0: an end-to-end benchmarking framework for compute-in-memory "
        "accelerators for on-chip training', IEEE TCAD (2020). Lines: NeuroSim wire model "
        "0.2 fF/um, 1T1R cell 4F. " + _ENDURANCE_NOTE)
    dw_min: float = 2.0 / 60
    rounding: str = "ceil"
    conductance_dependent: bool = True
    g_min_s: float = 1.0 / 24e6
    g_max_s: float = 1.0 / 240e3
    v_pot_v: float = 4.0
    v_dep_v: float = 4.0
    pulse_width_pot_s: float = 50e-9
    pulse_width_dep_s: float = 50e-9
    access: str = "1T1R"
    wire_cap_per_cell_f: float = _NEUROSIM_WIRE_F_PER_M * 4 * _F_32NM_M
    endurance_cycles: float | None = _ENDURANCE_RRAM


@dataclass
class RramIdeal(AnalogCrossbar):
    """Ideal RRAM of MLP NeuroSim V3.0 (IdealDevice)."""

    name: str = "rram-ideal"
    citation: str = (
        "MLP_NeuroSim V3.0 IdealDevice (Cell.cpp): 0.1-5 uS, 64 levels, 2 V, 10 ns, 1T1R, "
        "pulses rounded to nearest; P.-Y. Chen, X. Peng, S. Yu, 'NeuroSim: a circuit-level "
        "macro model for benchmarking neuro-inspired architectures in online learning', "
        "IEEE TCAD 37(12), 2018. " + _ENDURANCE_NOTE)
    dw_min: float = 2.0 / 64
    rounding: str = "nearest"
    g_min_s: float = 100e-9
    g_max_s: float = 5e-6
    v_pot_v: float = 2.0
    v_dep_v: float = 2.0
    pulse_width_pot_s: float = 10e-9
    pulse_width_dep_s: float = 10e-9
    endurance_cycles: float | None = _ENDURANCE_RRAM


@dataclass
class AgSi(AnalogCrossbar):
    """Ag:a-Si memristor (Jo et al., Nano Lett. 2010) as fitted in MLP NeuroSim V3.0."""

    name: str = "agsi"
    citation: str = (
        "S. H. Jo et al., 'Nanoscale memristor device as synapse in neuromorphic systems', "
        "Nano Lett. 10, 1297 (2010), as fitted in MLP_NeuroSim V3.0: 3.08-38.5 nS, 97 LTP / "
        "100 LTD levels, +3.2 / -2.8 V, 300 us, cycle-to-cycle noise 3.5% of the range; the "
        "fitted nonlinearity (2.40 / -4.88) is not modelled (linear steps). "
        + _ENDURANCE_NOTE)
    dw_min: float = 2.0 / 97
    dw_min_dep: float | None = 2.0 / 100
    rounding: str = "nearest"
    g_min_s: float = 3.08e-9
    g_max_s: float = 38.5e-9
    v_pot_v: float = 3.2
    v_dep_v: float = 2.8
    pulse_width_pot_s: float = 300e-6
    pulse_width_dep_s: float = 300e-6
    write_noise: float = 0.035
    endurance_cycles: float | None = _ENDURANCE_RRAM


@dataclass
class Pcm(AnalogCrossbar):
    """PCM in unidirectional pairs: NVSim / Lee 2009 pulse energies, Nandakumar 2020 pairs."""

    name: str = "pcm"
    citation: str = (
        "Pulse energies from the NVSim sample PCM cell (B. C. Lee et al., 'Architecting phase "
        "change memory as a scalable DRAM alternative', ISCA 2009, 90 nm): SET 150 uA / "
        "150 ns, RESET 300 uA / 40 ns at an assumed 1.25 V -> 28 pJ / 15 pJ. Unidirectional "
        "pairs with refresh and ~200 steps per device (dw_min 0.01 on [0, 2]) from "
        "S. R. Nandakumar et al., Front. Neurosci. 14:406 (2020) (aihwkit PCM preset). "
        "Both pair devices are only SET; a refresh RESETs both (2 x 15 pJ, reads not priced). "
        + _ENDURANCE_NOTE)
    dw_min: float = 1.0 / 200
    rounding: str = "stochastic"
    conductance_dependent: bool = False
    pulse_energy_pot_j: float = _PCM_SET_J
    pulse_energy_dep_j: float = _PCM_SET_J
    g_min_s: float = 0.0
    g_max_s: float = 0.0
    v_pot_v: float = _PCM_V
    v_dep_v: float = _PCM_V
    pulse_width_pot_s: float = 150e-9
    pulse_width_dep_s: float = 150e-9
    pair: bool = True
    refresh_energy_j: float = 2 * _PCM_RESET_J
    endurance_cycles: float | None = _ENDURANCE_PCM


@dataclass
class FeFet(AnalogCrossbar):
    """FeFET synapse, DNN+NeuroSim V2.1 defaults."""

    name: str = "fefet"
    citation: str = (
        "DNN+NeuroSim V2.1 FeFET: Pr 20 uC/cm^2, 4 V, 60 levels, 32 nm, E = dPr * Vw * 2F^2 "
        "-> 3.3 fJ full swing, 55 aJ per level (Peng et al., IEEE TCAD 2020); pulse width "
        "20 ns from the NVMExplorer FeFET cell (assumed, latency only); lines: NeuroSim wire "
        "model 0.2 fF/um, FeFET cell 6F. " + _ENDURANCE_NOTE)
    dw_min: float = 2.0 / 60
    rounding: str = "ceil"
    conductance_dependent: bool = False
    pulse_energy_pot_j: float = _FEFET_FULL_SWING_J / 60
    pulse_energy_dep_j: float = _FEFET_FULL_SWING_J / 60
    g_min_s: float = 0.0
    g_max_s: float = 0.0
    v_pot_v: float = 4.0
    v_dep_v: float = 4.0
    pulse_width_pot_s: float = 20e-9
    pulse_width_dep_s: float = 20e-9
    wire_cap_per_cell_f: float = _NEUROSIM_WIRE_F_PER_M * 6 * _F_32NM_M
    endurance_cycles: float | None = _ENDURANCE_FEFET


@dataclass
class Ecram(AnalogCrossbar):
    """Li-ion ECRAM (Tang et al., IEDM 2018)."""

    name: str = "ecram"
    citation: str = (
        "J. Tang et al., 'ECRAM as scalable synaptic cell for high-speed, low-power "
        "neuromorphic computing', IEDM 2018: ~1000 symmetric states (aihwkit step dw_min "
        "0.002 on [-1, 1]), pulses down to 5 ns, projected switching energy ~1 fJ for a "
        "100 x 100 nm^2 device, taken here as the energy of every pulse (assumed). "
        "Endurance not reported: unknown.")
    dw_min: float = 0.002
    rounding: str = "stochastic"
    conductance_dependent: bool = False
    pulse_energy_pot_j: float = 1e-15
    pulse_energy_dep_j: float = 1e-15
    g_min_s: float = 0.0
    g_max_s: float = 0.0
    pulse_width_pot_s: float = 5e-9
    pulse_width_dep_s: float = 5e-9
    endurance_cycles: float | None = None


@dataclass
class RramCoarse(RramNeuroSim):
    """Coarse RRAM (~21 steps, Gong & Rasch et al., IEDM 2022) on NeuroSim RRAM electrics."""

    name: str = "rram-coarse"
    citation: str = (
        "Step dw_min 0.095 on [-1, 1] (~21 steps) of the RRAM arrays of N. Gong, M. J. Rasch "
        "et al., IEDM 2022 (aihwkit preset), stochastic pulses as aihwkit; electrical "
        "parameters of DNN+NeuroSim V2.1 RRAM (Peng et al., IEEE TCAD 2020). "
        + _ENDURANCE_NOTE)
    dw_min: float = 0.095
    rounding: str = "stochastic"


@dataclass
class SramCell(DigitalMemory):
    """SRAM cell only (no periphery), MNSIM 2.0 default."""

    name: str = "sram-cell"
    citation: str = (
        "Cell-only SRAM write energy 1.6 fJ per bit, MNSIM 2.0 default (Z. Zhu et al., "
        "'MNSIM 2.0: a behavior-level modeling tool for memristor-based neuromorphic "
        "computing systems', GLSVLSI 2020); charged per flipped bit as MLP NeuroSim "
        "(2 C Vdd^2 per flipped bit); 16-bit weights assumed.")
    energy_per_bit_j: float = 1.6e-15
    write_mode: str = "flipped-bits"


@dataclass
class Sram22nm(DigitalMemory):
    """SRAM array with periphery, 22 nm, NVMExplorer / NVSim."""

    name: str = "sram-22nm"
    citation: str = (
        "NVMExplorer (A. Pentecost et al., HPCA 2022) with NVSim, 22 nm, 1 MB array, 64-bit "
        "word: 16.9 pJ per 64-bit write (0.26 pJ/bit, periphery included); charged per bit "
        "of each changed 16-bit weight (assumed word width).")
    energy_per_bit_j: float = 16.9e-12 / 64
    write_mode: str = "word"


@dataclass
class SttMram(DigitalMemory):
    """STT-MRAM array with periphery, 22 nm, NVMExplorer / NVSim."""

    name: str = "stt-mram"
    citation: str = (
        "NVMExplorer (A. Pentecost et al., HPCA 2022) with NVSim, 22 nm, 1 MB array, 64-bit "
        "word: 68 pJ per 64-bit write (1.07 pJ/bit, periphery included); charged per bit of "
        "each changed 16-bit weight (assumed word width). " + _ENDURANCE_NOTE)
    energy_per_bit_j: float = 68e-12 / 64
    write_mode: str = "word"
    endurance_cycles: float | None = _ENDURANCE_STT


@dataclass
class EdramIsaac(DigitalMemory):
    """eDRAM buffer of ISAAC (32 nm)."""

    name: str = "edram-isaac"
    citation: str = (
        "A. Shafiee et al., 'ISAAC: a convolutional neural network accelerator with in-situ "
        "analog arithmetic in crossbars', ISCA 2016, 32 nm eDRAM: 20.45 pJ per 256-bit "
        "access, taken as the write energy (assumed); charged per bit of each changed 16-bit "
        "weight; refresh energy not priced.")
    energy_per_bit_j: float = 20.45e-12 / 256
    write_mode: str = "word"


_BIO_CITATION = (
    "Assumed band (project recipe, docs/hardware_models.md): {atp:.0e} ATP per full-range "
    "weight change of one synapse (receptor insertion and structural change; band 1e5-1e6), "
    "8.3e-20 J per ATP from ~50 kJ/mol ATP hydrolysis (44-56 kJ/mol); energy measure M1 / M0 "
    "of H. Li & M. C. W. van Rossum, 'Energy efficient synaptic plasticity', eLife 9:e50804 "
    "(2020); plasticity costs 4-11% of excitatory transmission energy (Karbowski, "
    "J. Neurophysiol. 122:1473, 2019).")


@dataclass
class BiologyLow(BiologySynapse):
    """Biological synapse, low end of the assumed band (1e5 ATP per full-range change)."""

    name: str = "biology-low"
    citation: str = _BIO_CITATION.format(atp=1e5)
    atp_per_full_range: float = 1e5


@dataclass
class BiologyHigh(BiologySynapse):
    """Biological synapse, high end of the assumed band (1e6 ATP per full-range change)."""

    name: str = "biology-high"
    citation: str = _BIO_CITATION.format(atp=1e6)
    atp_per_full_range: float = 1e6


PRESETS = {cls.name: cls for cls in (
    RramNeuroSim, RramIdeal, AgSi, Pcm, FeFet, Ecram, RramCoarse, SramCell, Sram22nm, SttMram,
    EdramIsaac, BiologyLow, BiologyHigh)}
"""Registry: preset name -> class."""

GROUPS = {"biology": ("biology-low", "biology-high")}
"""Names that stand for several presets in ``expand``."""


def names():
    """Registry names of every preset, in listing order."""
    return list(PRESETS)


def preset_class(name):
    """The class registered under ``name``; unknown names raise with the valid names."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise HardwareModelError(
            f"Unknown hardware preset {name!r}. Valid names: {', '.join(PRESETS)}"
            f" (group: {', '.join(GROUPS)}).") from None


def get(name, **overrides):
    """A validated instance of preset ``name``, with optional field overrides.

    Parameters
    ----------
    name : str
        Registry name (see :func:`names`).
    **overrides
        Field values replacing the preset's defaults (e.g. ``w_max=0.5``).
    """
    cls = preset_class(name)
    try:
        return cls(**overrides)
    except TypeError as err:
        raise HardwareModelError(f"Bad override for preset {name!r}: {err}") from None


def expand(spec):
    """Preset names from a comma-separated spec; 'biology' stands for biology-low and -high.

    Parameters
    ----------
    spec : str or sequence of str
        E.g. ``"rram-neurosim,sram-22nm,pcm,biology"``.

    Returns
    -------
    list of str
        Valid preset names, duplicates removed, order kept.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        for name in GROUPS.get(item, (item,)):
            preset_class(name)
            if name not in out:
                out.append(name)
    return out


def describe(name):
    """Key parameters and citation of preset ``name`` (see ``HardwareModel.describe``)."""
    return get(name).describe()


def describe_all():
    """``describe`` of every preset, in listing order."""
    return [describe(n) for n in PRESETS]


def listing():
    """Plain-text listing of every preset: name, one-line summary, citation."""
    lines = []
    for n in PRESETS:
        d = describe(n)
        lines.append(f"{n:<14} {d['summary']}")
        lines.append(f"{'':<14} source: {d['citation']}")
    return "\n".join(lines)
