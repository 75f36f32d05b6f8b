"""Exact selection of the k largest products a[i] * b[j] of two nonnegative vectors, without
forming the m x n matrix of products.

The result is the set a plain sort of the whole matrix gives (``tests/reference.py``): the k
largest float64 products, products of zero never selected, pairs listed row by row in
ascending row order and, within a row, in ascending column order. Among products tied at
the threshold, the first ones in row-major order are taken.

Method (per call O(m + n + number of bins + k), no allocation)
---------------------------------------------------------------
log2(a b) = log2 a + log2 b, so with both logs binned at one common width w a pair in bins
(p, q) has its log-product in the band [c w, (c + 2) w) (c = p + q, relative to the two
lower edges), widened by the error of the logs. The number of pairs in bands >= c is
sum_p hist_a[p] * (columns in bins >= c - p), a sum over the occupied bins of a, so a
binary search over c finds the band c1 of the k-th largest product. Bands from
c1 + 2 + s up are certainly in the top k, bands up to c1 - 2 - s certainly out (s: the
bands the log error spans), and only the pairs in between are compared exactly.

Two levels. The coarse one bins integer keys, the float64 exponent and top 8 mantissa
bits (key / 256 underestimates log2 by less than ``KEY_ERROR``), with at most
``NB_COARSE`` bins of a power-of-two width: no floating point at all. It drops the rows
and columns that cannot reach the candidate bands. If more than ``REFINE_ABOVE``
candidates remain, the fine level bins accurate logs of the remaining rows and columns
only (a 257-entry table with linear interpolation, error < ``LOG2_ERROR``) at
``NB_FINE`` bins, which leaves a few dozen to a few hundred candidates on MNIST training
vectors. A quickselect over the candidates gives the exact threshold.

The output layer (10 columns) has its own entry, :func:`topk_prepare_few`: exact per-column
thresholds on a, found by bisection on a histogram of a (``topk_few``); the selection is
then read back by comparing every product with the threshold (the scan mode).

Inputs whose products could underflow or overflow (or that hold inf / NaN) take an exact
fallback that enumerates every pair; float32 magnitudes, which is what training passes,
never do.

The selection is read back row by row, or as lists of pairs, in ``topk_rows``.
"""
import math
from collections import namedtuple

import numba
import numpy as np

from hardware_models.compiled_only import compiled_only
from hardware_models.llvm_ops import _ix

from .quickselect import threshold_of
from .topk_few import NB_FEW, few_columns_threshold

NB_COARSE = 64
NB_FINE = 1024
REFINE_ABOVE = 64          # refine when the coarse level leaves more candidates than this
KEY_SHIFT = 44             # float64 bits >> 44: exponent and the top 8 mantissa bits
KEY_SCALE = 256.0          # keys per octave
KEY_ERROR = 0.0901         # log2 v - key / 256 lies in [0, 0.0861 + 1 / 256)
TABLE_BITS = 8
_LOG2_TABLE = np.log2(1.0 + np.arange(2 ** TABLE_BITS + 1) / 2 ** TABLE_BITS)
LOG2_ERROR = 3e-6          # bound on |_log2_table - log2| (interpolation error is 2.8e-6)
MIN_WIDTH = 1e-4           # smallest fine bin, in octaves
MARGIN = 1e-9              # octaves kept between the bands and the threshold (rounding)
SAFE_LOG2 = 1000.0         # log2 products within +-1000 are normal floats

TopkWorkspace = namedtuple(
    "TopkWorkspace", ["ka", "kb", "la", "lb", "qa", "qb", "rows", "cols", "ha", "hb", "sa",
                      "sb", "occ_a", "occ_b", "col_order", "bitmap", "cand", "state",
                      "threshold", "row_out"])
# ws.state slots: how the selection of the last topk_prepare is read back row by row
S_MODE, S_NB, S_TAKE, S_CAND, S_ROWS, S_COLS, S_TIES, S_EQ = range(8)
MODE_NONE, MODE_BANDS, MODE_SCAN = 0, 1, 2


