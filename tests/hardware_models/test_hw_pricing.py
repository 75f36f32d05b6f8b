"""Pricing: small write streams with energies worked out by hand."""
import dataclasses
import json
import math

import numpy as np
import pytest

from hardware_models import (AnalogCrossbar, BiologySynapse, DigitalMemory, EnergyReport,
                             HardwareModelError, N_STATS, price_many, summary_table)
from hardware_models import tally as T


def tally(model, rows):
    """rows: list of lists of (w_old, w_new, u) written to one row each; one layer."""
    p = model.kernel_params()
    s = np.zeros((1, N_STATS))
    for writes in rows:
        sizes = [T.tally_write(p, s[0], a, b, u) for a, b, u in writes]
        T.tally_row(p, s[0], len(sizes), max(sizes))
    return s


def const_analog(**kw):
    base = dict(dw_min=0.1, conductance_dependent=False, pulse_energy_pot_j=1e-12,
                pulse_energy_dep_j=2e-12, g_min_s=1e-6, g_max_s=3e-6, v_pot_v=2.0, v_dep_v=2.0,
                pulse_width_pot_s=10e-9, pulse_width_dep_s=10e-9)
    base.update(kw)
    return AnalogCrossbar(**base)


STREAM = [[(0.0, 0.34, 0.0), (0.0, -0.2, 0.0)],  # row 0: 3 up, 2 down pulses, max 3
          [(0.0, 0.01, 0.0)]]                     # row 1: touched, no pulse


def test_analog_constant_energy_rows_and_latency():
    m = const_analog(row_overhead_j=5e-12, row_time_s=1e-9)
    r = m.price(tally(m, STREAM), layer_shapes=[(4, 5)], n_steps=1)
    assert r.breakdown_j["cell"] == pytest.approx(3e-12 + 4e-12)
    assert r.breakdown_j["rows"] == pytest.approx(5e-12)  # only the row with pulses
    assert r.energy_j == pytest.approx(12e-12)
    assert r.latency_s == pytest.approx(3 * 10e-9 + 1e-9)
    assert r.lost_updates == 1 and r.lost_abs_dw == pytest.approx(0.01)
    assert r.counts["pulses"] == 5 and r.counts["rows_touched"] == 2
    assert r.counts["rows_written"] == 1


def test_analog_no_writes():
    m = const_analog(access="passive", wire_cap_per_cell_f=1e-17, verify=True,
                     read_energy_j=1e-13)
    r = m.price(np.zeros((2, N_STATS)), layer_shapes=[(3, 4), (4, 2)], n_steps=10)
    assert r.energy_j == 0 and r.latency_s == 0 and r.lost_updates == 0
    assert r.layer_energy_j == [0.0, 0.0]


def test_analog_conductance_dependent():
    m = const_analog(conductance_dependent=True)
    r = m.price(tally(m, [[(0.0, 0.3, 0.0)]]))
    g = 1e-6 + 0.575 * 2e-6  # mean of the conductances at w = 0 and w = 0.3
    assert r.breakdown_j["cell"] == pytest.approx(2.0 ** 2 * g * 10e-9 * 3)


def test_half_select_passive_crossbar():
    m = const_analog(access="passive")
    s = tally(m, [[(0.0, 0.3, 0.0), (0.0, -0.2, 0.0)]])  # pulses 3 and 2 in one row
    r = m.price(s, layer_shapes=[(4, 5)])
    e_half = (2.0 / 2) ** 2 * 2e-6 * 10e-9  # (V/2)^2 g_mid t
    in_row = 5 * 3 - 2 * 3                  # unselected cells of the row x pulse slots
    in_cols = (4 - 1) * (3 + 2)             # other cells of the written columns x pulses
    assert r.breakdown_j["half_select"] == pytest.approx(e_half * (in_row + in_cols))
    r1 = const_analog().price(s, layer_shapes=[(4, 5)])
    assert r1.breakdown_j["half_select"] == 0.0  # 1T1R: no half-select
    with pytest.raises(HardwareModelError, match="layer_shapes"):
        m.price(s)


