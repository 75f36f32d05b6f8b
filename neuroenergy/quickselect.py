"""The r-th largest entry of a float64 buffer, found in place: the exact step of the top-k
selections (``topk``, ``topk_few``)."""
import numba
import numpy as np


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def threshold_of(v, n, r):
    """(t, above, equal): t the r-th largest of v[:n] (v reordered), and how many of
    v[:n] are above it and equal to it. The top r are those above t and r - above of
    those equal to it."""
    t = quickselect_desc(v, np.int64(n), np.int64(r))
    above = 0
    equal = 0
    for u in range(n):
        above += v[u] > t
        equal += v[u] == t
    return t, above, equal
