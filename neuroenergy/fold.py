"""Writes folded into the forward pass, and their meter.

Per-sample SGD streams the input-layer matrix ``w1`` through the cache once per sample for
the forward pass, so a sample's update is not applied when it is decided but while the next
forward pass reads each row: the dense update (backprop, path) row by row as each row is
read; the selected synapses (top-fraction, combined) either straight from the selection
(``topk_rows.topk_row``), a block of rows ahead of the read (sparse selections), or, when a
sizeable share of each row is written, as a mask computed from per-row counts over the
columns sorted by |post| (``forward_masked``). The output layer's dense and masked
updates (``*_t``) work on its transpose, a column of the layer at a time. Every synapse
gets the same float32 operation as a plain update, ``w + float32(float32(-lr) * pre) *
post``, so the weights are bit for bit those of applying every update at once.

Energy sums are float64 and taken per row: M1 of a row is lr |pre_i| times the sum of |post_j|
over its written columns (prefix sums), so it agrees with a pair-by-pair sum to rounding.
"""
import numba
import numpy as np

from hardware_models.compiled_only import compiled_only
from hardware_models.llvm_ops import _ix

from .kernels import MF_M1, MF_M1_POT, MF_MALPHA
from .topk import (MODE_BANDS, MODE_NONE, S_CAND, S_COLS, S_EQ, S_MODE, S_NB, S_ROWS, S_TAKE,
                   S_TIES, topk_row_range)

FEW_COLUMNS = 16  # masked layers this narrow count each row's writes by direct comparison


@compiled_only(cache=True)
def _forward_rows(xs, w1, a, i_lo, i_hi, dense, x_prev, dh_prev, lr1_32):
    """a += xs[i] * w1[i] for rows i_lo..i_hi-1 in float32, in input order; with ``dense``,
    each row first receives the previous sample's dense update (if its input was nonzero).

    Rows go four at a time: each a[j] still receives its products one row after the other
    (the same float32 roundings as a row-by-row loop), but the loop overhead and the loads
    and stores of ``a`` are shared by four rows. Rows are indexed in ``w1`` itself (no row
    views): one base pointer keeps the compiler's alias checks few, so the loops vectorize."""
    kp = w1.shape[1]
    i = i_lo
    while i + 4 <= i_hi:
        x0 = xs[i]
        x1 = xs[i + 1]
        x2 = xs[i + 2]
        x3 = xs[i + 3]
        if (dense and x_prev[i] != 0.0 and x_prev[i + 1] != 0.0 and x_prev[i + 2] != 0.0
                and x_prev[i + 3] != 0.0):
            c0 = np.float32(-lr1_32 * x_prev[i])
            c1 = np.float32(-lr1_32 * x_prev[i + 1])
            c2 = np.float32(-lr1_32 * x_prev[i + 2])
            c3 = np.float32(-lr1_32 * x_prev[i + 3])
            for j in range(kp):
                d = dh_prev[j]
                v0 = w1[i, j] + c0 * d
                v1 = w1[i + 1, j] + c1 * d
                v2 = w1[i + 2, j] + c2 * d
                v3 = w1[i + 3, j] + c3 * d
                w1[i, j] = v0
                w1[i + 1, j] = v1
                w1[i + 2, j] = v2
                w1[i + 3, j] = v3
                acc = a[j] + x0 * v0
                acc += x1 * v1
                acc += x2 * v2
                a[j] = acc + x3 * v3
        else:
            if dense:
                _apply_dense_rows(w1, i, i + 4, x_prev, dh_prev, lr1_32)
            for j in range(kp):
                acc = a[j] + x0 * w1[i, j]
                acc += x1 * w1[i + 1, j]
                acc += x2 * w1[i + 2, j]
                a[j] = acc + x3 * w1[i + 3, j]
        i += 4
    while i < i_hi:
        if dense:
            _apply_dense_rows(w1, i, i + 1, x_prev, dh_prev, lr1_32)
        xi = xs[i]
        for j in range(kp):
            a[j] += xi * w1[i, j]
        i += 1