@numba.njit(cache=True, inline="always")
def topk_workspace(m, n, cand):
    """Scratch arrays for :func:`topk_rows.topk_select` on vectors of sizes m and n, around ``cand``,
    a float64 buffer of m * n (only the first few hundred entries are touched, except by
    the exact fallback)."""
    nb = max(NB_COARSE, NB_FINE, NB_FEW)
    return TopkWorkspace(np.empty(m, np.int64), np.empty(n, np.int64), np.empty(m),
                         np.empty(n), np.empty(m, np.int64), np.empty(n, np.int64),
                         np.empty(m, np.int64), np.empty(n, np.int64),
                         np.empty(nb, np.int64), np.empty(nb, np.int64),
                         np.empty(nb + 1, np.int64), np.empty(nb + 1, np.int64),
                         np.empty(nb, np.int64), np.empty(nb, np.int64),
                         np.empty(n, np.int64), np.zeros((n + 63) // 64, np.uint64), cand,
                         np.zeros(8, np.int64), np.zeros(1), np.empty(n, np.int64))


@compiled_only(cache=True)
def _fill_keys(v, keys, idx):
    """keys[i] = coarse log key of v[i] (for every i; used where v[i] > 0) and idx = the
    indices with v[i] > 0, ascending. Returns (their number, min key, max key, all of them
    finite and normal). The keys and the key range come from a loop without stores that
    depend on the data, which vectorizes; the indices are then 0..n-1 when every entry is
    positive (inputs and leaky-ReLU errors), else compacted without a branch: ~3x faster
    than one loop with a branch per entry."""
    bits = v.view(np.int64)
    n = v.shape[0]
    no_lo = np.int64(1) << 62
    lo = no_lo
    hi = np.int64(-1)
    n_pos = 0
    n_nan = 0
    for i in range(n):
        x = v[i]
        pos = x > 0.0
        key = bits[i] >> KEY_SHIFT
        keys[i] = key
        n_pos += pos
        lo = min(lo, key if pos else no_lo)
        hi = max(hi, key if pos else np.int64(-1))
        n_nan += x != x
    if n_pos == n:
        for i in range(n):
            idx[i] = i
    else:
        nz = 0
        for i in range(n):
            idx[nz] = i
            nz += v[i] > 0.0
    exp_lo = lo >> (52 - KEY_SHIFT)
    exp_hi = hi >> (52 - KEY_SHIFT)
    normal = n_nan == 0
    if n_pos > 0 and (exp_lo == 0 or exp_hi == 0x7FF):  # subnormal or inf
        normal = False
    return n_pos, lo, hi, normal


@numba.njit(cache=True, inline="always")
def _log2_table(bits):
    """log2 of a positive normal float64 from its bits, within LOG2_ERROR."""
    e = bits >> 52
    mant = bits & ((np.int64(1) << 52) - 1)
    t = mant >> (52 - TABLE_BITS)
    f = (mant & ((np.int64(1) << (52 - TABLE_BITS)) - 1)) * (1.0 / (1 << (52 - TABLE_BITS)))
    return (e - 1023) + _LOG2_TABLE[t] + (_LOG2_TABLE[t + 1] - _LOG2_TABLE[t]) * f


@numba.njit(cache=True, inline="always")
def _count_from(h, occ, n_occ, s_other, nb, c):
    """Number of pairs whose band p + q is >= c: sum over the occupied bins p of one side
    of h[p] * (entries of the other side in bins >= c - p)."""
    total = 0
    for t in range(n_occ):
        p = occ[t]
        total += h[_ix(p)] * s_other[_ix(min(max(c - p, 0), nb))]  # s_other[nb] == 0
    return total


@compiled_only(cache=True)
def _band_search(ha, hb, sa, sb, occ_a, occ_b, nb, k, slack):
    """From the histograms ha / hb (nb bins): the suffix counts sa / sb, the occupied bins
    occ_a / occ_b, and the bands (c_take, c_cand, pairs in bands >= c_take, pairs in
    [c_cand, c_take))."""
    acc_a = 0
    acc_b = 0
    sa[nb] = 0
    sb[nb] = 0
    n_occ_a = 0
    n_occ_b = 0
    for q in range(nb - 1, -1, -1):  # suffix counts; occupied bins listed high to low
        uq = _ix(q)
        acc_a += ha[uq]
        sa[uq] = acc_a
        occ_a[_ix(n_occ_a)] = q
        n_occ_a += ha[uq] > 0
        acc_b += hb[uq]
        sb[uq] = acc_b
        occ_b[_ix(n_occ_b)] = q
        n_occ_b += hb[uq] > 0
    # sum over the side with fewer occupied bins
    if n_occ_a <= n_occ_b:
        h, occ, n_occ, s_other = ha, occ_a, n_occ_a, sb
    else:
        h, occ, n_occ, s_other = hb, occ_b, n_occ_b, sa
    p_max = occ[0]
    # c1: the largest band c with at least k pairs in bands >= c (band 0 holds them all)
    lo = 0
    hi = p_max + nb - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _count_from(h, occ, n_occ, s_other, nb, mid) >= k:
            lo = mid
        else:
            hi = mid - 1
    c_take = lo + 2 + slack
    c_cand = lo - 1 - slack
    n_take = _count_from(h, occ, n_occ, s_other, nb, c_take)
    n_cand = _count_from(h, occ, n_occ, s_other, nb, c_cand) - n_take
    return c_take, c_cand, n_take, n_cand


@numba.njit(cache=True, inline="always")
def _bin_keys(keys, q, h, idx, n_idx, lo, shift):
    """q[i] = (keys[i] - lo) >> shift for the listed i, counted in h[:4 NB_COARSE] as four
    interleaved histograms (summed by the caller): runs of equal keys (an image's
    background pixels) would otherwise chain every increment through one memory slot."""
    t = 0
    while t + 4 <= n_idx:
        for u in range(4):
            i = _ix(idx[t + u])
            q_i = (keys[i] - lo) >> shift
            q[i] = q_i
            h[_ix(u * NB_COARSE + q_i)] += 1
        t += 4
    while t < n_idx:
        i = _ix(idx[t])
        q_i = (keys[i] - lo) >> shift
        q[i] = q_i
        h[_ix(q_i)] += 1
        t += 1


@numba.njit(cache=True, inline="always")
def _coarse_level(ka, kb, qa, qb, ha, hb, rows, n_rows, cols, n_cols, lo_a, hi_a, lo_b,
                  hi_b):
    """Bin the integer keys at a power-of-two width; returns (bins, slack in bands, the
    highest bin of a, of b)."""
    span = max(hi_a - lo_a, hi_b - lo_b)
    shift = 0
    while (span >> shift) >= NB_COARSE:
        shift += 1
    nb = (span >> shift) + 1
    ha[:4 * NB_COARSE] = 0
    hb[:4 * NB_COARSE] = 0
    _bin_keys(ka, qa, ha, rows, n_rows, lo_a, shift)
    _bin_keys(kb, qb, hb, cols, n_cols, lo_b, shift)
    for q in range(nb):
        ha[q] += ha[NB_COARSE + q] + ha[2 * NB_COARSE + q] + ha[3 * NB_COARSE + q]
        hb[q] += hb[NB_COARSE + q] + hb[2 * NB_COARSE + q] + hb[3 * NB_COARSE + q]
    width = (1 << shift) / KEY_SCALE
    return (nb, int(math.ceil((2.0 * KEY_ERROR + MARGIN) / width)), (hi_a - lo_a) >> shift,
            (hi_b - lo_b) >> shift)


@numba.njit(cache=True, inline="always")
def _fine_level(a, b, la, lb, qa, qb, ha, hb, rows, n_rows, cols, n_cols):
    """Bin accurate logs of the listed rows and columns; returns (bins, slack in bands, the
    highest bin of a, of b)."""
    bits_a = a.view(np.int64)
    bits_b = b.view(np.int64)
    lo_a = np.inf
    hi_a = -np.inf
    for t in range(n_rows):
        i = _ix(rows[t])
        la[i] = _log2_table(bits_a[i])
        lo_a = min(lo_a, la[i])
        hi_a = max(hi_a, la[i])
    lo_b = np.inf
    hi_b = -np.inf
    for t in range(n_cols):
        j = _ix(cols[t])
        lb[j] = _log2_table(bits_b[j])
        lo_b = min(lo_b, lb[j])
        hi_b = max(hi_b, lb[j])
    # about sqrt(8 pairs) bins balances the work per bin against the work per candidate
    nb_max = NB_COARSE
    while nb_max < NB_FINE and nb_max * nb_max < 8 * n_rows * n_cols:
        nb_max *= 2
    span = max(hi_a - lo_a, hi_b - lo_b)
    width = max(span / nb_max * (1.0 + 1e-9), MIN_WIDTH)
    inv = 1.0 / width
    nb = min(int(span * inv), nb_max - 1) + 1
    ha[:nb] = 0
    hb[:nb] = 0
    for t in range(n_rows):
        i = _ix(rows[t])
        q_i = min(int((la[i] - lo_a) * inv), nb - 1)
        qa[i] = q_i
        ha[_ix(q_i)] += 1
    for t in range(n_cols):
        j = _ix(cols[t])
        q_j = min(int((lb[j] - lo_b) * inv), nb - 1)
        qb[j] = q_j
        hb[_ix(q_j)] += 1
    return (nb, int(math.ceil((4.0 * LOG2_ERROR + MARGIN) / width)),
            min(int((hi_a - lo_a) * inv), nb - 1), min(int((hi_b - lo_b) * inv), nb - 1))


@compiled_only(cache=True)
def _prune(rows, n_rows, cols, n_cols, qa, qb, qa_max, qb_max, c_cand):
    """Keep the rows and columns that have a pair in a band >= c_cand (qa_max / qb_max: the
    highest bins, from the binning); returns the new counts (the lists stay in ascending
    order)."""
    kept = 0
    for t in range(n_rows):  # branch-free compaction
        i = rows[t]
        rows[kept] = i
        kept += qa[_ix(i)] + qb_max >= c_cand
    n_rows = kept
    kept = 0
    for t in range(n_cols):
        j = cols[t]
        cols[kept] = j
        kept += qb[_ix(j)] + qa_max >= c_cand
    return n_rows, kept


@numba.njit(cache=True, inline="always")
def _fallback_threshold(a, b, k, rows, n_rows, cols, n_cols, cand):
    """Exact threshold by enumerating every pair of the listed rows and columns (inputs
    outside the fast path's range): (threshold, ties to take, products equal to the
    threshold, pairs selected)."""
    n_pos = np.int64(0)  # typed: a literal 0 would compile threshold_of once more (for the
    # first typing pass, before n_pos unifies to int64)
    for t in range(n_rows):
        for u in range(n_cols):
            p = a[rows[t]] * b[cols[u]]
            if p > 0.0:
                cand[n_pos] = p
                n_pos += 1
    if k >= n_pos:
        return 0.0, 0, 0, n_pos
    threshold, n_above, n_eq = threshold_of(cand, n_pos, k)
    return threshold, k - n_above, n_eq, k


@numba.njit(cache=True, inline="always")
def _start(a, b, k, ws):
    """The start of both methods: the keys and the nonzero rows and columns in ``ws``, and
    the cases that need no search (nothing to select, everything, inputs outside the fast
    path's range). Returns (pairs selected, or -1 when a search must follow; the key
    ranges of a and b)."""
    state = ws.state
    state[S_MODE] = MODE_NONE
    state[S_ROWS] = 0
    zero = np.int64(0)
    if k <= 0 or a.shape[0] == 0 or b.shape[0] == 0:
        return zero, zero, zero, zero, zero
    rows, cols = ws.rows, ws.cols
    n_rows, lo_a, hi_a, ok_a = _fill_keys(a, ws.ka, rows)
    n_cols, lo_b, hi_b, ok_b = _fill_keys(b, ws.kb, cols)
    if n_rows == 0 or n_cols == 0:
        return zero, zero, zero, zero, zero
    state[S_ROWS] = n_rows
    state[S_COLS] = n_cols
    safe = (ok_a and ok_b and (lo_a + lo_b) / KEY_SCALE - 2 * 1023 > -SAFE_LOG2
            and (hi_a + hi_b) / KEY_SCALE - 2 * 1023 < SAFE_LOG2)
    if safe and k < n_rows * n_cols:
        return np.int64(-1), lo_a, hi_a, lo_b, hi_b
    # every pair of nonzero factors is compared with the threshold
    state[S_MODE] = MODE_SCAN
    if safe:  # products of normal factors in range never underflow: take them all
        ws.threshold[0] = 0.0
        state[S_TIES] = 0
        state[S_EQ] = 0
        return np.int64(n_rows * n_cols), lo_a, hi_a, lo_b, hi_b
    threshold, ties, n_eq, n_sel = _fallback_threshold(a, b, k, rows, n_rows, cols, n_cols,
                                                       ws.cand)
    ws.threshold[0] = threshold
    state[S_TIES] = ties
    state[S_EQ] = n_eq
    return np.int64(n_sel), lo_a, hi_a, lo_b, hi_b


@numba.njit(cache=True)
def topk_prepare_few(a, b, k, ws):
    """:func:`topk_prepare` for a layer of few columns (the output layer; any shape is
    selected exactly, but each step of the search costs one lookup per column): per-column
    thresholds on a (``topk_few``), read back in the scan mode."""
    done, lo_a, hi_a, _, _ = _start(a, b, k, ws)
    if done >= 0:
        return done
    state = ws.state
    threshold, ties, n_eq, kept = few_columns_threshold(
        a, b, k, ws.rows, state[S_ROWS], ws.cols, state[S_COLS], lo_a, hi_a, ws.qa, ws.ka,
        ws.sa, ws.ha, ws.lb, ws.cand)
    state[S_MODE] = MODE_SCAN
    state[S_ROWS] = kept
    ws.threshold[0] = threshold
    state[S_TIES] = ties
    state[S_EQ] = n_eq
    return k


@numba.njit(cache=True)
def topk_prepare(a, b, k, ws):
    """Find the k largest products a[i] b[j] > 0 (a, b >= 0, C-contiguous float64) and
    keep the result in ``ws`` (a :func:`topk_workspace` for (len(a), len(b))): the rows
    holding selected pairs are ``ws.rows[:ws.state[S_ROWS]]`` (ascending), and
    :func:`topk_rows.topk_row` reads each one's columns, rows in ascending order, while a and b are
    unchanged. The selection is every product above ``ws.threshold[0]`` and the first
    ``ws.state[S_TIES]`` of the ``ws.state[S_EQ]`` products equal to it, in row-major order.
    Returns the number of pairs selected, min(k, positive products)."""
    done, lo_a, hi_a, lo_b, hi_b = _start(a, b, k, ws)
    if done >= 0:
        return done
    state = ws.state
    n_rows, n_cols = state[S_ROWS], state[S_COLS]
    qa, qb, rows, cols = ws.qa, ws.qb, ws.rows, ws.cols
    ha, hb, sa, sb, occ_a, occ_b = ws.ha, ws.hb, ws.sa, ws.sb, ws.occ_a, ws.occ_b
    nb, slack, qa_max, qb_max = _coarse_level(ws.ka, ws.kb, qa, qb, ha, hb, rows, n_rows, cols,
                                              n_cols, lo_a, hi_a, lo_b, hi_b)
    c_take, c_cand, n_take, n_cand = _band_search(ha, hb, sa, sb, occ_a, occ_b, nb, k, slack)
    n_rows, n_cols = _prune(rows, n_rows, cols, n_cols, qa, qb, qa_max, qb_max, c_cand)
    if n_cand > REFINE_ABOVE:
        nb, slack, qa_max, qb_max = _fine_level(a, b, ws.la, ws.lb, qa, qb, ha, hb, rows, n_rows,
                                                cols, n_cols)
        c_take, c_cand, n_take, n_cand = _band_search(ha, hb, sa, sb, occ_a, occ_b, nb, k,
                                                      slack)
        n_rows, n_cols = _prune(rows, n_rows, cols, n_cols, qa, qb, qa_max, qb_max, c_cand)

    # columns ordered by bin, high to low (ascending index within a bin): the columns of
    # row i in bands >= c are then the first sb[c - qa[i]] of this order
    col_order = ws.col_order
    for q in range(nb):
        hb[q] = sb[q + 1]   # start of bin q in the high-to-low order
    for t in range(n_cols):
        j = cols[t]
        q = _ix(qb[_ix(j)])
        col_order[_ix(hb[q])] = j
        hb[q] += 1

    cand = ws.cand
    u_cand = 0
    for t in range(n_rows):
        i = _ix(rows[t])
        q_take = c_take - qa[i]
        q_cand = c_cand - qa[i]
        u_lo = 0 if q_take >= nb else sb[max(q_take, 0)]
        u_hi = 0 if q_cand >= nb else sb[max(q_cand, 0)]
        ai = a[i]
        for u in range(u_lo, u_hi):
            cand[u_cand] = ai * b[_ix(col_order[u])]
            u_cand += 1
    need = k - n_take
    threshold, n_above, n_eq = threshold_of(cand, n_cand, need)
    ws.threshold[0] = threshold
    state[S_EQ] = n_eq
    state[S_MODE] = MODE_BANDS
    state[S_NB] = nb
    state[S_TAKE] = c_take
    state[S_CAND] = c_cand
    state[S_ROWS] = n_rows
    state[S_COLS] = n_cols
    state[S_TIES] = need - n_above
    return k


@numba.njit(cache=True, inline="always")
def topk_row_range(p, sb, nb, c_take, c_cand):
    """In the band mode, a row in bin p takes the columns col_order[:n_take] whole and
    compares col_order[n_take:n_all] with the threshold: returns (n_take, n_all)."""
    q_take = c_take - p
    q_cand = c_cand - p
    return (0 if q_take >= nb else sb[max(q_take, 0)],
            0 if q_cand >= nb else sb[max(q_cand, 0)])
