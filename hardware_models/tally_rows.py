"""Weight writes priced a batch of rows at a time on every device: what the training kernels
call (through ``neuroenergy/row_tally.py``) instead of ``tally_write`` per device and write.

A batch is first summarised row by row, once for every device (count, sum |dw|, signed
sums, largest |dw| and |w_new|). Biology devices are priced from the summaries alone; so
are the rows of an analog device with deterministic rounding in which no write can reach a
pulse (most rows of coarse devices), and every device's counts, |dw| and clipping. What is
left goes write by write: a digital device in one loop over blocks of 16 writes; a
stochastic analog device in one flat pass that flags the writes that may reach a pulse,
then one branch-free loop over those few. Parameters are read once, the per-write loops take
no branches (rounding rules and pair mode are selects) and their sums live in vector
registers (compiled with reassociation allowed, so LLVM vectorises the reductions).

Speed rules learnt here (each measured): index with unsigned integers (``llvm_ops._ix``:
numba's wrap-around for negative indices makes LLVM gather every load); pass no array to an
inlined function inside a per-row loop (numba then increments and decrements its reference
count atomically, ~10 ns, per row and array); keep reciprocals opaque (:func:`_opaque`) or
fast-math folds them back into a division per write.

Per write, every quantity is computed exactly as by ``tally.tally_write``, from the same
building blocks: counts, pulses, flipped bits and row maxima are identical; sums of
non-integer values (|dw|, conductance-weighted pulses, refresh hazards) are the same terms
added in another order, equal to ~1e-15 relative (``tests/hardware_models/
test_hw_row_tally.py``). The statistics slots are those of ``tally``.
"""
import math

import numba
import numpy as np

from . import _kernel_cache, llvm_ops, tally
from .compiled_only import compiled_only
from .llvm_ops import _bits_of, _div, _float_of, _floor, _ix, _opaque, _popcount, _sel
from .tally import (KIND_ANALOG, KIND_BIOLOGY, KIND_DIGITAL, KIND_NONE, P_BITS, P_DW_DEP,
                    ROUND_NEAREST, ROUND_STOCHASTIC,
                    P_DW_POT, P_ENCODING, P_KIND, P_PAIR, P_ROUNDING, P_W_MAX, STAT_ABS_DW,
                    STAT_CHANGED, STAT_CLIPPED, STAT_G_DEP, STAT_G_POT, STAT_NOOP,
                    STAT_NOOP_ABS_DW, STAT_REFRESH, STAT_REFRESH_PULSES, STAT_ROW_MAX,
                    STAT_ROW_NW_MAX, STAT_ROW_WRITES, STAT_ROWS, STAT_ROWS_ACTIVE,
                    STAT_SIZE_DEP, STAT_SIZE_POT, STAT_WRITES, _clip, _digital_codes,
                    _digital_flips, _round_steps)

_ROWS = dict(cache=True, fastmath={"reassoc"})
# slots in a block: an analog device tests a block at once for 'no pulse in any write' (see
# _analog_rows), and every device keeps each block's largest size (see tally_batch)
BLOCK = 16


@numba.njit(cache=True, inline="always")
def _store_device_sums(hw_stats, layer, d, n, noop_n, noop_dw, size_pot, size_dep):
    """Add the sums of ``n`` writes that every kind keeps to the statistics of (layer,
    device); their count, |dw| and clipping come from the rows' summaries (tally_batch)."""
    hw_stats[layer, d, STAT_NOOP] += noop_n
    hw_stats[layer, d, STAT_NOOP_ABS_DW] += noop_dw
    hw_stats[layer, d, STAT_CHANGED] += float(n) - noop_n
    hw_stats[layer, d, STAT_SIZE_POT] += size_pot
    hw_stats[layer, d, STAT_SIZE_DEP] += size_dep