@numba.njit(cache=True, inline="always")
def _apply_dense_rows(w1, i_lo, i_hi, x_prev, dh_prev, lr1_32):
    """The dense update of rows i_lo..i_hi-1 (rows whose input was zero are not written)."""
    for i in range(i_lo, i_hi):
        if x_prev[i] != 0.0:
            c = np.float32(-lr1_32 * x_prev[i])
            for j in range(w1.shape[1]):
                w1[i, j] += c * dh_prev[j]


@numba.njit(cache=True)
def _band_sums(ws, b, post, cum_b, cum_pos):
    """After ``topk_prepare(., b, ., ws)`` in the band mode: cum_b[u] = sum of b over the
    first u columns of ws.col_order, cum_pos[u] the same over those with post > 0, so that
    a row's whole-taken columns are metered in O(1)."""
    if ws.state[S_MODE] != MODE_BANDS:
        return
    col_order = ws.col_order
    acc = 0.0
    acc_pos = 0.0
    cum_b[0] = 0.0
    cum_pos[0] = 0.0
    for u in range(ws.state[S_COLS]):
        j = col_order[u]
        acc += b[j]
        acc_pos += b[j] if post[j] > 0.0 else 0.0
        cum_b[u + 1] = acc
        cum_pos[u + 1] = acc_pos


@numba.njit(cache=True)
def _apply_selected(w, pre, post, lr, a, b, ws, cum_b, cum_pos, i_hi, t, counts, alpha,
                    meter_i, meter_f, layer):
    """Write, count and meter the pairs selected by the last ``topk_prepare(a, b, ., ws)``
    (a = |pre|, b = |post|; cum_b / cum_pos from :func:`_band_sums`) in the rows
    ws.rows[t:] that lie below i_hi; returns the next t.

    Per row i with selected columns S: w[i, j] += float32(float32(-lr) pre_i) post_j for j
    in S, M0 += |S|, M1 += lr a_i sum_S b_j, and the potentiating part (dw > 0 where pre and
    post have opposite signs) likewise. The pairs are those of ``topk_rows.topk_row``, read here
    without copying; the ties still to take are kept in ws.state."""
    state = ws.state
    n_rows = state[S_ROWS]
    if t >= n_rows:
        return t
    rows, cols, qa, sb, col_order = ws.rows, ws.cols, ws.qa, ws.sb, ws.col_order
    mode, nb, c_take, c_cand = state[S_MODE], state[S_NB], state[S_TAKE], state[S_CAND]
    n_cols, ties = state[S_COLS], state[S_TIES]
    threshold = ws.threshold[0]
    lr32 = np.float32(lr)
    n_writes = 0
    m1 = 0.0
    m1_pot = 0.0
    m_alpha = 0.0
    while t < n_rows and rows[t] < i_hi:
        i = rows[t]
        ai = a[i]
        c = np.float32(-lr32 * pre[i])
        scale = lr * ai
        start = 0
        stop = n_cols
        if mode == MODE_BANDS:
            n_take, stop = topk_row_range(qa[i], sb, nb, c_take, c_cand)
            for u in range(n_take):
                # an unsigned index: no test for negative indices on three arrays per write
                # (~20% of these scattered writes)
                j = _ix(col_order[u])
                w[i, j] += c * post[j]
                counts[i, j] += 1
            if alpha >= 0.0:
                for u in range(n_take):
                    m_alpha += (scale * b[col_order[u]]) ** alpha
            cnt = n_take
            s_all = cum_b[n_take]
            s_pos = cum_pos[n_take]
            order = col_order
            start = n_take
        else:
            cnt = 0
            s_all = 0.0
            s_pos = 0.0
            order = cols
        # compared with the threshold, in column order within a bin (ties: row-major)
        for u in range(start, stop):
            j = _ix(order[u])
            prod = ai * b[j]
            if prod > threshold or (prod == threshold and ties > 0 and prod > 0.0):
                if prod == threshold:
                    ties -= 1
                w[i, j] += c * post[j]
                counts[i, j] += 1
                cnt += 1
                s_all += b[j]
                s_pos += b[j] if post[j] > 0.0 else 0.0
                if alpha >= 0.0:
                    m_alpha += (scale * b[j]) ** alpha
        n_writes += cnt
        m1 += scale * s_all
        m1_pot += scale * ((s_all - s_pos) if pre[i] > 0.0 else s_pos)
        t += 1
    state[S_TIES] = ties
    meter_i[layer] += n_writes
    meter_f[layer, MF_M1] += m1
    meter_f[layer, MF_M1_POT] += m1_pot
    if alpha >= 0.0:
        meter_f[layer, MF_MALPHA] += m_alpha
    return t


