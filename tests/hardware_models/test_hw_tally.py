"""Compiled tallies: hand-checkable write streams and a comparison with the slow reference."""
import math

from hypothesis import given, settings, strategies as st
import numba
import numpy as np
import pytest

from hardware_models import AnalogCrossbar, BiologySynapse, DigitalMemory, pack_kernel_params
from hardware_models import tally as T

from hw_reference import bit_string, ref_device_write, ref_tally_row, ref_tally_write


def analog(rounding="nearest", **kw):
    kw.setdefault("dw_min", 0.1)
    return AnalogCrossbar(rounding=rounding, **kw).kernel_params()


def digital(bits=4, **kw):
    return DigitalMemory(bits=bits, **kw).kernel_params()


def run(params, writes):
    """Tally (w_old, w_new, u) writes; return (sizes, stats)."""
    stats = np.zeros(T.N_STATS)
    sizes = [T.tally_write(params, stats, a, b, u) for a, b, u in writes]
    return sizes, stats


# --- analog: rounding rules ---------------------------------------------------------------
def test_nearest_rounding_pulses():
    sizes, s = run(analog("nearest"), [(0.0, 0.34, 0.5), (0.0, 0.04, 0.5), (0.0, 0.05, 0.5),
                                       (0.0, -0.26, 0.5)])
    assert sizes == [3.0, 0.0, 1.0, 3.0]
    assert s[T.STAT_SIZE_POT] == 4 and s[T.STAT_SIZE_DEP] == 3
    assert s[T.STAT_NOOP] == 1 and s[T.STAT_NOOP_ABS_DW] == pytest.approx(0.04)
    assert s[T.STAT_CHANGED] == 3 and s[T.STAT_WRITES] == 4
    assert s[T.STAT_ABS_DW] == pytest.approx(0.34 + 0.04 + 0.05 + 0.26)


def test_ceil_rounding_only_from_one_step():
    sizes, s = run(analog("ceil"), [(0.0, 0.04, 0.0), (0.0, 0.099, 0.0), (0.0, 0.1, 0.0),
                                    (0.0, 0.11, 0.0), (0.0, 0.34, 0.0), (0.5, 0.2, 0.0)])
    assert sizes == [0.0, 0.0, 1.0, 2.0, 4.0, 3.0]
    assert s[T.STAT_NOOP] == 2


def test_stochastic_rounding_is_unbiased():
    p = analog("stochastic")
    n = 1000
    us = (np.arange(n) + 0.5) / n
    sizes, s = run(p, [(0.0, 0.04, u) for u in us])
    assert np.mean(sizes) == pytest.approx(0.4)
    assert s[T.STAT_NOOP] == 600
    sizes, _ = run(p, [(0.0, 0.34, u) for u in us])
    assert set(sizes) == {3.0, 4.0} and np.mean(sizes) == pytest.approx(3.4)
    rng = np.random.default_rng(1)
    sizes, _ = run(p, [(0.1, 0.1 - 0.025, u) for u in rng.random(20000)])
    assert np.mean(sizes) == pytest.approx(0.25, abs=0.01)


def test_separate_step_sizes():
    p = AnalogCrossbar(dw_min=0.1, dw_min_dep=0.05, w_max=2.0).kernel_params()
    # steps in weight units: 0.2 up, 0.1 down
    sizes, _ = run(p, [(0.0, 0.4, 0.0), (0.0, -0.4, 0.0)])
    assert sizes == [2.0, 4.0]


def test_no_writes_and_zero_change():
    _, s = run(analog(), [])
    assert not s.any()
    sizes, s = run(analog(), [(0.3, 0.3, 0.2)])
    assert sizes == [0.0] and s[T.STAT_NOOP] == 1 and s[T.STAT_NOOP_ABS_DW] == 0


def test_conductance_weighting():
    _, s = run(analog(), [(0.0, 0.3, 0.0)])
    # normalised conductance 0.5 before, 0.65 after: mean 0.575 per pulse
    assert s[T.STAT_G_POT] == pytest.approx(3 * 0.575)


def test_saturation_in_tally_and_device():
    p = analog()
    sizes, s = run(p, [(0.95, 1.3, 0.0)])
    assert sizes == [1.0] and s[T.STAT_CLIPPED] == 1  # only 0.05 of room: half a step
    assert T.device_write(p, 0.95, 0.2, 0.0, 0.0) == 1.0
    assert T.device_write(p, -0.98, -0.5, 0.0, 0.0) == -1.0
    assert T.device_write(p, 1.7, 0.0, 0.0, 0.0) == 1.0