def test_line_energy_grows_with_row_maximum():
    c = 1e-17
    m = const_analog(wire_cap_per_cell_f=c)
    s = tally(m, [[(0.0, 0.3, 0.0), (0.0, -0.2, 0.0)]])
    r = m.price(s, layer_shapes=[(4, 5)])
    assert r.breakdown_j["lines"] == pytest.approx(c * 4.0 * (4 * 5 + 5 * 3))


def test_write_verify():
    m = const_analog(verify=True, read_energy_j=1e-13, read_time_s=2e-9)
    r = m.price(tally(m, STREAM))
    assert r.breakdown_j["verify"] == pytest.approx(5 * 1e-13)
    assert r.latency_s == pytest.approx(3 * (10e-9 + 2e-9))


def test_pcm_pair_refresh_energy():
    m = const_analog(pair=True, refresh_energy_j=30e-12, pulse_energy_dep_j=1e-12)
    r = m.price(tally(m, [[(0.0, 0.3, 0.0)]]))
    # hazard 3 / 10; re-programming |w| = 0.3 takes 3 pulses, expected 0.9
    assert r.breakdown_j["refresh"] == pytest.approx(0.3 * 30e-12 + 0.9 * 1e-12)
    assert r.breakdown_j["cell"] == pytest.approx(3e-12)
    assert r.counts["refreshes"] == pytest.approx(0.3)


def test_rounding_rules_priced():
    stream = [[(0.0, 0.04, 0.5)], [(0.0, 0.16, 0.5)], [(0.0, 0.34, 0.5)]]
    expected = {"nearest": 0 + 2 + 3, "ceil": 0 + 2 + 4, "stochastic": 0 + 2 + 3}
    for rule, pulses in expected.items():
        m = const_analog(rounding=rule)
        r = m.price(tally(m, stream))
        assert r.counts["pulses"] == pulses, rule
        assert r.breakdown_j["cell"] == pytest.approx(pulses * 1e-12)


def test_digital_flipped_bits_and_word_mode():
    stream = [[(0.0, -0.125, 0.0), (0.25, 0.375, 0.0)],  # 4 + 1 bits, 2 words
              [(0.25, 0.3, 0.0)]]                         # lost: 0 bits, row skipped
    m = DigitalMemory(bits=4, energy_per_bit_j=1e-15, row_overhead_j=1e-13, write_time_s=1e-9)
    r = m.price(tally(m, stream), n_steps=3)
    assert r.breakdown_j == pytest.approx({"cell": 5e-15, "rows": 1e-13})
    assert r.lost_updates == 1 and r.counts["bits_flipped"] == 5
    assert r.counts["words_written"] == 2 and r.latency_s == pytest.approx(1e-9)
    m = DigitalMemory(bits=4, energy_per_bit_j=1e-15, write_mode="word")
    r = m.price(tally(m, stream))
    assert r.breakdown_j["cell"] == pytest.approx(2 * 4 * 1e-15)
    assert r.latency_s is None


def test_digital_per_row_overhead_counts_rows_written():
    m = DigitalMemory(bits=8, energy_per_bit_j=0.0, row_overhead_j=1.0)
    rows = [[(0.0, 0.5, 0.0)] for _ in range(7)] + [[(0.0, 0.0, 0.0)]]
    r = m.price(tally(m, rows))
    assert r.energy_j == pytest.approx(7.0)


def test_biology_atp_and_joules():
    stream = [[(0.0, 0.1, 0.0), (0.1, -0.1, 0.0)], [(0.3, 0.3, 0.0)]]
    m = BiologySynapse(atp_per_full_range=1e5, atp_per_write=10.0)
    r = m.price(tally(m, stream))
    atp = 1e5 * 0.3 + 10 * 2
    assert r.extra["atp"] == pytest.approx(atp)
    assert r.energy_j == pytest.approx(atp * 8.3e-20)
    assert r.counts["m1"] == pytest.approx(0.3) and r.counts["m0"] == 2
    m = BiologySynapse(atp_per_full_range=1e6, full_range_w=0.5, potentiation_only=True)
    r = m.price(tally(m, stream))
    assert r.extra["atp"] == pytest.approx(1e6 * 0.1 / 0.5)
    assert r.latency_s is None