@numba.njit(cache=True)
def _count_dense(counts1, xs, nz_post, col_acc, nnz):
    """Write counts of a dense update: +1 where xs[i] != 0 and nz_post[j], given the
    number ``nnz`` of nonzero xs. When most inputs are nonzero, the column accumulator
    takes every row and only the zero rows are corrected (none to look for when every
    input is nonzero); :func:`_flush_counts` adds the accumulator in."""
    n_in, kp = counts1.shape
    if 2 * nnz >= n_in:
        for j in range(kp):
            col_acc[j] += nz_post[j]
        if nnz == n_in:
            return
        for i in range(n_in):
            if xs[i] == 0.0:
                crow = counts1[i]
                for j in range(kp):
                    crow[j] -= nz_post[j]
    else:
        for i in range(n_in):
            if xs[i] != 0.0:
                crow = counts1[i]
                for j in range(kp):
                    crow[j] += nz_post[j]


@numba.njit(cache=True)
def _flush_counts(counts1, col_acc):
    """counts1 += col_acc in every row, and col_acc = 0; nothing to do when col_acc is 0
    (a selective layer: a pass over the whole count map saved per call)."""
    n_in, kp = counts1.shape
    n_counted = 0
    for j in range(kp):
        n_counted += col_acc[j] != 0
    if n_counted == 0:
        return
    for i in range(n_in):
        crow = counts1[i]
        for j in range(kp):
            crow[j] += col_acc[j]
    col_acc[:] = 0


@numba.njit(cache=True)
def dense_output_update_t(w2t, h, post2, lr2, counts2t, col_acc2, coef):
    """Every nonzero update of the output layer, in place on its transpose w2t (n_out, kp),
    an output at a time (vectorized along the hidden units; metered in closed form). The
    write counts, +1 where h[j] != 0 and post2[o] != 0, go to the column accumulator
    ``col_acc2`` (added into every row by :func:`_flush_counts`) and a correction, in
    counts2t, of the units with h[j] == 0: not a read-modify-write of the whole count map per
    sample. ``coef``: float32 (kp,) scratch."""
    n_out, kp = w2t.shape
    lr2_32 = np.float32(lr2)
    for j in range(kp):
        coef[j] = np.float32(-lr2_32 * h[j])
    for o in range(n_out):
        p = post2[o]
        if p != 0.0:  # a zero error is not a write
            col_acc2[o] += 1
            for j in range(kp):
                w = w2t[o, j]
                nw = w + coef[j] * p
                silent = h[j] == 0.0
                w2t[o, j] = w if silent else nw
                counts2t[o, j] -= silent


# ----------------------------------------------------------------------------- masked writes

@numba.njit(cache=True)
def _argsort_desc(b, order):
    """order = the indices of b by decreasing value (Shell sort: no allocation)."""
    n = b.shape[0]
    for j in range(n):
        order[j] = j
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap >= 1:
        for t in range(gap, n):
            v = order[t]
            bv = b[v]
            u = t
            while u >= gap and b[order[u - gap]] < bv:
                order[u] = order[u - gap]
                u -= gap
            order[u] = v
        gap //= 3


