"""The compiled per-sample SGD loop over one chunk of samples (see ``kernels.py`` for the
plastic-part convention and the metered writes).

Per sample: forward with the current weights, output error, hidden error (from the output
weights *before* this sample's update, and independent of which updates are then applied),
then each layer writes either every synapse or its k largest updates.

Speed. Per-sample SGD is memory-bound: the input-layer matrix ``w1`` streams through the
cache once per sample for the forward pass, so its update is not applied at once but folded
into the next sample's forward pass: the dense update (backprop, path) row by row as each
row is read, the k selected synapses (top-fraction, combined) a block of rows ahead of the
read, straight from the selection (``topk.topk_row``), with their meter and write counts.
The dense update's M0 / M1 come in closed form when it is decided, and its write counts as a
per-column accumulator plus corrections for the rows whose input is zero, added into
``counts1`` at the end of the chunk. Weights are the same as applying every update at once,
bit for bit: each synapse gets the same float32 operation,
``w + float32(float32(-lr) * pre) * post``, and the forward pass accumulates in input order.
Energy sums are float64; they are summed per row, so they agree with a pair-by-pair sum to
rounding.

With hardware tallies or a device in the loop, a second kernel runs: every write goes
through :func:`kernels.write_pairs` in row-major order, as soon as it is decided (the tallies
draw random numbers in that order). Runs without hardware never compile it.
"""
import numba
import numpy as np

from .kernels import (MF_M1, MF_M1_POT, MF_MALPHA, STATUS_DIVERGED, STATUS_OK, _activation,
                      _activation_slope, _write_pairs_impl, meter_dense_closed_form,
                      output_error)
from .topk import (MODE_BANDS, S_CAND, S_COLS, S_MODE, S_NB, S_ROWS, S_TAKE, S_TIES,
                   topk_prepare, topk_row_range, topk_select, topk_workspace)

ROW_BLOCK = 64  # rows whose selected writes are applied just before the forward pass reads them


@numba.njit(cache=True)
def _fill_all_pairs(m, n, sel_i, sel_j):
    t = 0
    for i in range(m):
        for j in range(n):
            sel_i[t] = i
            sel_j[t] = j
            t += 1
    return t


@numba.njit(cache=True)
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
    post have opposite signs) likewise. The pairs are those of ``topk.topk_row``, read here
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
                j = col_order[u]
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
            j = order[u]
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
def _count_dense(counts1, xs, nz_post, col_acc):
    """Write counts of a dense update: +1 where xs[i] != 0 and nz_post[j]. When most inputs
    are nonzero, the column accumulator takes every row and only the zero rows are
    corrected; :func:`_flush_counts` adds the accumulator in."""
    n_in, kp = counts1.shape
    nnz = 0
    for i in range(n_in):
        nnz += xs[i] != 0.0
    if 2 * nnz >= n_in:
        for j in range(kp):
            col_acc[j] += nz_post[j]
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
    n_in, kp = counts1.shape
    for i in range(n_in):
        crow = counts1[i]
        for j in range(kp):
            crow[j] += col_acc[j]
    col_acc[:] = 0


@numba.njit(cache=True)
def _dense_output_update(w2, h, post2, lr2, counts2):
    """Every nonzero update of the output layer, in place (metered in closed form)."""
    kp, n_out = w2.shape
    lr2_32 = np.float32(lr2)
    for j in range(kp):
        if h[j] != 0.0:
            c = np.float32(-lr2_32 * h[j])
            for o in range(n_out):  # branch-free: a zero error is not a write
                nz = post2[o] != 0.0
                wjo = w2[j, o]
                w2[j, o] = wjo + c * post2[o] if nz else wjo
                counts2[j, o] += nz


