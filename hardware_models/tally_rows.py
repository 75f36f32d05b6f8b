"""Weight writes priced on one device in one vectorised loop: what the training kernels call
(through ``neuroenergy/row_tally.py``, a batch of rows at a time) instead of ``tally_write``
per device and write.

Each device kind has one loop over blocks of 16 writes; its parameters are read once, the
writes take no branches (rounding rules and pair mode are selects, so one loop per kind is
compiled; the analog loop branches once per block, to skip the pulse arithmetic of a block in
which no write can reach a pulse) and its sums live in vector registers (compiled with
reassociation allowed, so LLVM vectorises the reductions).
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
import numpy as np

from .tally import (KIND_ANALOG, KIND_BIOLOGY, KIND_DIGITAL, KIND_NONE, P_BITS, P_DW_DEP,
                    ROUND_NEAREST, ROUND_STOCHASTIC,
                    P_DW_POT, P_ENCODING, P_KIND, P_PAIR, P_ROUNDING, P_W_MAX, STAT_ABS_DW,
                    STAT_CHANGED, STAT_CLIPPED, STAT_G_DEP, STAT_G_POT, STAT_NOOP,
                    STAT_NOOP_ABS_DW, STAT_REFRESH, STAT_REFRESH_PULSES, STAT_SIZE_DEP,
                    STAT_SIZE_POT, STAT_WRITES, _clip, _digital_write, _div, _floor,
                    _round_steps, _sel, tally_row)

_ROWS = dict(cache=True, fastmath={"reassoc"})
# slots in a block: an analog device tests a block at once for 'no pulse in any write' (see
# _analog_rows), and every device keeps each block's largest size (see tally_batch)
BLOCK = 16


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
def _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad,
                 sizes, at_size):
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
    # BLOCK writes that all round to zero pulses is tallied from |dw| and clipping
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
    n_blocks = n_pad // BLOCK
    for blk in range(n_blocks):
        lo = blk * BLOCK
        reach = 0.0
        block_dw = 0.0
        block_clipped = 0.0
        for k in range(BLOCK):
            wn = vals[at_new + lo + k]
            adw = abs(wn - vals[at_old + lo + k])
            block_dw += adw
            block_clipped += _sel((wn > w_max) | (wn < -w_max), 1.0, 0.0)
            bound = adw * inv_bound + u_on * vals[at_u + lo + k]
            reach += _sel(bound < threshold, 0.0, 1.0)
        if reach == 0.0:
            abs_dw += block_dw
            noop_dw += block_dw
            noop_n += float(BLOCK)
            clipped += block_clipped
            sizes[at_size + blk] = 0.0
            continue
        block_largest = 0
        for k in range(BLOCK):
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
            block_largest = _sel(bits > block_largest, bits, block_largest)
        sizes[at_size + blk] = _float_of(block_largest)
        largest = _sel(block_largest > largest, block_largest, largest)
    noop_n -= float(n_pad - n)  # the padding: writes from 0 to 0
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, noop_dw, size_pot, size_dep)
    hw_stats[layer, d, STAT_G_POT] += g_pot
    hw_stats[layer, d, STAT_G_DEP] += g_dep
    hw_stats[layer, d, STAT_REFRESH] += refresh_n
    hw_stats[layer, d, STAT_REFRESH_PULSES] += refresh_p
    hw_stats[layer, d, STAT_CLIPPED] += clipped
    return _float_of(largest)


@numba.njit(cache=True, inline="always")
def _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad,
                  sizes, at_size):
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
    for blk in range(n_pad // BLOCK):
        block_largest = 0
        for k in range(BLOCK):
            t = blk * BLOCK + k
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
            block_largest = _sel(flipped > block_largest, flipped, block_largest)
        sizes[at_size + blk] = float(block_largest)
        largest = _sel(block_largest > largest, block_largest, largest)
    noop_n -= float(n_pad - n)
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, noop_dw, float(set_n),
                    float(reset_n))
    hw_stats[layer, d, STAT_CLIPPED] += clipped
    return float(largest)


@numba.njit(cache=True, inline="always")
def _biology_rows(hw_stats, layer, d, vals, at_old, at_new, n, n_pad, sizes, at_size):
    abs_dw = 0.0
    noop_n = 0.0
    size_pot = 0.0
    size_dep = 0.0
    largest = 0
    for blk in range(n_pad // BLOCK):
        block_largest = 0
        for k in range(BLOCK):
            t = blk * BLOCK + k
            dw = vals[at_new + t] - vals[at_old + t]
            adw = abs(dw)
            abs_dw += adw
            noop_n += _sel(dw == 0.0, 1.0, 0.0)
            size_pot += _sel(dw > 0.0, adw, 0.0)
            size_dep += _sel(dw < 0.0, adw, 0.0)
            b = _bits_of(adw)
            block_largest = _sel(b > block_largest, b, block_largest)
        sizes[at_size + blk] = _float_of(block_largest)
        largest = _sel(block_largest > largest, block_largest, largest)
    noop_n -= float(n_pad - n)
    _store_row_sums(hw_stats, layer, d, n, abs_dw, noop_n, 0.0, size_pot, size_dep)
    return _float_of(largest)


@numba.njit(cache=True, inline="always")
def _tally_device(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad, sizes,
                  at_size):
    """Price slots [0, n_pad) on device d (the sums of n writes; the other slots hold
    zero padding; n_pad a multiple of BLOCK), store the largest size of each block at
    ``sizes[at_size + block]`` (a store per block, outside the vectorised loops); returns
    the largest size."""
    kind = int(hw_params[d, P_KIND])
    if kind == KIND_NONE or n <= 0:
        for b in range(n_pad // BLOCK):
            sizes[at_size + b] = 0.0
        return 0.0
    if kind == KIND_ANALOG:
        return _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n,
                            n_pad, sizes, at_size)
    if kind == KIND_DIGITAL:
        return _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n,
                             n_pad, sizes, at_size)
    if kind == KIND_BIOLOGY:
        return _biology_rows(hw_stats, layer, d, vals, at_old, at_new, n, n_pad, sizes, at_size)
    return math.nan


@numba.njit(**_ROWS)
def tally_writes(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n):
    """Record ``n`` writes on device ``d`` of layer ``layer``: write t takes a synapse from
    ``vals[at_old + t]`` to ``vals[at_new + t]`` with the uniform ``vals[at_u + t]`` (read
    only by stochastic rounding; callers may give every device the same uniforms: each
    device is a separate chip, which only needs its own sequence to be uniform): the
    one-device entry point for tests and benchmarks (it copies the writes into whole blocks;
    the kernels price through :func:`tally_batch`). The same
    statistics as ``n`` calls of :func:`tally_write` (see above); returns the largest size
    (0.0 when ``n == 0``; NaN, with nothing tallied, for an unknown kind)."""
    # the loops run over whole blocks: a copy padded with zero writes (0 -> 0, uniform 0),
    # which every device tallies as lost updates that the loops then take off again
    n_pad = (max(n, 0) + BLOCK - 1) // BLOCK * BLOCK
    padded = np.zeros(3 * n_pad)
    for t in range(n):
        padded[t] = vals[at_old + t]
        padded[n_pad + t] = vals[at_new + t]
        padded[2 * n_pad + t] = vals[at_u + t]
    sizes = np.empty(n_pad // BLOCK + 1)
    return _tally_device(hw_params, hw_stats, layer, d, padded, 0, n_pad, 2 * n_pad, n, n_pad,
                         sizes, 0)


@numba.njit(**_ROWS)
def tally_batch(hw_params, hw_stats, layer, vals, at_old, at_new, at_u, at_size, n, n_pad,
                at_rows, n_rows, at_carry):
    """Price a batch of rows on every device. Slots [0, n_pad) hold ``n`` writes: the
    closed rows back to back, each padded with zero writes to whole blocks of BLOCK
    slots, then possibly a piece of a row still open, then zero padding.
    ``vals[at_rows + 2 r]`` is row r's write count and ``vals[at_rows + 2 r + 1]`` its
    writes that changed a weight (the count ``tally_row`` gets; rows with none get no
    ``tally_row``). The device loops store each block's largest size at
    ``vals[at_size + block]``; a row's maximum is taken from its blocks, and each device's
    statistics are stored once per batch, not once per row. ``vals[at_carry + d]`` carries
    device d's maximum over the priced pieces of a row longer than the buffer: row 0 of a
    batch with closed rows takes it (and clears it); the blocks after the closed rows (an
    open piece) add to it."""
    for d in range(hw_params.shape[0]):
        _tally_device(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad,
                      vals, at_size)
        start = 0
        for r in range(n_rows):
            n_blocks = (int(vals[at_rows + 2 * r]) + BLOCK - 1) // BLOCK
            largest = 0.0
            for b in range(start, start + n_blocks):
                largest = max(largest, vals[at_size + b])
            if r == 0:
                largest = max(largest, vals[at_carry + d])
                vals[at_carry + d] = 0.0
            start += n_blocks
            changed = int(vals[at_rows + 2 * r + 1])
            if changed > 0:
                tally_row(hw_params[d], hw_stats[layer, d], changed, largest)
        largest = vals[at_carry + d]
        for b in range(start, n_pad // BLOCK):
            largest = max(largest, vals[at_size + b])
        vals[at_carry + d] = largest