@numba.njit(cache=True)
def masked_plan(pre, post, lr, a, b, ws, order, rank, cum_b, cum_pos, n_row, meter_i, meter_f,
                layer):
    """Turn the selection of the last ``topk_prepare(a, b, ., ws)`` (a = |pre|, b = |post|)
    into per-row counts: row i writes the columns holding its n_row[i] largest b (``rank``
    gives each column's place in that order), since a_i b_j falls with b_j. Meters the
    writes now (per row, from prefix sums in that order). Returns False, and does nothing,
    when products tied at the threshold must be split in row-major order (then use
    :func:`_apply_selected`)."""
    state = ws.state
    m = a.shape[0]
    n = b.shape[0]
    mode, ties, n_eq = state[S_MODE], state[S_TIES], state[S_EQ]
    if mode != MODE_NONE and 0 < ties < n_eq:
        return False
    threshold = ws.threshold[0]
    # taken: the products above the threshold, and those equal to it when the tied ones are
    # all taken (never a zero product): prod >= lim in both cases
    lim = (threshold if ties > 0 and threshold > 0.0
           else np.nextafter(threshold, np.inf))  # prod >= nextafter(t) <=> prod > t
    _argsort_desc(b, order)
    acc = 0.0
    acc_pos = 0.0
    cum_b[0] = 0.0
    cum_pos[0] = 0.0
    for u in range(n):
        j = order[u]
        rank[j] = u
        acc += b[j]
        acc_pos += b[j] if post[j] > 0.0 else 0.0
        cum_b[u + 1] = acc
        cum_pos[u + 1] = acc_pos
    # a row's count: its whole-taken band columns plus its candidates above the threshold
    for i in range(m):
        n_row[i] = 0
    rows, cols, qa, sb, col_order = ws.rows, ws.cols, ws.qa, ws.sb, ws.col_order
    nb, c_take, c_cand, n_cols = state[S_NB], state[S_TAKE], state[S_CAND], state[S_COLS]
    n_listed = state[S_ROWS] if mode != MODE_NONE else 0  # rows that can hold selected pairs
    few = n <= FEW_COLUMNS
    if few and mode != MODE_NONE and n == 10:
        # ten columns (the output layer): every row's ten products at once, in registers,
        # vectorized over the rows (a third of the time of ten passes over n_row)
        b0, b1, b2, b3, b4 = b[0], b[1], b[2], b[3], b[4]
        b5, b6, b7, b8, b9 = b[5], b[6], b[7], b[8], b[9]
        for i in range(m):
            ai = a[i]
            n_row[i] = ((ai * b0 >= lim) + (ai * b1 >= lim) + (ai * b2 >= lim)
                        + (ai * b3 >= lim) + (ai * b4 >= lim) + (ai * b5 >= lim)
                        + (ai * b6 >= lim) + (ai * b7 >= lim) + (ai * b8 >= lim)
                        + (ai * b9 >= lim))
    elif few and mode != MODE_NONE:
        # few columns: compare every product, a column at a time over the rows
        # (vectorised), instead of walking each row's bands
        for j in range(n):
            bj = b[j]
            for i in range(m):
                n_row[i] += a[i] * bj >= lim
    for t in range(0 if few else n_listed):
        i = _ix(rows[t])
        ai = a[i]
        if mode == MODE_BANDS:
            cnt, stop = topk_row_range(qa[i], sb, nb, c_take, c_cand)
            start = cnt
            order_t = col_order
        else:
            cnt = 0
            start = 0
            stop = n_cols
            order_t = cols
        for u in range(start, stop):
            cnt += ai * b[_ix(order_t[u])] >= lim
        n_row[i] = cnt
    n_writes = 0
    m1 = 0.0
    m1_pot = 0.0
    for t in range(n_listed):
        i = _ix(rows[t])  # any other row has n_row 0
        cnt = n_row[i]
        if cnt > 0:
            n_writes += cnt
            scale = lr * a[i]
            m1 += scale * cum_b[cnt]
            m1_pot += scale * ((cum_b[cnt] - cum_pos[cnt]) if pre[i] > 0.0 else cum_pos[cnt])
    meter_i[layer] += n_writes
    meter_f[layer, MF_M1] += m1
    meter_f[layer, MF_M1_POT] += m1_pot
    return True


