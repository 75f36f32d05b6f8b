"""Every preset validates, prices a random stream and cites its source; bad parameters are
rejected with clear messages; hardware_models imports nothing from neuroenergy."""
import ast
import dataclasses
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from hardware_models import (AnalogCrossbar, BiologySynapse, DigitalMemory, HardwareModelError,
                             N_STATS, pack_kernel_params, presets)
from hardware_models import tally as T

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "hardware_models"
REQUIRED = ("rram-neurosim", "rram-ideal", "agsi", "pcm", "fefet", "ecram", "sram-cell",
            "sram-22nm", "stt-mram", "biology-low", "biology-high")


def random_stream(model, shapes, n_steps, seed=0):
    rng = np.random.default_rng(seed)
    p = model.kernel_params()
    stats = np.zeros((len(shapes), N_STATS))
    counts = [np.zeros(s, np.int64) for s in shapes]
    weights = [rng.normal(0, 0.03, s) for s in shapes]
    for _ in range(n_steps):
        for layer, (rows, cols) in enumerate(shapes):
            for r in rng.choice(rows, size=max(1, rows // 2), replace=False):
                sizes = []
                for c in rng.choice(cols, size=max(1, cols // 2), replace=False):
                    w = weights[layer][r, c]
                    w_new = w + rng.normal(0, 0.05)
                    sizes.append(T.tally_write(p, stats[layer], w, w_new, rng.random()))
                    weights[layer][r, c] = w_new
                    counts[layer][r, c] += 1
                T.tally_row(p, stats[layer], len(sizes), max(sizes))
    return stats, counts


@pytest.mark.parametrize("name", presets.names())
def test_preset(name):
    model = presets.get(name)
    assert model.name == name and len(model.citation) > 40
    cls = presets.PRESETS[name]
    # a preset only overrides defaults: no field of its own beyond its generic model's
    generic = next(b for b in cls.__mro__ if b in (AnalogCrossbar, DigitalMemory,
                                                    BiologySynapse))
    assert {f.name for f in dataclasses.fields(cls)} == \
        {f.name for f in dataclasses.fields(generic)}
    assert cls.__doc__
    shapes = [(6, 5), (5, 3)]
    stats, counts = random_stream(model, shapes, n_steps=20)
    r = model.price(stats, counts, shapes, n_steps=20)
    assert r.energy_j > 0 and math.isfinite(r.energy_j)
    assert all(v >= 0 and math.isfinite(v) for v in r.breakdown_j.values())
    assert r.citation == model.citation
    json.dumps(r.to_dict(), allow_nan=False)
    d = model.describe()
    assert d["citation"] and d["summary"] and d["key_parameters"]
    json.dumps(d, allow_nan=False)
    assert pack_kernel_params([model]).shape == (1, T.N_PARAMS)


def test_registry():
    assert set(REQUIRED) <= set(presets.names())
    assert presets.expand("rram-neurosim, sram-22nm,pcm,biology") == \
        ["rram-neurosim", "sram-22nm", "pcm", "biology-low", "biology-high"]
    assert len(presets.describe_all()) == len(presets.names())
    assert "rram-neurosim" in presets.listing()
    with pytest.raises(HardwareModelError, match="Valid names: rram-neurosim"):
        presets.get("rram")
    with pytest.raises(HardwareModelError, match="Unknown hardware preset 'nope'"):
        presets.expand("pcm,nope")
    assert presets.get("sram-22nm", bits=8).bits == 8
    with pytest.raises(HardwareModelError, match="Bad override"):
        presets.get("pcm", colour="red")


def test_preset_numbers():
    r = presets.get("rram-neurosim")
    lo, hi = r.pulse_energy_range_j()
    assert lo == pytest.approx(33.3e-15, rel=0.01) and hi == pytest.approx(3.33e-12, rel=0.01)
    lo, hi = presets.get("agsi").pulse_energy_range_j()
    assert lo == pytest.approx(9.5e-12, rel=0.01) and hi == pytest.approx(118e-12, rel=0.01)
    lo, hi = presets.get("rram-ideal").pulse_energy_range_j()
    assert lo == pytest.approx(4e-15) and hi == pytest.approx(0.2e-12)
    assert presets.get("fefet").pulse_energy_pot_j == pytest.approx(55e-18, rel=0.01)
    assert presets.get("sram-22nm").energy_per_bit_j * 64 == pytest.approx(16.9e-12)
    assert presets.get("biology-high").atp_per_full_range == 1e6
    assert presets.get("ecram").levels_pot == pytest.approx(1000)
    assert presets.get("pcm").levels_pot == pytest.approx(200)


BAD = [
    (AnalogCrossbar, {"dw_min": 0.0},
     "The 'dw_min' parameter of AnalogCrossbar must be a float in the range (0.0, 2.0]. "
     "Got 0.0 instead."),
    (AnalogCrossbar, {"pulse_energy_pot_j": -1e-12}, "'pulse_energy_pot_j' parameter"),
    (AnalogCrossbar, {"rounding": "banker"}, "must be one of 'nearest', 'ceil', 'stochastic'"),
    (AnalogCrossbar, {"access": "1T2R"}, "'access' parameter"),
    (AnalogCrossbar, {"w_max": 0.0}, "'w_max' parameter of AnalogCrossbar must be a float > 0"),
    (AnalogCrossbar, {"g_min_s": 2e-6, "g_max_s": 1e-6}, "'g_max_s' parameter"),
    (AnalogCrossbar, {"v_pot_v": float("nan")}, "'v_pot_v' parameter"),
    (AnalogCrossbar, {"read_energy_j": float("inf")}, "'read_energy_j' parameter"),
    (AnalogCrossbar, {"pair": 1}, "'pair' parameter of AnalogCrossbar must be a bool"),
    (AnalogCrossbar, {"pair": True, "access": "passive"}, "pairs"),
    (AnalogCrossbar, {"endurance_cycles": -5.0}, "'endurance_cycles' parameter"),
    (DigitalMemory, {"bits": 0}, "The 'bits' parameter of DigitalMemory must be an int in the "
                                 "range [1, 32]. Got 0 instead."),
    (DigitalMemory, {"bits": 2.5}, "'bits' parameter"),
    (DigitalMemory, {"bits": 1, "encoding": "sign-magnitude"}, "'bits' parameter"),
    (DigitalMemory, {"rounding": "ceil"}, "must be one of 'nearest', 'stochastic'"),
    (DigitalMemory, {"energy_per_bit_j": -1.0}, "'energy_per_bit_j' parameter"),
    (DigitalMemory, {"w_max": -1.0}, "'w_max' parameter"),
    (DigitalMemory, {"write_mode": "page"}, "'write_mode' parameter"),
    (BiologySynapse, {"full_range_w": 0.0}, "'full_range_w' parameter"),
    (BiologySynapse, {"atp_per_full_range": -1.0}, "'atp_per_full_range' parameter"),
    (BiologySynapse, {"joule_per_atp": True}, "'joule_per_atp' parameter"),
]


@pytest.mark.parametrize("cls, kwargs, message", BAD)
def test_bad_parameters_rejected(cls, kwargs, message):
    with pytest.raises(HardwareModelError) as err:
        cls(**kwargs)
    assert message in str(err.value)


def test_preset_subclass_messages_name_the_preset_class():
    with pytest.raises(HardwareModelError, match="'dw_min' parameter of RramNeuroSim"):
        presets.get("rram-neurosim", dw_min=-0.1)


def test_imports_nothing_from_neuroenergy():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "neuroenergy" for n in names), path.name
    code = ("import sys, hardware_models, hardware_models.presets; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'neuroenergy']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_reprice_issues():
    stored = presets.get("rram-neurosim").kernel_params()
    # energies, voltages and overheads may change: same statistics
    assert presets.get("rram-neurosim", v_pot_v=3.0, row_overhead_j=1e-12).reprice_issues(
        stored) == []
    assert presets.get("rram-coarse").reprice_issues(stored) == [
        "rram-coarse: rounding rule differs (tallied with 1, model has 2): needs a re-run",
        "rram-coarse: potentiation step differs (tallied with 0.0333333, model has 0.095): "
        "needs a re-run",
        "rram-coarse: depression step differs (tallied with 0.0333333, model has 0.095): "
        "needs a re-run"]
    assert presets.get("sram-cell").reprice_issues(presets.get("sram-22nm").kernel_params()) \
        == []
    issues = presets.get("sram-cell").reprice_issues(stored)
    assert len(issues) == 1 and "model kind" in issues[0]
    assert presets.get("biology-high").reprice_issues(
        presets.get("biology-low").kernel_params()) == []
