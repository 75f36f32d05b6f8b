"""The writes of one weight row priced on one device in one vectorised loop: what the
training kernels call (through ``neuroenergy/row_tally.py``) instead of ``tally_write`` per
device and write.

Each device kind has one loop; its parameters are read once, the loop has no branches
(rounding rules and pair mode are selects, so one loop per kind is compiled) and its sums live
in vector registers (compiled with reassociation allowed, so LLVM vectorises the reductions).
Per write, every quantity is computed exactly as by ``tally.tally_write``, from the same
building blocks: counts, pulses, flipped bits and row maxima are identical; sums of
non-integer values (|dw|, conductance-weighted pulses, refresh hazards) are the same terms
added in another order, equal to ~1e-15 relative (``tests/hardware_models/
test_hw_row_tally.py``). The statistics slots are those of ``tally``.
"""
import math

from llvmlite import ir as llvm_ir
import numba
from numba.core import types
from numba.extending import intrinsic

from .tally import (KIND_ANALOG, KIND_BIOLOGY, KIND_DIGITAL, KIND_NONE, P_BITS, P_DW_DEP,
                    ROUND_NEAREST, ROUND_STOCHASTIC,
                    P_DW_POT, P_ENCODING, P_KIND, P_PAIR, P_ROUNDING, P_W_MAX, STAT_ABS_DW,
                    STAT_CHANGED, STAT_CLIPPED, STAT_G_DEP, STAT_G_POT, STAT_NOOP,
                    STAT_NOOP_ABS_DW, STAT_REFRESH, STAT_REFRESH_PULSES, STAT_SIZE_DEP,
                    STAT_SIZE_POT, STAT_WRITES, _clip, _digital_write, _div, _floor,
                    _round_steps, _sel)

_ROWS = dict(cache=True, fastmath={"reassoc"})
# writes an analog device tests at once for 'no pulse in any of them' (see _analog_rows)
_SKIP_BLOCK = 16


@intrinsic
def _bits_of(typingctx, x):
    """The IEEE bit pattern of a float64 as int64: for non-negative values it orders like
    the values, so a row maximum can be an integer maximum (vectorised without fast-math)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return sig, codegen


@intrinsic
def _float_of(typingctx, x):
    """Inverse of :func:`_bits_of`."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return sig, codegen


@numba.njit(cache=True, inline="always")
def _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, noop_dw, size_pot, size_dep):
    """Add a row's sums shared by every kind to the statistics of (layer, device)."""
    hw_stats[layer, d, STAT_WRITES] += float(n)
    hw_stats[layer, d, STAT_ABS_DW] += abs_dw
    hw_stats[layer, d, STAT_NOOP] += noop_n
    hw_stats[layer, d, STAT_NOOP_ABS_DW] += noop_dw
    hw_stats[layer, d, STAT_CHANGED] += float(n) - noop_n
    hw_stats[layer, d, STAT_SIZE_POT] += size_pot
    hw_stats[layer, d, STAT_SIZE_DEP] += size_dep


@numba.njit(cache=True, inline="always")
def _analog_write(wo, wn, u, w_max, q3, q4, rule, pair, inv_g_scale, inv_w_max):
    """One write's terms, as tally_write forms them: (|dw|, clipped, lost, lost |dw|,
    potentiation pulses, depression pulses, pulses x conductance (pot, dep), refresh hazard,
    refresh pulses, bit pattern of the pulse count)."""
    adw = abs(wn - wo)
    clipped = _sel((wn > w_max) | (wn < -w_max), 1.0, 0.0)
    a = _clip(wo, w_max)
    b = _clip(wn, w_max)
    change = b - a
    pot = change > 0.0
    step = _sel(pot, q3, q4)
    size = _round_steps(_div(abs(change), step), rule, u)
    noop = size == 0.0
    # pair mode by selects, not a branch: one loop for every analog device
    g_mid = _sel(pair, 0.5, 0.5 * ((a + w_max) + (b + w_max)) * inv_g_scale)
    hazard = size * step * inv_w_max  # pulses / capacity, capacity = w_max / step
    hazard = _sel(pair, _sel(hazard > 1.0, 1.0, hazard), 0.0)
    return (adw, clipped, _sel(noop, 1.0, 0.0), _sel(noop, adw, 0.0), _sel(pot, size, 0.0),
            _sel(pot, 0.0, size), _sel(pot, size * g_mid, 0.0), _sel(pot, 0.0, size * g_mid),
            hazard, hazard * _floor(_div(abs(b), step) + 0.5), _bits_of(size))