@numba.njit(cache=True)
def _output_sums(h, w2, z):
    """z[o] += sum_j float64(h_j) float64(w2[j, o]), accumulated in hidden-unit order. For
    ten outputs the sums live in registers (ten independent chains) instead of memory."""
    kp, n_out = w2.shape
    if n_out == 10:
        z0, z1, z2, z3, z4 = z[0], z[1], z[2], z[3], z[4]
        z5, z6, z7, z8, z9 = z[5], z[6], z[7], z[8], z[9]
        for j in range(kp):
            hj = np.float64(h[j])
            z0 += hj * np.float64(w2[j, 0])
            z1 += hj * np.float64(w2[j, 1])
            z2 += hj * np.float64(w2[j, 2])
            z3 += hj * np.float64(w2[j, 3])
            z4 += hj * np.float64(w2[j, 4])
            z5 += hj * np.float64(w2[j, 5])
            z6 += hj * np.float64(w2[j, 6])
            z7 += hj * np.float64(w2[j, 7])
            z8 += hj * np.float64(w2[j, 8])
            z9 += hj * np.float64(w2[j, 9])
        z[0], z[1], z[2], z[3], z[4] = z0, z1, z2, z3, z4
        z[5], z[6], z[7], z[8], z[9] = z5, z6, z7, z8, z9
    else:
        for j in range(kp):
            hj = np.float64(h[j])
            for o in range(n_out):
                z[o] += hj * np.float64(w2[j, o])


@numba.njit(cache=True)
def _errors(xs, row, y, offset, w2, clamped, act_code, leak, loss_code, a, h, z, delta_out,
            post2, dh):
    """From the input-layer potentials ``a``: hidden activities h, output error post2
    (float32 of dLoss/dz) and hidden error dh, from the output weights before this sample
    changes them. Returns False if the output is not finite."""
    kp, n_out = w2.shape
    for j in range(kp):
        h[j] = np.float32(1.0) if clamped[j] else np.float32(_activation(a[j], act_code, leak))
    for o in range(n_out):
        z[o] = offset[row, o] if offset.shape[0] > 0 else 0.0
    _output_sums(h, w2, z)
    if not output_error(z, y[row], loss_code, delta_out):
        return False
    for o in range(n_out):
        post2[o] = np.float32(delta_out[o])
    _hidden_error(w2, post2, a, h, clamped, act_code, leak, dh)
    return True


@numba.njit(cache=True)
def _hidden_error(w2, post2, a, h, clamped, act_code, leak, dh):
    """dh[j] = g'(a_j) sum_o float64(w2[j, o]) float64(post2[o]), the sum left to right;
    four units at a time, so that four independent sums are in flight."""
    kp, n_out = w2.shape
    j = 0
    while j + 4 <= kp:
        b0 = 0.0
        b1 = 0.0
        b2 = 0.0
        b3 = 0.0
        for o in range(n_out):
            p = np.float64(post2[o])
            b0 += np.float64(w2[j, o]) * p
            b1 += np.float64(w2[j + 1, o]) * p
            b2 += np.float64(w2[j + 2, o]) * p
            b3 += np.float64(w2[j + 3, o]) * p
        dh[j] = np.float32(_activation_slope(a[j], h[j], act_code, leak) * b0)
        dh[j + 1] = np.float32(_activation_slope(a[j + 1], h[j + 1], act_code, leak) * b1)
        dh[j + 2] = np.float32(_activation_slope(a[j + 2], h[j + 2], act_code, leak) * b2)
        dh[j + 3] = np.float32(_activation_slope(a[j + 3], h[j + 3], act_code, leak) * b3)
        j += 4
    while j < kp:
        back = 0.0
        for o in range(n_out):
            back += np.float64(w2[j, o]) * np.float64(post2[o])
        dh[j] = np.float32(_activation_slope(a[j], h[j], act_code, leak) * back)
        j += 1
    for j in range(kp):
        if clamped[j]:
            dh[j] = 0.0


@numba.njit(cache=True)
def _typed_constants():
    """0, the two layer indices and False as plain int64 / bool values: a literal argument
    would compile a callee once more for every distinct constant."""
    return np.int64(0), np.int64(0), np.int64(1), np.bool_(False)


@numba.njit(cache=True)
def _abs64(v, out):
    for i in range(v.shape[0]):
        out[i] = abs(np.float64(v[i]))


