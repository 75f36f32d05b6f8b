"""The inlined tallies: bit-identical to the tallies before the rewrite (``tally_frozen``),
the same inside a kernel as called directly, and free of reference counting in a kernel's
write loop (the property that makes them cheap)."""
import re

import numba
import numpy as np
import pytest

from hardware_models import (AnalogCrossbar, BiologySynapse, DigitalMemory, pack_kernel_params,
                             presets)
from hardware_models import tally as T

import tally_frozen as F


def _stream_runner(tw, tr, dv):
    """A kernel-like loop: row views of 2-D / 3-D arrays, ``u`` drawn before the call."""
    @numba.njit
    def run(params, stats, wo, wn, us, zs, sizes, devs, rows_n, rows_m):
        for t in range(wo.shape[0]):
            u = us[t]
            sizes[t] = tw(params[0], stats[0, 0], wo[t], wn[t], u)
            devs[t] = dv(params[0], wo[t], wn[t] - wo[t], u, zs[t])
        for r in range(rows_n.shape[0]):
            tr(params[0], stats[0, 0], rows_n[r], rows_m[r])
    return run


_run_new = _stream_runner(T.tally_write, T.tally_row, T.device_write)
_run_old = _stream_runner(F.tally_write, F.tally_row, F.device_write)


def _models(rng, n_random):
    out = [presets.get(k) if presets.get(k).kind == "biology" else presets.get(k, w_max=wm)
           for k in presets.names() for wm in (0.5, 0.7)]
    for _ in range(n_random):
        r = rng.integers(3)
        if r == 0:
            out.append(AnalogCrossbar(
                dw_min=rng.uniform(0.005, 0.5),
                dw_min_dep=None if rng.random() < 0.5 else rng.uniform(0.005, 0.5),
                rounding=str(rng.choice(["nearest", "ceil", "stochastic"])),
                w_max=rng.uniform(0.1, 2.0), pair=bool(rng.integers(2)),
                write_noise=rng.uniform(0.0, 0.1)))
        elif r == 1:
            out.append(DigitalMemory(
                bits=int(rng.integers(2, 33)),
                encoding=str(rng.choice(["twos-complement", "sign-magnitude"])),
                rounding=str(rng.choice(["nearest", "stochastic"])), w_max=rng.uniform(0.1, 2.0)))
        else:
            out.append(BiologySynapse())
    return out


def _stream(rng, p, n):
    """Weights and changes of every sort: random, on the device grid, whole steps, zero,
    beyond the range."""
    kind, w_max = int(p[T.P_KIND]), p[T.P_W_MAX]
    wo = rng.normal(0.0, 0.4 * w_max, n)
    dw = rng.normal(0.0, 0.02 * w_max, n) * rng.choice([0.01, 0.1, 1.0, 10.0, 50.0], n)
    pick = rng.random(n) < 0.3
    if kind == T.KIND_DIGITAL:
        lsb = w_max / 2.0 ** (p[T.P_BITS] - 1)
        wo[pick] = np.round(wo[pick] / lsb) * lsb
        dw[pick[::-1]] = np.round(dw[pick[::-1]] / lsb) * lsb
    elif kind == T.KIND_ANALOG:
        dw[pick] = rng.integers(-5, 6, pick.sum()) * p[T.P_DW_POT]
    dw[rng.random(n) < 0.05] = 0.0
    wo[rng.random(n) < 0.02] = w_max * rng.choice([-1.5, -1.0, 1.0, 1.5])
    return wo, wo + dw, rng.random(n), rng.normal(size=n)


def test_bit_identical_to_the_tallies_before_inlining():
    rng = np.random.default_rng(7)
    n = 4000
    for model in _models(rng, 60):
        p = pack_kernel_params([model])
        wo, wn, us, zs = _stream(rng, p[0], n)
        rows_n = rng.integers(1, 50, 100)
        rows_m = rng.uniform(0.0, 10.0, 100)
        rows_m[::7] = 0.0
        got, want = [], []
        for run, out in ((_run_new, got), (_run_old, want)):
            stats, sizes, devs = np.zeros((1, 1, T.N_STATS)), np.zeros(n), np.zeros(n)
            run(p, stats, wo, wn, us, zs, sizes, devs, rows_n, rows_m)
            out += [stats, sizes, devs]
        for a, b, what in zip(got, want, ("stats", "sizes", "device weights")):
            assert np.array_equal(a, b), f"{model.name}: {what} differ"