@numba.njit(cache=True, inline="always")
def _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad):
    w_max = hw_params[d, P_W_MAX]
    q3 = hw_params[d, P_DW_POT]
    q4 = hw_params[d, P_DW_DEP]
    rule = int(hw_params[d, P_ROUNDING])
    pair = hw_params[d, P_PAIR] != 0.0
    # divisions are the slowest step of the loop: only the pulse count (which must round
    # exactly as tally_write's) keeps one; the conductance uses a reciprocal
    inv_g_scale = 1.0 / (2.0 * w_max)
    inv_w_max = 1.0 / w_max
    # most single-sample updates are far below one step on coarse devices: a block of
    # _SKIP_BLOCK writes that all round to zero pulses is tallied from |dw| and clipping
    # alone. The test is conservative: |clip(wn) - clip(wo)| <= |wn - wo|, every step is at
    # least the smaller one, and the thresholds keep clear of the snapping and rounding edges
    # of _round_steps (stochastic: x + u < 1 - 2e-4); NaN takes the full way
    inv_bound = (1.0 / min(q3, q4)) * (1.0 + 1e-9)
    u_on = 1.0 if rule == ROUND_STOCHASTIC else 0.0
    threshold = 0.4999 if rule == ROUND_NEAREST else 0.9998
    abs_dw = 0.0
    noop_n = 0.0
    noop_dw = 0.0
    size_pot = 0.0
    size_dep = 0.0
    g_pot = 0.0
    g_dep = 0.0
    refresh_n = 0.0
    refresh_p = 0.0
    clipped = 0.0
    largest = 0
    n_blocks = n_pad // _SKIP_BLOCK
    for blk in range(n_blocks):
        lo = blk * _SKIP_BLOCK
        reach = 0.0
        block_dw = 0.0
        block_clipped = 0.0
        for k in range(_SKIP_BLOCK):
            wn = vals[at_new + lo + k]
            adw = abs(wn - vals[at_old + lo + k])
            block_dw += adw
            block_clipped += _sel((wn > w_max) | (wn < -w_max), 1.0, 0.0)
            bound = adw * inv_bound + u_on * vals[at_u + lo + k]
            reach += _sel(bound < threshold, 0.0, 1.0)
        if reach == 0.0:
            abs_dw += block_dw
            noop_dw += block_dw
            noop_n += float(_SKIP_BLOCK)
            clipped += block_clipped
            continue
        for k in range(_SKIP_BLOCK):
            t = lo + k
            (adw, clip, noop, noop_adw, pot_n, dep_n, g_p, g_d, hazard, refresh, bits
             ) = _analog_write(vals[at_old + t], vals[at_new + t], vals[at_u + t], w_max, q3,
                               q4, rule, pair, inv_g_scale, inv_w_max)
            abs_dw += adw
            clipped += clip
            noop_n += noop
            noop_dw += noop_adw
            size_pot += pot_n
            size_dep += dep_n
            g_pot += g_p
            g_dep += g_d
            refresh_n += hazard
            refresh_p += refresh
            largest = _sel(bits > largest, bits, largest)
    for t in range(n_blocks * _SKIP_BLOCK, n_pad):  # the rest, write by write
        (adw, clip, noop, noop_adw, pot_n, dep_n, g_p, g_d, hazard, refresh, bits
         ) = _analog_write(vals[at_old + t], vals[at_new + t], vals[at_u + t], w_max, q3, q4,
                           rule, pair, inv_g_scale, inv_w_max)
        abs_dw += adw
        clipped += clip
        noop_n += noop
        noop_dw += noop_adw
        size_pot += pot_n
        size_dep += dep_n
        g_pot += g_p
        g_dep += g_d
        refresh_n += hazard
        refresh_p += refresh
        largest = _sel(bits > largest, bits, largest)
    noop_n -= float(n_pad - n)  # the padding: writes from 0 to 0
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, noop_dw, size_pot, size_dep)
    hw_stats[layer, d, STAT_G_POT] += g_pot
    hw_stats[layer, d, STAT_G_DEP] += g_dep
    hw_stats[layer, d, STAT_REFRESH] += refresh_n
    hw_stats[layer, d, STAT_REFRESH_PULSES] += refresh_p
    hw_stats[layer, d, STAT_CLIPPED] += clipped
    return _float_of(largest)