@numba.njit(cache=True)
def _chunk_plain(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code, lr1,
                 lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2):
    """:func:`train_chunk` for float weights without hardware tallies."""
    ZERO, IN, OUT, no = _typed_constants()
    n_in, kp = w1.shape
    n_out = w2.shape[1]
    lr1_32 = np.float32(lr1)
    dense1 = k1 < 0 and alpha < 0.0   # folded dense update, closed-form meter
    dense2 = k2 < 0 and alpha < 0.0   # in place, closed-form meter
    k1_all = k1 if k1 >= 0 else n_in * kp  # all nonzero updates = all positive products
    k2_all = k2 if k2 >= 0 else kp * n_out

    a = np.zeros(kp, np.float32)
    h = np.zeros(kp, np.float32)
    z = np.zeros(n_out)
    delta_out = np.zeros(n_out)
    post2 = np.zeros(n_out, np.float32)
    dh = np.zeros(kp, np.float32)
    dh_prev = np.zeros(kp, np.float32)
    nz_post = np.zeros(kp, np.int32)
    col_acc = np.zeros(kp, np.int32)
    abs_x = np.zeros(n_in)
    abs_dh = np.zeros(kp)
    abs_h = np.zeros(kp)
    abs_post = np.zeros(n_out)
    cum1_b = np.zeros(kp + 1)
    cum1_pos = np.zeros(kp + 1)
    cum2_b = np.zeros(n_out + 1)
    cum2_pos = np.zeros(n_out + 1)
    ws1 = topk_workspace(0 if dense1 else n_in, 0 if dense1 else kp,
                         np.empty(1 if dense1 else n_in * kp))
    ws2 = topk_workspace(0 if dense2 else kp, 0 if dense2 else n_out,
                         np.empty(1 if dense2 else kp * n_out))

    pending = False   # the previous sample's input-layer update is still to be written
    x_prev = abs_x.astype(np.float32)
    for s in range(sample_idx.shape[0]):
        row = sample_idx[s]
        xs = x[row]
        a[:] = 0.0
        if pending and not dense1:
            t = ZERO
            for i0 in range(0, n_in, ROW_BLOCK):
                i1 = min(i0 + ROW_BLOCK, n_in)
                t = _apply_selected(w1, x_prev, dh_prev, lr1, abs_x, abs_dh, ws1, cum1_b,
                                    cum1_pos, i1, t, counts1, alpha, meter_i, meter_f, IN)
                _forward_rows(xs, w1, a, i0, i1, no, x_prev, dh_prev, lr1_32)
        else:
            _forward_rows(xs, w1, a, ZERO, n_in, pending, x_prev, dh_prev, lr1_32)
        pending = False
        if not _errors(xs, row, y, offset, w2, clamped, act_code, leak, loss_code, a, h, z,
                       delta_out, post2, dh):
            _flush_counts(counts1, col_acc)
            return s, STATUS_DIVERGED

        # output layer: written now
        if dense2:
            _dense_output_update(w2, h, post2, lr2, counts2)
            meter_dense_closed_form(h, post2, lr2, OUT, meter_i, meter_f)
        else:
            _abs64(h, abs_h)
            _abs64(post2, abs_post)
            topk_prepare(abs_h, abs_post, k2_all, ws2)
            _band_sums(ws2, abs_post, post2, cum2_b, cum2_pos)
            _apply_selected(w2, h, post2, lr2, abs_h, abs_post, ws2, cum2_b, cum2_pos, kp, ZERO,
                            counts2, alpha, meter_i, meter_f, OUT)

        # input layer: decided now, written in the next forward pass
        if dense1:
            meter_dense_closed_form(xs, dh, lr1, IN, meter_i, meter_f)
            for j in range(kp):
                nz_post[j] = dh[j] != 0.0
            _count_dense(counts1, xs, nz_post, col_acc)
        else:
            _abs64(xs, abs_x)
            _abs64(dh, abs_dh)
            topk_prepare(abs_x, abs_dh, k1_all, ws1)
            _band_sums(ws1, abs_dh, dh, cum1_b, cum1_pos)
        pending = True
        x_prev = xs
        for j in range(kp):  # a loop, not dh_prev[:] = dh: no shape-check code to compile
            dh_prev[j] = dh[j]

    if pending:
        if dense1:
            _apply_dense_rows(w1, ZERO, n_in, x_prev, dh_prev, lr1_32)
        else:
            _apply_selected(w1, x_prev, dh_prev, lr1, abs_x, abs_dh, ws1, cum1_b, cum1_pos,
                            n_in, ZERO, counts1, alpha, meter_i, meter_f, IN)
    _flush_counts(counts1, col_acc)
    return sample_idx.shape[0], STATUS_OK