def test_inlined_equals_direct_calls():
    rng = np.random.default_rng(3)
    for model in _models(rng, 10):
        p = pack_kernel_params([model])
        wo, wn, us, zs = _stream(rng, p[0], 300)
        stats = np.zeros((1, 1, T.N_STATS))
        sizes, devs = np.zeros(300), np.zeros(300)
        _run_new(p, stats, wo, wn, us, zs, sizes, devs, np.zeros(0, np.int64), np.zeros(0))
        direct = np.zeros(T.N_STATS)
        for t in range(300):
            assert T.tally_write(p[0], direct, wo[t], wn[t], us[t]) == sizes[t]
            assert T.device_write(p[0], wo[t], wn[t] - wo[t], us[t], zs[t]) == devs[t]
        assert np.array_equal(direct, stats[0, 0])


@numba.njit
def _write_loop(hw_params, hw_stats, w_old, w_new, row_max):
    """The shape of kernels.write_pairs' inner loop, with ``u`` drawn before the views."""
    for t in range(w_old.shape[0]):
        for d in range(hw_params.shape[0]):
            u = np.random.random()
            size = T.tally_write(hw_params[d], hw_stats[0, d], w_old[t], w_new[t], u)
            row_max[d] = max(row_max[d], size)
        for d in range(hw_params.shape[0]):
            T.tally_row(hw_params[d], hw_stats[0, d], 3, row_max[d])


@numba.njit
def _device_loop(hw_params, w_old, dw, out):
    for t in range(w_old.shape[0]):
        u = np.random.random()
        z = np.random.standard_normal()
        out[t] = T.device_write(hw_params[0], w_old[t], dw[t], u, z)


def _increfs(dispatcher):
    (ir,) = dispatcher.inspect_llvm().values()
    body = ir.split("define ")[1]  # the function itself, not its Python wrapper
    return len(re.findall(r"call void @NRT_incref\(", body))


def test_no_reference_counting_in_a_kernel_write_loop():
    """Views passed to the tallies must cost nothing: numba cancels their reference counts
    only if the tallies read params at the top, write stats in one block and never raise.
    What may remain is one incref per array argument, at the function's entry; before the
    rewrite each view also kept an incref in the loop (two atomic calls per view per write)."""
    hw = pack_kernel_params([presets.get("pcm"), presets.get("sram-22nm"),
                             presets.get("biology-low"), presets.get("rram-neurosim")])
    stats = np.zeros((1, 4, T.N_STATS))
    w = np.linspace(-0.4, 0.4, 50)
    _write_loop(hw, stats, w, w[::-1].copy(), np.zeros(4))
    _device_loop(hw, w, w[::-1].copy(), np.zeros(50))
    assert _increfs(_write_loop) <= 5
    assert _increfs(_device_loop) <= 4


def test_unknown_kinds():
    with pytest.raises(ValueError, match="Unknown hardware model kind"):
        pack_kernel_params([np.array([7.0])])
    with pytest.raises(ValueError, match="Unknown hardware model kind"):
        pack_kernel_params([np.array([np.nan, 1.0])])
    p = np.zeros(T.N_PARAMS)
    p[T.P_KIND] = 9.0
    s = np.zeros(T.N_STATS)
    assert np.isnan(T.tally_write(p, s, 0.0, 0.5, 0.1))
    assert np.isnan(T.device_write(p, 0.1, 0.2, 0.0, 0.0))
    assert not s.any()


def test_uses_uniform():
    assert T.uses_uniform(presets.get("ecram").kernel_params())
    assert T.uses_uniform(DigitalMemory(rounding="stochastic").kernel_params())
    assert not T.uses_uniform(presets.get("rram-neurosim").kernel_params())
    assert not T.uses_uniform(presets.get("sram-22nm").kernel_params())
    assert not T.uses_uniform(BiologySynapse().kernel_params())
    assert not T.uses_uniform(np.zeros(T.N_PARAMS))


def test_huge_changes_saturate_with_the_right_sign():
    """|dw| of 2**63 steps and more: the device saturates at the bound in the direction of
    the change (before the rewrite an integer overflow could flip it)."""
    for rounding in ("nearest", "ceil", "stochastic"):
        p = AnalogCrossbar(rounding=rounding, write_noise=0.05).kernel_params()
        for dw, end in ((1e300, 1.0), (np.inf, 1.0), (-1e300, -1.0), (-np.inf, -1.0)):
            assert T.device_write(p, 0.1, dw, 0.3, 0.7) == end