@numba.njit(cache=True, inline="always")
def _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad):
    w_max = hw_params[d, P_W_MAX]
    rule = int(hw_params[d, P_ROUNDING])
    bits = int(hw_params[d, P_BITS])
    encoding = int(hw_params[d, P_ENCODING])
    abs_dw = 0.0
    noop_n = 0.0
    noop_dw = 0.0
    set_n = 0
    reset_n = 0
    clipped = 0.0
    largest = 0
    for t in range(n_pad):
        wo = vals[at_old + t]
        wn = vals[at_new + t]
        adw = abs(wn - wo)
        abs_dw += adw
        clipped += _sel((wn > w_max) | (wn < -w_max), 1.0, 0.0)
        set_bits, reset_bits = _digital_write(w_max, rule, bits, encoding, wo, wn,
                                              vals[at_u + t])
        flipped = set_bits + reset_bits
        noop = flipped == 0
        noop_n += _sel(noop, 1.0, 0.0)
        noop_dw += _sel(noop, adw, 0.0)
        set_n += set_bits
        reset_n += reset_bits
        largest = _sel(flipped > largest, flipped, largest)
    noop_n -= float(n_pad - n)
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, noop_dw, float(set_n),
                    float(reset_n))
    hw_stats[layer, d, STAT_CLIPPED] += clipped
    return float(largest)


@numba.njit(cache=True, inline="always")
def _biology_rows(hw_stats, layer, d, vals, at_old, at_new, n, n_pad):
    abs_dw = 0.0
    noop_n = 0.0
    size_pot = 0.0
    size_dep = 0.0
    largest = 0
    for t in range(n_pad):
        dw = vals[at_new + t] - vals[at_old + t]
        adw = abs(dw)
        abs_dw += adw
        noop_n += _sel(dw == 0.0, 1.0, 0.0)
        size_pot += _sel(dw > 0.0, adw, 0.0)
        size_dep += _sel(dw < 0.0, adw, 0.0)
        bits = _bits_of(adw)
        largest = _sel(bits > largest, bits, largest)
    noop_n -= float(n_pad - n)
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, 0.0, size_pot, size_dep)
    return _float_of(largest)


@numba.njit(cache=True, inline="always")
def _tally_device(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad):
    kind = int(hw_params[d, P_KIND])
    if kind == KIND_NONE or n <= 0:
        return 0.0
    if kind == KIND_ANALOG:
        return _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n,
                            n_pad)
    if kind == KIND_DIGITAL:
        return _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n,
                             n_pad)
    if kind == KIND_BIOLOGY:
        return _biology_rows(hw_stats, layer, d, vals, at_old, at_new, n, n_pad)
    return math.nan




@numba.njit(**_ROWS)
def tally_writes(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n):
    """Record ``n`` writes on device ``d`` of layer ``layer``: write t takes a synapse from
    ``vals[at_old + t]`` to ``vals[at_new + t]`` with the uniform ``vals[at_u + t]`` (read
    only by stochastic rounding; callers may give every device the same uniforms: each
    device is a separate chip, which only needs its own sequence to be uniform). One flat
    array and offsets, not views, so a call costs no reference counting. The same
    statistics as ``n`` calls of :func:`tally_write` (see above); returns the largest size
    (0.0 when ``n == 0``; NaN, with nothing tallied, for an unknown kind)."""
    return _tally_device(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n)


@numba.njit(**_ROWS)
def tally_row_writes(hw_params, hw_stats, layer, vals, at_old, at_new, at_u, n, n_pad, at_max):
    """:func:`tally_writes` on every device in one call (what the kernels use: one call per
    row instead of one per row and device); ``vals[at_max + d]`` keeps device d's largest
    size, updated here. The loops run over ``n_pad >= n`` slots, whose entries from ``n`` on
    must be 0.0 (old, new and uniform): a whole number of vector iterations, with no scalar
    remainder, which would cost more than the row itself on a short row."""
    for d in range(hw_params.shape[0]):
        size = _tally_device(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n,
                             n_pad)
        vals[at_max + d] = max(vals[at_max + d], size)
