"""The r-th largest entry of a float64 buffer: the exact step of the top-k selections
(``topk``, ``topk_few``)."""
import numba
import numpy as np

from hardware_models.compiled_only import compiled_only
from hardware_models.llvm_ops import _ix


@compiled_only(cache=True)
def quickselect_desc(v, n, r):
    """The r-th largest (r >= 1) of v[:n], reordering v in place (three-way partition, so
    runs of equal values cost linear time)."""
    lo = 0
    hi = n - 1
    target = r - 1  # position in descending order
    while True:
        if lo >= hi:
            return v[lo]
        mid = (lo + hi) >> 1
        a, b, c = v[lo], v[mid], v[hi]  # median of three as the pivot
        pivot = max(min(a, b), min(max(a, b), c))
        lt = lo   # v[lo:lt] > pivot, v[lt:i] == pivot, v[gt+1:hi+1] < pivot
        i = lo
        gt = hi
        while i <= gt:
            x = v[i]
            if x > pivot:
                v[i] = v[lt]
                v[lt] = x
                lt += 1
                i += 1
            elif x < pivot:
                v[i] = v[gt]
                v[gt] = x
                gt -= 1
            else:
                i += 1
        if target < lt:
            hi = lt - 1
        elif target > gt:
            lo = gt + 1
        else:
            return pivot


@compiled_only(cache=True)
def _select_copying(src, dst, n, r):
    """(t, above, equal) of :func:`threshold_of` for v[:n] = src[:n], with dst[:n] as
    scratch (both overwritten). Each round copies the region into the other buffer, the
    entries above the pivot to its front and those below to its back, without a branch
    on the data (the in-place partition mispredicts about every other entry on the
    candidates of a selection: ~3x slower). The entries equal to the pivot are only
    counted; the pivot is one of the region's entries, so at least one is equal, and the
    back copy of an entry not below the pivot never lands on a kept entry in front."""
    lo = 0
    hi = n
    target = r - 1  # position in descending order
    while True:
        mid = (lo + hi) >> 1
        a, b, c = src[lo], src[mid], src[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        n_above = 0
        n_below = 0
        top = hi - 1
        for u in range(lo, hi):  # unsigned indices: no negative-index tests in the loop
            x = src[_ix(u)]
            dst[_ix(lo + n_above)] = x
            n_above += x > pivot
            dst[_ix(top - n_below)] = x
            n_below += x < pivot
        if target < lo + n_above:
            hi = lo + n_above
        elif target >= hi - n_below:
            lo = hi - n_below
        else:  # every entry outside [lo, hi) is above or below the whole region
            return pivot, lo + n_above, (hi - lo) - n_above - n_below
        src, dst = dst, src


@numba.njit(cache=True)
def threshold_of(v, n, r):
    """(t, above, equal): t the r-th largest (1 <= r <= n) of v[:n], and how many of v[:n]
    are above it and equal to it (no NaN among them). The top r are those above t and
    r - above of those equal to it. v is overwritten: v[:2n] when v holds 2n entries
    (the branch-free selection), else v[:n] is reordered."""
    if v.shape[0] >= 2 * n:
        return _select_copying(v[:n], v[n:2 * n], n, r)
    t = quickselect_desc(v, np.int64(n), np.int64(r))
    above = 0
    equal = 0
    for u in range(n):
        above += v[u] > t
        equal += v[u] == t
    return t, above, equal
