"""Reading back the selection of :func:`topk.topk_prepare` (or
:func:`topk.topk_prepare_few`) row by row: the selected columns of each row, ascending rows,
every product above the threshold and the first tied ones in row-major order
(``topk_row``, ``topk_read``), and the whole top-k selection as lists of pairs
(``topk_select``).
"""
import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from hardware_models.compiled_only import compiled_only

from .topk import (MODE_BANDS, MODE_SCAN, S_CAND, S_COLS, S_MODE, S_NB, S_ROWS, S_TAKE,
                   S_TIES, topk_prepare)

SMALL_ROW = 12             # rows with fewer selected columns are insertion-sorted


@intrinsic
def _cttz(typingctx, x):
    """Count of trailing zero bits (LLVM cttz) of a nonzero integer."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return x(x), codegen


@numba.njit(cache=True, inline="always")
def _sort_row(sel_j, start, stop, bitmap):
    """Sort the distinct column indices sel_j[start:stop] ascending, in place: insertion
    sort for short rows, a bitmap of the row (then cleared) for long ones."""
    if stop - start <= SMALL_ROW:
        for t in range(start + 1, stop):
            x = sel_j[t]
            u = t - 1
            while u >= start and sel_j[u] > x:
                sel_j[u + 1] = sel_j[u]
                u -= 1
            sel_j[u + 1] = x
        return
    w_lo = bitmap.shape[0]
    w_hi = 0
    one = np.uint64(1)
    for t in range(start, stop):
        j = sel_j[t]
        w = j >> 6
        bitmap[w] |= one << np.uint64(j & 63)
        w_lo = min(w_lo, w)
        w_hi = max(w_hi, w)
    t = start
    for w in range(w_lo, w_hi + 1):
        word = bitmap[w]
        while word != 0:
            sel_j[t] = (w << 6) + np.int64(_cttz(word))
            t += 1
            word &= word - one
        bitmap[w] = 0


@compiled_only(cache=True)
def _select_rows(a, b, t_lo, t_hi, rows, cols, qa, sb, col_order, mode, nb, c_take, c_cand,
                 n_cols, threshold, ties, sel_i, sel_j, n_sel, ordered, bitmap):
    """The selected columns of rows rows[t_lo:t_hi] after :func:`topk_prepare` (the ws
    arrays and ws.state values passed in, ``ties`` the tied products still to take),
    appended to ``sel_j`` from ``n_sel`` on, and their row to ``sel_i`` unless it is empty.
    Selected: every product above the threshold and the first ``ties`` equal to it in
    row-major order, so rows must be read in ascending order. Columns come in ascending
    order in the scan mode or with ``ordered``, else by band. Returns (n_sel, ties left).
    One call for all rows: an inlined call per row would cost an atomic increment and
    decrement of every array's reference count per row."""
    for t in range(t_lo, t_hi):
        i = rows[t]
        ai = a[i]
        start = n_sel
        if mode == MODE_BANDS:
            q_take = c_take - qa[i]
            q_cand = c_cand - qa[i]
            n_take = 0 if q_take >= nb else sb[max(q_take, 0)]
            n_all = 0 if q_cand >= nb else sb[max(q_cand, 0)]
            for u in range(n_take):
                sel_j[n_sel] = col_order[u]
                n_sel += 1
            # within a bin, columns ascend, so tied products in a row are met in column order
            for u in range(n_take, n_all):
                j = col_order[u]
                prod = ai * b[j]
                if prod > threshold or (prod == threshold and ties > 0):
                    if prod == threshold:
                        ties -= 1
                    sel_j[n_sel] = j
                    n_sel += 1
        elif mode == MODE_SCAN:
            for u in range(n_cols):
                j = cols[u]
                prod = ai * b[j]
                if prod > threshold or (prod == threshold and ties > 0 and prod > 0.0):
                    if prod == threshold:
                        ties -= 1
                    sel_j[n_sel] = j
                    n_sel += 1
        if sel_i.shape[0] > 0:
            for v in range(start, n_sel):
                sel_i[v] = i
        if ordered and mode == MODE_BANDS and n_sel - start > 1:
            _sort_row(sel_j, start, n_sel, bitmap)
    return n_sel, ties


@numba.njit(cache=True)
def topk_row(a, b, t, rows, cols, qa, sb, col_order, mode, nb, c_take, c_cand, n_cols,
             threshold, ties, out):
    """The selected columns of row rows[t] after :func:`topk_prepare` (the ws arrays and
    ws.state values passed in, ``ties`` the tied products still to take). Writes them to
    ``out``; returns (their number, ties left). Selected: every product above the
    threshold and the first ``ties`` equal to it in row-major order, so rows must be read
    in ascending order. Columns come in ascending order in the scan mode, else by band."""
    return _select_rows(a, b, t, t + 1, rows, cols, qa, sb, col_order, mode, nb, c_take,
                        c_cand, n_cols, threshold, ties, np.empty(0, np.int64), out, t - t,
                        mode != mode, np.empty(0, np.uint64))


@numba.njit(cache=True, inline="always")
def topk_select(a, b, k, sel_i, sel_j, ws, ordered=True):
    """Fill ``sel_i`` / ``sel_j`` with the k largest products a[i] b[j] > 0 (a, b >= 0,
    C-contiguous float64) in row-major order; returns their number, min(k, number of
    positive products). ``ws`` is a :func:`topk_workspace` for (len(a), len(b)). With
    ``ordered=False`` the pairs are only grouped by row (ascending); within a row their
    order is unspecified (the same set is selected, ties included)."""
    topk_prepare(a, b, k, ws)
    return topk_read(a, b, sel_i, sel_j, ws, ordered)


@numba.njit(cache=True, inline="always")
def topk_read(a, b, sel_i, sel_j, ws, ordered=True):
    """The pairs of the last :func:`topk_prepare` or :func:`topk_prepare_few` on (a, b, ws),
    as :func:`topk_select` lists them; returns their number. (Inlined: a call would count
    references to the workspace's twenty arrays twice per call.)"""
    state = ws.state
    mode, nb, c_take, c_cand = state[S_MODE], state[S_NB], state[S_TAKE], state[S_CAND]
    n_rows, n_cols, ties = state[S_ROWS], state[S_COLS], state[S_TIES]
    threshold = ws.threshold[0]
    rows, cols, qa, sb, col_order = ws.rows, ws.cols, ws.qa, ws.sb, ws.col_order
    bitmap = ws.bitmap
    zero = n_rows - n_rows  # not a literal 0: that would compile _select_rows once more
    n_sel, ties = _select_rows(a, b, zero, n_rows, rows, cols, qa, sb, col_order, mode, nb,
                               c_take, c_cand, n_cols, threshold, ties, sel_i, sel_j, zero,
                               ordered, bitmap)
    return n_sel