def test_device_write_analog():
    p = analog()
    assert T.device_write(p, 0.2, 0.34, 0.0, 0.0) == pytest.approx(0.5)
    assert T.device_write(p, 0.2, 0.04, 0.0, 0.0) == 0.2        # under half a step: lost
    p = analog("ceil")
    assert T.device_write(p, 0.2, 0.11, 0.0, 0.0) == pytest.approx(0.4)
    p = analog("stochastic")
    assert T.device_write(p, 0.2, 0.04, 0.7, 0.0) == pytest.approx(0.3)
    assert T.device_write(p, 0.2, 0.04, 0.5, 0.0) == pytest.approx(0.2)
    p = AnalogCrossbar(dw_min=0.1, write_noise=0.035).kernel_params()
    # std of one pulse = 0.035 * full range 2 = 0.07; 4 pulses: 0.07 * 2
    assert T.device_write(p, 0.0, 0.4, 0.0, 1.0) == pytest.approx(0.4 + 0.14)
    assert T.device_write(p, 0.0, 0.04, 0.0, 5.0) == 0.0        # no pulse, no noise


# --- analog: unidirectional pairs ---------------------------------------------------------
def test_pair_refresh_hazard():
    p = analog(pair=True)  # one device holds 1 / 0.1 = 10 pulses
    _, s = run(p, [(0.0, 0.3, 0.0)])
    assert s[T.STAT_REFRESH] == pytest.approx(0.3)
    assert s[T.STAT_REFRESH_PULSES] == pytest.approx(0.3 * 3)
    assert s[T.STAT_G_POT] == pytest.approx(1.5)
    _, s = run(p, [(0.0, 0.1, 0.0)] * 25)  # 25 single pulses: 2.5 refreshes expected
    assert s[T.STAT_REFRESH] == pytest.approx(2.5)
    _, s = run(p, [(-1.0, 1.0, 0.0)])      # 20 pulses > capacity: at most one refresh
    assert s[T.STAT_REFRESH] == 1.0
    _, s = run(p, [(0.5, 0.2, 0.0)])       # depression pulses go to G-: also refresh
    assert s[T.STAT_SIZE_DEP] == 3 and s[T.STAT_REFRESH] == pytest.approx(0.3)


# --- digital ------------------------------------------------------------------------------
def test_hamming_distance_on_known_codes():
    p = digital(4)  # lsb 0.125, codes -8..7
    sizes, s = run(p, [(0.0, -0.125, 0.0),   # 0000 -> 1111
                       (0.25, 0.375, 0.0),   # 0010 -> 0011
                       (0.375, 0.25, 0.0),   # 0011 -> 0010
                       (0.5, 0.25, 0.0)])    # 0100 -> 0010
    assert sizes == [4.0, 1.0, 1.0, 2.0]
    assert s[T.STAT_SIZE_POT] == 4 + 1 + 0 + 1
    assert s[T.STAT_SIZE_DEP] == 0 + 0 + 1 + 1
    p = digital(4, encoding="sign-magnitude")
    sizes, _ = run(p, [(0.0, -0.125, 0.0), (-0.25, 0.25, 0.0)])  # 0000->1001, 1010->0010
    assert sizes == [2.0, 1.0]


@pytest.mark.parametrize("encoding", ["twos-complement", "sign-magnitude"])
def test_hamming_all_code_pairs(encoding):
    p = digital(5, encoding=encoding)
    lsb = 1.0 / 16
    enc = "twos" if encoding == "twos-complement" else "sm"
    lo = -16 if enc == "twos" else -15
    for a in range(lo, 16):
        for b in range(lo, 16):
            size = T.tally_write(p, np.zeros(T.N_STATS), a * lsb, b * lsb, 0.0)
            x, y = bit_string(a, 5, enc), bit_string(b, 5, enc)
            assert size == sum(i != j for i, j in zip(x, y))


def test_lost_sub_lsb_updates():
    p = digital(4)
    sizes, s = run(p, [(0.25, 0.3, 0.0),    # nearest code 2 -> 2: lost
                       (0.3, 0.32, 0.0),    # 2.4 -> 2.56: code 2 -> 3: written
                       (0.25, 0.25, 0.0)])  # no change at all: nothing to write
    assert sizes == [0.0, 1.0, 0.0]
    assert s[T.STAT_NOOP] == 2 and s[T.STAT_NOOP_ABS_DW] == pytest.approx(0.05)
    assert s[T.STAT_CHANGED] == 1