@numba.njit(cache=True, inline="always")
def _analog_write(wo, wn, u, w_max, q3, q4, rule, pair, inv_g_scale, inv_w_max):
    """One write's terms, as tally_write forms them: (lost, lost |dw|, potentiation pulses,
    depression pulses, pulses x conductance (pot, dep), refresh hazard, refresh pulses, bit
    pattern of the pulse count). Its count, |dw| and clipping come from the row summaries."""
    adw = abs(wn - wo)
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
    return (_sel(noop, 1.0, 0.0), _sel(noop, adw, 0.0), _sel(pot, size, 0.0),
            _sel(pot, 0.0, size), _sel(pot, size * g_mid, 0.0), _sel(pot, 0.0, size * g_mid),
            hazard, hazard * _floor(_div(abs(b), step) + 0.5), _bits_of(size))


@numba.njit(cache=True, inline="always")
def _analog_bounds(hw_params, d):
    """(1 / smallest step with a margin, weight of the uniform, threshold): a write with
    ``|dw| * inv_bound + u_on * u < threshold`` cannot reach a pulse. The test is
    conservative: |clip(wn) - clip(wo)| <= |wn - wo|, every step is at least the smaller
    one, and the thresholds keep clear of the snapping and rounding edges of _round_steps
    (stochastic: x + u < 1 - 2e-4); NaN fails it."""
    rule = int(hw_params[d, P_ROUNDING])
    # opaque: reassociation would turn |dw| * (1 / step) back into |dw| / step, a division
    # per write
    inv_bound = _opaque((1.0 / min(hw_params[d, P_DW_POT], hw_params[d, P_DW_DEP]))
                        * (1.0 + 1e-9))
    u_on = 1.0 if rule == ROUND_STOCHASTIC else 0.0
    threshold = 0.4999 if rule == ROUND_NEAREST else 0.9998
    return inv_bound, u_on, threshold


