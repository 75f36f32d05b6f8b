"""Exact threshold of the k largest products a[i] * b[j] when b has few nonzero entries (a
layer of few columns: the output layer), for ``topk.topk_prepare_few``.

With few columns, counting the pairs at or above a threshold t costs one lookup per column:
the rows of column j at or above t are those with a[i] >= t / b[j]. a is binned on its IEEE
bit pattern, which orders positive floats like their values, so a histogram tells for
every column how many rows lie in bins wholly above t / b[j] (surely in), and how many in
bins not wholly below it (possibly in). A bisection on t finds t_b < t_a: at least k pairs
surely reach t_b, fewer than k can reach t_a. Rows in bins above t_a / b[j] are taken,
rows in bins below t_b / b[j] are left, and the few pairs in between (a bin or two per
column) are compared exactly: a quickselect gives the threshold.

t / b[j] is widened by 2^-50 relative each way, more than the rounding of the reciprocal,
the product and the float64 products themselves, so "surely in" and "surely out" hold for
the products a[i] * b[j] as float64 computes them. Per call O(m + bins + 40 n +
candidates) (the bisection runs on t's bits to a quarter of a bin: at most ~2 x 21 steps),
no allocation.
"""
import numba
import numpy as np

from hardware_models.llvm_ops import _ix
from hardware_models.tally_rows import _bits_of as _bits, _float_of as _float

from .quickselect import threshold_of

NB_FEW = 1024           # most bins of a (the workspace's histograms hold this many)
KEY_SHIFT = 44          # keys of a (topk's): float64 bits >> 44
SEARCH_SUBBITS = 2      # t is bisected to a quarter of a bin
WIDEN = 2.0 ** -50
BITS_INF = 0x7FF0000000000000


@numba.njit(cache=True, inline="always")
def _bin_above(v, shift, base, nb):
    """The first bin wholly above v (clamped to [0, nb]): rows from it on are > v."""
    return min(max((_bits(v) >> shift) - base + 1, 0), nb)


@numba.njit(cache=True, inline="always")
def _bin_of(v, shift, base, nb):
    """v's bin (clamped to [0, nb]): rows in bins below it are < v."""
    return min(max((_bits(v) >> shift) - base, 0), nb)


@numba.njit(cache=True, inline="always")
def _counts(t, inv_b, cols, n_cols, start, n_rows, nb, shift, base):
    """(pairs surely >= t, pairs possibly >= t)."""
    lo = 0
    hi = 0
    for u in range(n_cols):
        v = t * inv_b[cols[u]]
        lo += n_rows - start[_ix(_bin_above(v * (1.0 + WIDEN), shift, base, nb))]
        hi += n_rows - start[_ix(_bin_of(v * (1.0 - WIDEN), shift, base, nb))]
    return lo, hi


@numba.njit(cache=True)
def few_columns_threshold(a, b, k, rows, n_rows, cols, n_cols, lo_key, hi_key, bins,
                          grouped, start, pos, inv_b, cand):
    """The k-th largest product a[i] b[j] over rows[:n_rows] x cols[:n_cols] (the nonzero
    entries, ascending; topk's keys of a span [lo_key, hi_key]; 0 < k < n_rows n_cols;
    products in float64's normal range). ``bins``, ``grouped`` (size m), ``start`` (NB_FEW
    + 1), ``pos`` (NB_FEW), ``inv_b`` (size n) and ``cand`` (size m n) are scratch.

    Returns (threshold, ties to take, products equal to it, rows kept): every product above
    the threshold is selected, and ``ties`` of the ones equal to it. rows[:rows kept] are
    the rows that can hold a selected pair (rows[] is compacted in place, still ascending).
    """
    # bins of a: the keys' top bits, as many bins as rows (at most NB_FEW)
    target = min(max(n_rows, 16), NB_FEW)
    s = 0
    while (hi_key >> s) - (lo_key >> s) >= target:
        s += 1
    shift = KEY_SHIFT + s
    base = lo_key >> s
    nb = (hi_key >> s) - base + 1
    bits_a = a.view(np.int64)
    for q in range(nb + 1):
        start[q] = 0
    for t in range(n_rows):
        q = (bits_a[_ix(rows[t])] >> shift) - base
        bins[t] = q
        start[_ix(q + 1)] += 1
    for q in range(nb):  # start[q] = rows in bins below q
        start[q + 1] += start[q]
        pos[q] = start[q]
    for t in range(n_rows):  # rows grouped by bin, ascending
        q = _ix(bins[t])
        grouped[_ix(pos[q])] = rows[t]
        pos[q] += 1
    for u in range(n_cols):
        inv_b[cols[u]] = 1.0 / b[cols[u]]

    # bisection on t's bits, at a quarter of a bin: C(t_of(lo)) >= k and C(t_of(hi)) < k
    # (C: pairs >= t); t_of(0) = 0 is below every product, t_of(top) = inf above all.
    # Once a step cannot decide (t* is within a bin or two of it), lo and hi are narrowed
    # separately from it: one loop, so that the count is compiled once
    r = shift - SEARCH_SUBBITS
    lo = np.int64(0)
    hi = np.int64(BITS_INF >> r)
    b_hi = hi    # lo is searched below b_hi, hi above a_lo: both lo and hi at first
    a_lo = lo
    while True:
        if b_hi - lo > 1:
            mid = (lo + b_hi) >> 1
        elif hi - a_lo > 1:
            mid = (a_lo + hi) >> 1
        else:
            break
        n_in, n_maybe = _counts(_float(mid << r), inv_b, cols, n_cols, start, n_rows, nb,
                                shift, base)
        if mid < b_hi:  # narrowing lo (and hi while nothing was undecided)
            if n_in >= k:
                lo = mid
                a_lo = max(a_lo, mid)
            elif n_maybe < k:
                hi = mid
                b_hi = mid
            else:  # undecided: lo is below mid, hi above it
                b_hi = mid
                a_lo = max(a_lo, mid)
        elif n_maybe < k:  # narrowing hi
            hi = mid
        else:
            a_lo = mid
    t_b = _float(lo << r)
    t_a = _float(hi << r)

    # taken: bins above t_a / b_j; candidates: bins from t_b / b_j's up to t_a / b_j's
    n_take = 0
    n_cand = 0
    b_max = 0.0
    for u in range(n_cols):
        j = cols[u]
        b_max = max(b_max, b[j])
        q_hi = _bin_above(t_a * inv_b[j] * (1.0 + WIDEN), shift, base, nb)
        q_lo = _bin_of(t_b * inv_b[j] * (1.0 - WIDEN), shift, base, nb)
        n_take += n_rows - start[q_hi]
        bj = b[j]
        for g in range(start[q_lo], start[max(q_hi, q_lo)]):
            cand[_ix(n_cand)] = a[_ix(grouped[_ix(g)])] * bj
            n_cand += 1
    need = k - n_take
    threshold, n_above, n_eq = threshold_of(cand, n_cand, need)
    # rows whose every product is below t_b hold no selected pair
    v_min = t_b / b_max * (1.0 - WIDEN)
    kept = 0
    for t in range(n_rows):
        i = rows[t]
        rows[kept] = i
        kept += a[_ix(i)] >= v_min
    return threshold, need - n_above, n_eq, kept