@numba.njit(cache=True)
def _chunk_tallied(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code, lr1,
                   lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2, hw_params,
                   hw_stats, in_loop_device, seed):
    """:func:`train_chunk` with hardware tallies or a device in the loop."""
    ZERO, IN, OUT, no = _typed_constants()
    np.random.seed(seed)
    n_in, kp = w1.shape
    n_out = w2.shape[1]
    a = np.zeros(kp, np.float32)
    h = np.zeros(kp, np.float32)
    z = np.zeros(n_out)
    delta_out = np.zeros(n_out)
    post2 = np.zeros(n_out, np.float32)
    dh = np.zeros(kp, np.float32)
    row_max = np.zeros(max(hw_params.shape[0], 1))
    abs_x = np.zeros(n_in)
    abs_dh = np.zeros(kp)
    abs_h = np.zeros(kp)
    abs_post = np.zeros(n_out)
    sel1_i = np.empty(n_in * kp, np.int64)
    sel1_j = np.empty(n_in * kp, np.int64)
    sel2_i = np.empty(kp * n_out, np.int64)
    sel2_j = np.empty(kp * n_out, np.int64)
    ws1 = topk_workspace(n_in if k1 >= 0 else 0, kp if k1 >= 0 else 0,
                         np.empty(n_in * kp if k1 >= 0 else 1))
    ws2 = topk_workspace(kp if k2 >= 0 else 0, n_out if k2 >= 0 else 0,
                         np.empty(kp * n_out if k2 >= 0 else 1))
    all1 = _fill_all_pairs(n_in, kp, sel1_i, sel1_j) if k1 < 0 else 0
    all2 = _fill_all_pairs(kp, n_out, sel2_i, sel2_j) if k2 < 0 else 0
    for s in range(sample_idx.shape[0]):
        row = sample_idx[s]
        xs = x[row]
        a[:] = 0.0
        _forward_rows(xs, w1, a, ZERO, n_in, no, xs, dh, np.float32(lr1))
        if not _errors(xs, row, y, offset, w2, clamped, act_code, leak, loss_code, a, h, z,
                       delta_out, post2, dh):
            return s, STATUS_DIVERGED
        n2 = all2
        if k2 >= 0:
            _abs64(h, abs_h)
            _abs64(post2, abs_post)
            n2 = topk_select(abs_h, abs_post, k2, sel2_i, sel2_j, ws2, True)
        _write_pairs_impl(w2, h, post2, lr2, sel2_i, sel2_j, n2, OUT, alpha, meter_i, meter_f,
                          counts2, hw_params, hw_stats, in_loop_device, row_max)
        n1 = all1
        if k1 >= 0:
            _abs64(xs, abs_x)
            _abs64(dh, abs_dh)
            n1 = topk_select(abs_x, abs_dh, k1, sel1_i, sel1_j, ws1, True)
        _write_pairs_impl(w1, xs, dh, lr1, sel1_i, sel1_j, n1, IN, alpha, meter_i, meter_f,
                          counts1, hw_params, hw_stats, in_loop_device, row_max)
    return sample_idx.shape[0], STATUS_OK


def train_chunk(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code,
                lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2,
                hw_params, hw_stats, in_loop_device, seed):
    """Train on ``x[sample_idx]`` one sample at a time (compiled; see the module docstring).

    Parameters
    ----------
    x : float32 (n_images, n_in); y : int64 (n_images,); sample_idx : int64 (n_samples,)
    offset : float32 (n_images, n_out) or (0, n_out) - frozen units' output contribution
    w1 : float32 (n_in, kp); w2 : float32 (kp, n_out) - the plastic part, updated in place
    clamped : bool (kp,) - units held at 1 (no input plasticity, zero hidden error)
    k1, k2 : synapses written per sample in each layer; -1 writes every nonzero update
    alpha : exponent of the extra energy measure sum |dw|^alpha, or -1 for none
    meter_i : int64 (2,) writes per layer; meter_f : float64 (2, 3) see ``kernels.MF_*``
    counts1, counts2 : int32 write-count maps of w1 and w2
    hw_params : float64 (n_dev, P); hw_stats : float64 (2, n_dev, S) - hardware tallies
    in_loop_device : index of the device that holds the weights, or -1 (float weights)
    seed : seeds numba's generator (stochastic rounding, device noise) for this chunk

    Returns
    -------
    (samples done, status) with status ``STATUS_OK`` or ``STATUS_DIVERGED``.
    """
    if hw_params.shape[0] == 0 and in_loop_device < 0:
        return _chunk_plain(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak,
                            loss_code, lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1,
                            counts2)
    return _chunk_tallied(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code,
                          lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2,
                          hw_params, hw_stats, in_loop_device, seed)