def test_per_layer_energies_sum_to_total():
    m = const_analog()
    s = np.vstack([tally(m, STREAM), tally(m, [[(0.0, 0.5, 0.0)]])])
    r = m.price(s, write_counts=[np.ones((4, 5), np.int64), np.ones((5, 3), np.int64)])
    assert r.layer_energy_j == pytest.approx([7e-12, 5e-12])
    assert r.energy_j == pytest.approx(sum(r.layer_energy_j))
    assert math.fsum(r.breakdown_j.values()) == pytest.approx(r.energy_j)
    assert r.lifetime.max_cell_writes == 1


def test_report_to_dict_is_strict_json():
    m = DigitalMemory(bits=4)
    r = m.price(tally(m, STREAM), write_counts=[np.array([[1, 0]])], n_steps=2)
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["lifetime_runs_unlimited"] is True
    assert d["lifetime_runs"] is None and d["energy_j"] == r.energy_j
    assert isinstance(r, EnergyReport) and r.energy_per_step_j == r.energy_j / 2


def test_price_many_dict_and_array():
    models = [const_analog(name="a"), DigitalMemory(name="d", bits=4), BiologySynapse(name="b")]
    stats = np.zeros((1, 3, N_STATS))
    for d, m in enumerate(models):
        stats[:, d] = tally(m, STREAM)
    by_array = price_many(models, stats, layer_shapes=[(4, 5)], n_steps=1)
    by_dict = price_many(models, {m.name: stats[:, d] for d, m in enumerate(models)})
    assert list(by_array) == ["a", "d", "b"]
    for name in by_array:
        assert by_array[name].energy_j == by_dict[name].energy_j
    assert "technology" in summary_table(by_array)
    with pytest.raises(HardwareModelError, match="No statistics"):
        price_many(models, {"a": stats[:, 0]})
    with pytest.raises(HardwareModelError, match="shape"):
        price_many(models, np.zeros((1, 2, N_STATS)))
    with pytest.raises(HardwareModelError, match="unique"):
        price_many([models[0], models[0]], stats[:, :2])


def test_bad_pricing_inputs():
    m = const_analog()
    with pytest.raises(HardwareModelError, match="shape"):
        m.price(np.zeros((2, N_STATS - 1)))
    with pytest.raises(HardwareModelError, match="non-negative"):
        m.price(-np.ones((1, N_STATS)))
    with pytest.raises(HardwareModelError, match="layer_shapes"):
        m.price(np.zeros((2, N_STATS)), layer_shapes=[(3, 4)])
    with pytest.raises(HardwareModelError, match="write_counts"):
        m.price(np.zeros((2, N_STATS)), write_counts=[np.zeros((2, 2), np.int64)])
    with pytest.raises(HardwareModelError, match="n_steps"):
        m.price(np.zeros((1, N_STATS)), n_steps=1.5)


def test_rows_charged_written_or_touched():
    rows = [[(0.0, 0.5, 0.0)], [(0.0, 0.001, 0.0)], [(0.0, 0.001, 0.0)]]  # 1 written, 3 touched
    for model in (DigitalMemory(bits=4, energy_per_bit_j=0.0, row_overhead_j=1.0),
                  const_analog(pulse_energy_pot_j=0.0, row_overhead_j=1.0)):
        s = tally(model, rows)
        assert model.price(s).breakdown_j["rows"] == 1.0
        touched = dataclasses.replace(model, rows_charged="touched")
        assert touched.price(s).breakdown_j["rows"] == 3.0
    with pytest.raises(HardwareModelError, match="'rows_charged' parameter"):
        DigitalMemory(rows_charged="some")