@compiled_only(**_ROWS)  # called, not inlined: once per batch, and compiled once
def _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, lo, hi, n,
                 at_size, flags, go):
    """Price slots [lo, hi) (whole blocks, ``n`` writes and then zero padding) on analog
    device d; stores each block's largest pulse count at ``vals[at_size + block]`` and
    returns the largest. Scratch: ``flags`` (uint8) of at least hi - lo entries, ``go``
    (int64) of at least 2 (hi - lo)."""
    w_max = hw_params[d, P_W_MAX]
    q3 = hw_params[d, P_DW_POT]
    q4 = hw_params[d, P_DW_DEP]
    rule = int(hw_params[d, P_ROUNDING])
    pair = hw_params[d, P_PAIR] != 0.0
    # divisions are the slowest step of the loop: only the pulse count (which must round
    # exactly as tally_write's) keeps one; the conductance uses a reciprocal
    inv_g_scale = 1.0 / (2.0 * w_max)
    inv_w_max = 1.0 / w_max
    # most single-sample updates are far below one step on coarse devices: a first,
    # vectorised pass over every slot sums |dw|, clipping and the writes that cannot reach
    # a pulse (the bound of _analog_bounds) and flags the others; only those (a few per
    # cent) take the full way. One flat loop, its sums in vector registers throughout: a
    # loop per block would reduce them across the vector lanes at every block
    inv_bound, u_on, threshold = _analog_bounds(hw_params, d)
    noop_n = 0.0
    noop_dw = 0.0
    for t in range(lo, hi):
        adw = abs(vals[_ix(at_new + t)] - vals[_ix(at_old + t)])
        lost = adw * inv_bound + u_on * vals[_ix(at_u + t)] < threshold
        noop_dw += _sel(lost, adw, 0.0)
        noop_n += _sel(lost, 1.0, 0.0)
        flags[_ix(t - lo)] = _sel(lost, np.uint8(0), np.uint8(1))
    size_pot = 0.0
    size_dep = 0.0
    g_pot = 0.0
    g_dep = 0.0
    refresh_n = 0.0
    refresh_p = 0.0
    # the writes that may reach a pulse, listed from the flags (eight to a word)...
    n_go = 0
    words = flags.view(np.uint64)
    for at_word in range((hi - lo) // 8):
        word = words[_ix(at_word)]
        while word != 0:
            # flags are 0 or 1: each set byte holds one bit, at 8 times its index
            k = _popcount(np.int64((word & (~word + np.uint64(1))) - np.uint64(1))) >> 3
            word &= word - np.uint64(1)
            go[_ix(n_go)] = lo + 8 * at_word + k
            n_go += 1
    # ... then their full arithmetic in one loop (branch-free: vectorised, with gathers)
    half = go.shape[0] // 2
    for q in range(n_go):
        t = go[_ix(q)]
        (noop, noop_adw, pot_n, dep_n, g_p, g_d, hazard, refresh, bits
         ) = _analog_write(vals[_ix(at_old + t)], vals[_ix(at_new + t)], vals[_ix(at_u + t)],
                           w_max, q3, q4, rule, pair, inv_g_scale, inv_w_max)
        noop_n += noop
        noop_dw += noop_adw
        size_pot += pot_n
        size_dep += dep_n
        g_pot += g_p
        g_dep += g_d
        refresh_n += hazard
        refresh_p += refresh
        go[_ix(half + q)] = bits
    # each block's largest pulse count (0 where no write may pulse)
    for blk in range(lo // BLOCK, hi // BLOCK):
        vals[_ix(at_size + blk)] = 0.0
    largest = 0
    for q in range(n_go):
        at = at_size + go[_ix(q)] // BLOCK
        bits = go[_ix(half + q)]
        vals[_ix(at)] = _float_of(max(bits, _bits_of(vals[_ix(at)])))
        largest = max(largest, bits)
    noop_n -= float(hi - lo - n)  # the padding: writes from 0 to 0
    _store_device_sums(hw_stats, layer, d, n, noop_n, noop_dw, size_pot, size_dep)
    hw_stats[layer, d, STAT_G_POT] += g_pot
    hw_stats[layer, d, STAT_G_DEP] += g_dep
    hw_stats[layer, d, STAT_REFRESH] += refresh_n
    hw_stats[layer, d, STAT_REFRESH_PULSES] += refresh_p
    return _float_of(largest)


@compiled_only(**_ROWS)  # called, not inlined: once per batch, and compiled once
def _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad,
                  sizes, at_size, by_product):
    """Price slots [0, n_pad) (``n`` writes, then zero padding) on digital device d; stores
    each block's largest count of flipped bits at ``sizes[at_size + block]``. With
    ``by_product`` (the same for every write: LLVM makes a loop of each) weights are put in
    lsb units by a product with 1 / lsb instead of a division, for an lsb that is a power of
    two, whose reciprocal is exact: the same quotients, at a fraction of the cost."""
    w_max = hw_params[d, P_W_MAX]
    rule = int(hw_params[d, P_ROUNDING])
    bits = int(hw_params[d, P_BITS])
    encoding = int(hw_params[d, P_ENCODING])
    lsb, lo, hi = _digital_codes(w_max, bits, encoding)
    inv_lsb = _opaque(1.0 / lsb)
    noop_n = 0.0
    noop_dw = 0.0
    set_n = 0
    reset_n = 0
    largest = 0
    # (a flat loop over every slot that keeps each write's flipped bits for the block
    # maxima measured slower here: 2.8 against 2.0 ns a write)
    for blk in range(n_pad // BLOCK):
        block_largest = 0
        for k in range(BLOCK):
            t = blk * BLOCK + k
            wo = vals[_ix(at_old + t)]
            wn = vals[_ix(at_new + t)]
            adw = abs(wn - wo)
            if by_product:
                x_old = wo * inv_lsb
                x_new = wn * inv_lsb
                x_dw = (wn - wo) * inv_lsb
            else:
                x_old = _div(wo, lsb)
                x_new = _div(wn, lsb)
                x_dw = _div(wn - wo, lsb)
            set_bits, reset_bits = _digital_flips(x_old, x_new, x_dw, rule, bits, encoding,
                                                  vals[_ix(at_u + t)], lo, hi)
            flipped = set_bits + reset_bits
            noop = flipped == 0
            noop_n += _sel(noop, 1.0, 0.0)
            noop_dw += _sel(noop, adw, 0.0)
            set_n += set_bits
            reset_n += reset_bits
            block_largest = _sel(flipped > block_largest, flipped, block_largest)
        sizes[_ix(at_size + blk)] = float(block_largest)
        largest = _sel(block_largest > largest, block_largest, largest)
    noop_n -= float(n_pad - n)
    _store_device_sums(hw_stats, layer, d, n, noop_n, noop_dw, float(set_n),
                       float(reset_n))
    return float(largest)


@numba.njit(cache=True, inline="always")
def _is_power_of_two(x):
    """Whether x is a normal float64 power of two (its reciprocal is then exact)."""
    return x >= 2.2250738585072014e-308 and x < math.inf and (
        _bits_of(x) & ((1 << 52) - 1)) == 0


# a row's summary, shared by the devices (see _summarise_rows)
SUM_ABS_DW, SUM_POS, SUM_NEG, SUM_ZERO, SUM_MAX_DW, SUM_MAX_W = 0, 1, 2, 3, 4, 5
N_SUM = 6


@numba.njit(cache=True, inline="always")
def _row_writes(vals, at_rows, r, n_rows, n, held):
    """Writes of row r (row ``n_rows``: the open piece, the writes not in closed rows)."""
    return int(vals[_ix(at_rows + 2 * r)]) if r < n_rows else n - held


@numba.njit(cache=True, inline="always")
def _summarise_rows(vals, at_old, at_new, at_rows, n_rows, n, at_sums):
    """Summarise each row held and the open piece (row ``n_rows``) at
    ``vals[at_sums + N_SUM r:]``: sum |dw|, sum of positive dw, sum |dw| of negative dw,
    writes with dw == 0, largest |dw| and largest |w_new| (NaN if any is NaN). A device
    prices a row from these alone when they show it cannot pulse (biology always): one
    pass over the writes serves every device. (Rows are looped over here, not in the
    caller: an inlined call per row would increment and decrement the arrays' reference
    counts, atomically, per row.)"""
    held = 0
    lo = 0
    for r in range(n_rows + 1):
        m = _row_writes(vals, at_rows, r, n_rows, n, held)
        abs_dw = 0.0
        pos = 0.0
        neg = 0.0
        zero = 0.0
        max_dw = 0
        max_w = 0
        # over whole blocks, the zero padding after the row included (it adds nothing but
        # zero changes, taken off below): no scalar remainder loop
        m_pad = (m + BLOCK - 1) // BLOCK * BLOCK
        for t in range(lo, lo + m_pad):
            wn = vals[_ix(at_new + t)]
            dw = wn - vals[_ix(at_old + t)]
            adw = abs(dw)
            abs_dw += adw
            pos += _sel(dw > 0.0, adw, 0.0)
            neg += _sel(dw < 0.0, adw, 0.0)
            zero += _sel(dw == 0.0, 1.0, 0.0)
            # largest by bit pattern: a NaN (abs: positive) is above every number
            b = _bits_of(adw)
            max_dw = _sel(b > max_dw, b, max_dw)
            b = _bits_of(abs(wn))
            max_w = _sel(b > max_w, b, max_w)
        at = at_sums + N_SUM * r
        vals[_ix(at + SUM_ABS_DW)] = abs_dw
        vals[_ix(at + SUM_POS)] = pos
        vals[_ix(at + SUM_NEG)] = neg
        vals[_ix(at + SUM_ZERO)] = zero - float(m_pad - m)
        vals[_ix(at + SUM_MAX_DW)] = _float_of(max_dw)
        vals[_ix(at + SUM_MAX_W)] = _float_of(max_w)
        held += m
        lo += m_pad


@numba.njit(**_ROWS)
def tally_writes(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n):
    """Record ``n`` writes on device ``d`` of layer ``layer``: write t takes a synapse from
    ``vals[at_old + t]`` to ``vals[at_new + t]`` with the uniform ``vals[at_u + t]`` (read
    only by stochastic rounding; callers may give every device the same uniforms: each
    device is a separate chip, which only needs its own sequence to be uniform): the
    one-device entry point for tests and benchmarks. It copies the writes into a batch of
    one open piece (no row closed: no ``tally_row`` terms) for :func:`tally_batch`. The same
    statistics as ``n`` calls of :func:`tally_write` (see above); returns the largest size
    (0.0 when ``n == 0``; NaN, with nothing tallied, for an unknown kind)."""
    kind = int(hw_params[d, P_KIND])
    if kind != KIND_NONE and kind != KIND_ANALOG and kind != KIND_DIGITAL \
            and kind != KIND_BIOLOGY:
        return math.nan
    # the loops run over whole blocks: a copy padded with zero writes (0 -> 0, uniform 0),
    # which every device tallies as lost updates that the loops then take off again
    n = max(n, 0)
    n_pad = (n + BLOCK - 1) // BLOCK * BLOCK
    at_size = 3 * n_pad
    at_rows = at_size + n_pad // BLOCK + 1
    at_carry = at_rows + 2
    at_sums = at_carry + 1
    batch = np.zeros(at_sums + N_SUM)
    for t in range(n):
        batch[_ix(t)] = vals[_ix(at_old + t)]
        batch[_ix(n_pad + t)] = vals[_ix(at_new + t)]
        batch[_ix(2 * n_pad + t)] = vals[_ix(at_u + t)]
    # the carry slot is that of device 0 of the range [d, d + 1)
    zero = np.int64(0)
    tally_batch(hw_params, hw_stats, layer, batch, zero, n_pad, 2 * n_pad, at_size, n, n_pad,
                at_rows, zero, at_carry - d, at_sums, d, d + 1)
    return batch[at_carry]


@compiled_only(**_ROWS)
def tally_batch(hw_params, hw_stats, layer, vals, at_old, at_new, at_u, at_size, n, n_pad,
                at_rows, n_rows, at_carry, at_sums, d_lo, d_hi):
    """Price a batch of rows on devices [d_lo, d_hi). Slots [0, n_pad) hold ``n`` writes:
    the closed rows back to back, each padded with zero writes to whole blocks of BLOCK
    slots, then possibly a piece of a row still open, then zero padding.
    ``vals[at_rows + 2 r]`` is row r's write count and ``vals[at_rows + 2 r + 1]`` its
    writes that changed a weight (the count ``tally_row`` gets; rows with none get no
    ``tally_row``).

    Every row and the open piece are first summarised once (:func:`_summarise_rows`).
    Biology devices are priced from the summaries alone, analog devices with deterministic
    rounding from the summary of each row that cannot pulse and write by write otherwise.
    Digital devices and stochastic analog devices go write by write over every slot in one
    loop, which stores each block's largest size at ``vals[at_size + block]``; a row's
    maximum is taken from its blocks. Each device's statistics (``tally_row``'s row counts
    and maxima included) are stored once per batch. ``vals[at_carry + d]`` carries device
    d's maximum over the priced pieces of a row longer than the buffer: row 0 of a batch
    with closed rows takes it (and clears it); the open piece adds to it."""
    _summarise_rows(vals, at_old, at_new, at_rows, n_rows, n, at_sums)
    # analog scratch: per write, may it reach a pulse; those writes and their pulses
    flags = np.empty(n_pad, np.uint8)
    go = np.empty(2 * n_pad, np.int64)
    for d in range(d_lo, d_hi):
        kind = int(hw_params[d, P_KIND])
        analog = kind == KIND_ANALOG
        inv_bound, u_on, threshold = 0.0, 0.0, 0.0
        if analog:
            inv_bound, u_on, threshold = _analog_bounds(hw_params, d)
        w_max = hw_params[d, P_W_MAX]
        by_blocks = kind == KIND_DIGITAL or (analog and u_on != 0.0)
        if kind == KIND_DIGITAL:
            lsb, _, _ = _digital_codes(w_max, int(hw_params[d, P_BITS]),
                                       int(hw_params[d, P_ENCODING]))
            _digital_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u, n, n_pad,
                          vals, at_size, _is_power_of_two(lsb))
        elif by_blocks:
            # np.int64(0), not 0: a literal argument compiles the callee once more
            _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new, at_u,
                         np.int64(0), n_pad, n, at_size, flags, go)
        # every write's count and |dw| (and clipping: analog and digital) come from the
        # rows' summaries; so do the other sums of biology and of rows that cannot pulse
        priced = analog or by_blocks or kind == KIND_BIOLOGY
        clips = analog or kind == KIND_DIGITAL
        writes = 0.0
        abs_dw = 0.0
        clipped = 0.0
        summed = 0.0  # writes whose noop / pot / dep sums come from the summaries
        noop_n = 0.0
        noop_dw = 0.0
        pot = 0.0
        dep = 0.0
        rows = 0.0
        active = 0.0
        row_writes = 0.0
        row_max = 0.0
        row_nw_max = 0.0
        held = 0
        lo = 0
        for r in range(n_rows + 1):
            m = _row_writes(vals, at_rows, r, n_rows, n, held)
            n_blocks = (m + BLOCK - 1) // BLOCK
            at = at_sums + N_SUM * r
            largest = 0.0
            if priced:
                writes += float(m)
                abs_dw += vals[_ix(at + SUM_ABS_DW)]
            if clips and not vals[_ix(at + SUM_MAX_W)] <= w_max:  # some write may clip
                for t in range(lo, lo + m):
                    wn = vals[_ix(at_new + t)]
                    clipped += _sel((wn > w_max) | (wn < -w_max), 1.0, 0.0)
            if kind == KIND_BIOLOGY:
                summed += float(m)
                noop_n += vals[_ix(at + SUM_ZERO)]
                pot += vals[_ix(at + SUM_POS)]
                dep += vals[_ix(at + SUM_NEG)]
                largest = vals[_ix(at + SUM_MAX_DW)]
            elif by_blocks:
                for b in range(lo // BLOCK, lo // BLOCK + n_blocks):
                    largest = max(largest, vals[_ix(at_size + b)])
            elif analog and m > 0:
                if (vals[_ix(at + SUM_MAX_DW)] * inv_bound < threshold
                        and vals[_ix(at + SUM_MAX_W)] <= w_max):
                    # no write can reach a pulse and none is clipped: all lost updates
                    summed += float(m)
                    noop_n += float(m)
                    noop_dw += vals[_ix(at + SUM_ABS_DW)]
                else:
                    largest = _analog_rows(hw_params, hw_stats, layer, d, vals, at_old, at_new,
                                           at_u, np.int64(lo), lo + n_blocks * BLOCK, m,
                                           at_size, flags, go)
            held += m
            lo += n_blocks * BLOCK
            if r == n_rows:  # the open piece: its maximum carries to the row's end
                vals[_ix(at_carry + d)] = max(vals[_ix(at_carry + d)], largest)
                break
            if r == 0:
                largest = max(largest, vals[_ix(at_carry + d)])
                vals[_ix(at_carry + d)] = 0.0
            changed = vals[_ix(at_rows + 2 * r + 1)]
            if changed > 0.0 and kind != KIND_NONE:  # tally_row's terms
                rows += 1.0
                row_writes += changed
                row_max += largest
                row_nw_max += changed * largest
                active += _sel(largest > 0.0, 1.0, 0.0)
        hw_stats[layer, d, STAT_WRITES] += writes
        hw_stats[layer, d, STAT_ABS_DW] += abs_dw
        hw_stats[layer, d, STAT_CLIPPED] += clipped
        if summed > 0.0:
            _store_device_sums(hw_stats, layer, d, summed, noop_n, noop_dw, pot, dep)
        hw_stats[layer, d, STAT_ROWS] += rows
        hw_stats[layer, d, STAT_ROWS_ACTIVE] += active
        hw_stats[layer, d, STAT_ROW_WRITES] += row_writes
        hw_stats[layer, d, STAT_ROW_MAX] += row_max
        hw_stats[layer, d, STAT_ROW_NW_MAX] += row_nw_max


# the functions above inline tally.py's building blocks and llvm_ops' operations, which
# numba's cache does not check
_kernel_cache.refresh(tally_batch, [llvm_ops.__file__, tally.__file__, __file__],
                      "tally_rows.deps.sha256")