@numba.njit(cache=True)
def forward_masked(xs, w1, a, x_prev, dh_prev, lr1_32, n_row, rank, counts1):
    """a = xs @ w1 (float32, input order) after writing the previous sample's masked update
    (:func:`masked_plan`) and counting it, four rows at a time in one vectorized pass:
    w1[i, j] += float32(float32(-lr) x_prev_i) dh_prev_j where rank[j] < n_row[i]."""
    n_in, kp = w1.shape
    i = 0
    while i + 4 <= n_in:
        n0 = n_row[i]
        n1 = n_row[i + 1]
        n2 = n_row[i + 2]
        n3 = n_row[i + 3]
        x0 = xs[i]
        x1 = xs[i + 1]
        x2 = xs[i + 2]
        x3 = xs[i + 3]
        if n0 == 0 and n1 == 0 and n2 == 0 and n3 == 0:
            for j in range(kp):
                acc = a[j] + x0 * w1[i, j]
                acc += x1 * w1[i + 1, j]
                acc += x2 * w1[i + 2, j]
                a[j] = acc + x3 * w1[i + 3, j]
        else:
            c0 = np.float32(-lr1_32 * x_prev[i])
            c1 = np.float32(-lr1_32 * x_prev[i + 1])
            c2 = np.float32(-lr1_32 * x_prev[i + 2])
            c3 = np.float32(-lr1_32 * x_prev[i + 3])
            for j in range(kp):
                r = rank[j]
                d = dh_prev[j]
                m0 = r < n0
                m1 = r < n1
                m2 = r < n2
                m3 = r < n3
                w0 = w1[i, j]
                v0 = w0 + c0 * d if m0 else w0
                w1_ = w1[i + 1, j]
                v1 = w1_ + c1 * d if m1 else w1_
                w2 = w1[i + 2, j]
                v2 = w2 + c2 * d if m2 else w2
                w3 = w1[i + 3, j]
                v3 = w3 + c3 * d if m3 else w3
                w1[i, j] = v0
                w1[i + 1, j] = v1
                w1[i + 2, j] = v2
                w1[i + 3, j] = v3
                counts1[i, j] += m0
                counts1[i + 1, j] += m1
                counts1[i + 2, j] += m2
                counts1[i + 3, j] += m3
                acc = a[j] + x0 * v0
                acc += x1 * v1
                acc += x2 * v2
                a[j] = acc + x3 * v3
        i += 4
    while i < n_in:
        apply_masked_rows(w1, x_prev, dh_prev, lr1_32, n_row, rank, counts1, i, i + 1)
        xi = xs[i]
        for j in range(kp):
            a[j] += xi * w1[i, j]
        i += 1


@numba.njit(cache=True)
def apply_masked_rows(w, pre, post, lr32, n_row, rank, counts, i_lo, i_hi):
    """The masked update of rows i_lo..i_hi-1 without a forward pass."""
    for i in range(i_lo, i_hi):
        n_i = n_row[i]
        if n_i > 0:
            c = np.float32(-lr32 * pre[i])
            for j in range(w.shape[1]):
                sel = rank[j] < n_i
                wij = w[i, j]
                nw = wij + c * post[j]  # outside the select: a select, not a branch
                w[i, j] = nw if sel else wij
                counts[i, j] += sel


@numba.njit(cache=True)
def apply_masked_t(w2t, pre, post, lr32, n_row, rank, counts2t, coef):
    """The masked update of the output layer (after :func:`masked_plan`) on its transpose
    w2t (n_out, kp), a column of the layer at a time: w2t[j, i] += float32(float32(-lr) pre_i)
    post_j where rank[j] < n_row[i], and counts2t[j, i] += 1 there. Along the hidden units
    every operand is contiguous and the loop vectorizes (~5x faster than rows of ten).
    ``coef``: float32 (kp,) scratch."""
    n_cols, kp = w2t.shape
    for i in range(kp):
        coef[i] = np.float32(-lr32 * pre[i])
    for j in range(n_cols):
        r = rank[j]
        pj = post[j]
        for i in range(kp):
            sel = n_row[i] > r
            w = w2t[j, i]
            nw = w + coef[i] * pj
            w2t[j, i] = nw if sel else w
            counts2t[j, i] += sel