def test_digital_stochastic_rounding():
    p = digital(4, rounding="stochastic")
    n = 1000
    us = (np.arange(n) + 0.5) / n
    sizes, s = run(p, [(0.25, 0.28, u) for u in us])  # 0.24 lsb
    assert s[T.STAT_CHANGED] == 240 and s[T.STAT_NOOP] == 760
    sizes, s = run(p, [(0.25, 0.22, u) for u in us])  # -0.24 lsb: code 2 -> 1 (2 bits)
    assert s[T.STAT_CHANGED] == 240 and np.sum(sizes) == 480


def test_digital_clipping_and_device_write():
    p = digital(4)
    sizes, s = run(p, [(0.8, 2.0, 0.0)])  # code 6 -> 7 (clipped from 16)
    assert sizes == [1.0] and s[T.STAT_CLIPPED] == 1
    assert T.device_write(p, 0.3, 0.0, 0.0, 0.0) == 0.25
    assert T.device_write(p, 0.25, 0.05, 0.0, 0.0) == 0.25          # sub-LSB: lost
    assert T.device_write(p, 0.8, 1.0, 0.0, 0.0) == 0.875           # top code 7
    assert T.device_write(p, -0.9, -1.0, 0.0, 0.0) == -1.0          # bottom code -8
    p = digital(4, rounding="stochastic")
    assert T.device_write(p, 0.25, 0.05, 0.9, 0.0) == 0.375
    assert T.device_write(p, 0.25, 0.05, 0.1, 0.0) == 0.25
    p = digital(4, encoding="sign-magnitude")
    assert T.device_write(p, -0.9, -1.0, 0.0, 0.0) == -0.875        # no -8 in sign-magnitude


def test_on_grid_weights_are_deterministic():
    """Device-in-the-loop: weights already on the grid give exact counts despite float error."""
    p = digital(8, rounding="stochastic")
    w = T.device_write(p, 0.1, 0.0, 0.5, 0.0)
    w2 = T.device_write(p, w, 3 * 2.0 ** -7, 0.0, 0.0)
    for u in (0.0, 0.5, 0.999999):
        assert T.tally_write(p, np.zeros(T.N_STATS), w, w2, u) == \
            T.tally_write(p, np.zeros(T.N_STATS), w, w2, 0.0)
    p = analog("ceil")
    w = T.device_write(p, 0.0, 0.3, 0.0, 0.0)
    assert T.tally_write(p, np.zeros(T.N_STATS), 0.0, w, 0.0) == 3.0


# --- biology, rows, padding ---------------------------------------------------------------
def test_biology_tally():
    p = BiologySynapse().kernel_params()
    sizes, s = run(p, [(0.0, 0.1, 0.3), (0.1, -0.1, 0.3), (0.2, 0.2, 0.3)])
    assert sizes == pytest.approx([0.1, 0.2, 0.0])
    assert s[T.STAT_SIZE_POT] == pytest.approx(0.1) and s[T.STAT_SIZE_DEP] == pytest.approx(0.2)
    assert s[T.STAT_CHANGED] == 2
    assert T.device_write(p, 0.1, 0.05, 0.0, 3.0) == pytest.approx(0.15)


def test_tally_row_counts():
    p = analog()
    s = np.zeros(T.N_STATS)
    T.tally_row(p, s, 3, 4.0)
    T.tally_row(p, s, 2, 0.0)  # touched, but no pulse: not written
    assert s[T.STAT_ROWS] == 2 and s[T.STAT_ROWS_ACTIVE] == 1
    assert s[T.STAT_ROW_WRITES] == 5 and s[T.STAT_ROW_MAX] == 4 and s[T.STAT_ROW_NW_MAX] == 12


def test_padded_rows_are_ignored():
    hw = pack_kernel_params([AnalogCrossbar(), np.array([float(T.KIND_BIOLOGY)])])
    assert hw.shape == (2, T.N_PARAMS) and hw[1, 0] == T.KIND_BIOLOGY
    none = np.zeros(T.N_PARAMS)
    s = np.zeros(T.N_STATS)
    assert T.tally_write(none, s, 0.0, 0.5, 0.1) == 0.0
    T.tally_row(none, s, 3, 2.0)
    assert not s.any()
    assert T.device_write(none, 0.1, 0.2, 0.0, 0.0) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at most"):
        pack_kernel_params([np.zeros(T.N_PARAMS + 1)])


tally_write_ = T.tally_write
tally_row_ = T.tally_row


@numba.njit
def _kernel_like(hw_params, hw_stats, w, dw, us):
    """The calling pattern of the training kernels: row views of 2-D / 3-D arrays."""
    for d in range(hw_params.shape[0]):
        for r in range(w.shape[0]):
            n, mx = 0, 0.0
            for c in range(w.shape[1]):
                size = tally_write_(hw_params[d], hw_stats[0, d], w[r, c], w[r, c] + dw[r, c],
                                    us[r, c])
                n += 1
                mx = max(mx, size)
            tally_row_(hw_params[d], hw_stats[0, d], n, mx)


def test_callable_from_a_compiled_kernel():
    models = [AnalogCrossbar(), DigitalMemory(), BiologySynapse()]
    hw = pack_kernel_params(models)
    stats = np.zeros((1, 3, T.N_STATS))
    rng = np.random.default_rng(0)
    w, dw, us = rng.normal(0, 0.1, (4, 5)), rng.normal(0, 0.05, (4, 5)), rng.random((4, 5))
    _kernel_like(hw, stats, w, dw, us)
    for d in range(3):
        ref = np.zeros(T.N_STATS)
        for r in range(4):
            sizes = [ref_tally_write(hw[d], ref, w[r, c], w[r, c] + dw[r, c], us[r, c])
                     for c in range(5)]
            ref_tally_row(hw[d], ref, 5, max(sizes))
        np.testing.assert_allclose(stats[0, d], ref, rtol=1e-12, atol=1e-15)


# --- compiled vs reference over random streams --------------------------------------------
weights = st.floats(-1.5, 1.5, allow_nan=False)
uniform = st.floats(0.0, 0.999999)

analog_params = st.builds(
    lambda dw, dwd, r, wm, pair, noise: AnalogCrossbar(
        dw_min=dw, dw_min_dep=dwd, rounding=r, w_max=wm, pair=pair,
        write_noise=noise).kernel_params(),
    st.floats(0.005, 0.5), st.one_of(st.none(), st.floats(0.005, 0.5)),
    st.sampled_from(["nearest", "ceil", "stochastic"]), st.floats(0.1, 2.0), st.booleans(),
    st.floats(0.0, 0.1))
digital_params = st.builds(
    lambda b, enc, r, wm: DigitalMemory(bits=b, encoding=enc, rounding=r,
                                        w_max=wm).kernel_params(),
    st.integers(2, 16), st.sampled_from(["twos-complement", "sign-magnitude"]),
    st.sampled_from(["nearest", "stochastic"]), st.floats(0.1, 2.0))
biology_params = st.just(BiologySynapse().kernel_params())
any_params = st.one_of(analog_params, digital_params, biology_params)


@settings(max_examples=150, deadline=None)
@given(any_params, st.lists(st.tuples(weights, weights, uniform), max_size=30),
       st.lists(st.tuples(st.integers(1, 50), st.floats(0, 100)), max_size=5))
def test_tallies_match_reference(params, writes, rows):
    got, ref = np.zeros(T.N_STATS), np.zeros(T.N_STATS)
    for a, b, u in writes:
        assert T.tally_write(params, got, a, b, u) == pytest.approx(
            ref_tally_write(params, ref, a, b, u), rel=1e-12, abs=1e-15)
    for n, m in rows:
        T.tally_row(params, got, n, m)
        ref_tally_row(params, ref, n, m)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(any_params, weights, st.floats(-1.0, 1.0), uniform, st.floats(-3, 3))
def test_device_write_matches_reference(params, w, dw, u, z):
    got = T.device_write(params, w, dw, u, z)
    assert got == pytest.approx(ref_device_write(params, w, dw, u, z), rel=1e-12, abs=1e-15)
    if int(params[T.P_KIND]) != T.KIND_BIOLOGY:
        assert abs(got) <= params[T.P_W_MAX] * (1 + 1e-12)
        assert math.isfinite(got)


@pytest.mark.parametrize("name", ["rram-neurosim", "ecram", "fefet", "sram-22nm", "agsi"])
def test_float32_device_weights_count_exactly(name):
    """The kernels store device weights as float32: re-tallying a device move must give the
    pulses (or bits) the device made, even under the ceil rule."""
    from hardware_models import presets
    model = presets.get(name, **({"write_noise": 0.0} if name == "agsi" else {}))
    p = model.kernel_params()
    rng = np.random.default_rng(3)
    for _ in range(300):
        w_old = np.float32(T.device_write(p, float(rng.uniform(-0.9, 0.9)), 0.0, 0.0, 0.0))
        dw = float(rng.normal(0, 0.05))
        exact = np.zeros(T.N_STATS)
        n = T.tally_write(p, exact, float(w_old), float(w_old) + dw, 0.0)
        w_new = np.float32(T.device_write(p, float(w_old), dw, 0.0, 0.0))
        again = T.tally_write(p, np.zeros(T.N_STATS), float(w_old), float(w_new), 0.0)
        if abs(float(w_old) + dw) < model.w_max - 0.1:  # away from the bounds
            assert again == n
