"""Numba kernels: per-sample SGD over a chunk of samples, with selected, sparse, metered writes.

One compiled call trains a chunk of samples; the Python loop in ``train.py`` evaluates and
stores between chunks. Kernels take only arrays and scalars.

The network the kernel sees is the *plastic part*: ``w1`` (n_in, kp) holds the incoming weights
of the kp plastic hidden units and ``w2`` (kp, 10) their outgoing weights. The frozen units'
contribution to the output never changes, so it arrives precomputed per image in ``offset``
(n_images, 10). For backprop and top-fraction the plastic part is the whole network and the
offset is zero. ``clamped`` marks hidden units held at 1 (the output bias unit).

Every kernel here has a slow numpy reference in ``tests/reference.py``.
"""
import math

import numba
import numpy as np

from hardware_models.compiled_only import compiled_only
from hardware_models.llvm_ops import _ix
from hardware_models.tally import device_write

from .row_tally import (begin_row, close_row, draws_uniforms, flush_writes, layout,
                        must_price_before, new_row_buffer, price_held, price_rows, records_full)
from .topk import topk_workspace
from .topk_rows import topk_select

ACT_LEAKY_RELU, ACT_RELU, ACT_SIGMOID = 0, 1, 2
LOSS_MSE, LOSS_SOFTMAX_CE = 0, 1
STATUS_OK, STATUS_DIVERGED = 0, 1
# meter_f columns: summed |dw| (M1), summed positive dw (potentiation-only M1), sum |dw|^alpha
MF_M1, MF_M1_POT, MF_MALPHA = 0, 1, 2
N_METER_F = 3


@numba.njit(cache=True)
def _activation(a, code, leak):
    if code == ACT_LEAKY_RELU:
        return a if a > 0.0 else leak * a
    elif code == ACT_RELU:
        return a if a > 0.0 else 0.0
    return 1.0 / (1.0 + math.exp(-a))


@numba.njit(cache=True)
def _activation_slope(a, h, code, leak):
    if code == ACT_LEAKY_RELU:
        return 1.0 if a > 0.0 else leak
    elif code == ACT_RELU:
        return 1.0 if a > 0.0 else 0.0
    return h * (1.0 - h)


@numba.njit(cache=True)
def activate_inplace(a, code, leak, clamped_cols):
    """h = act(a) in place for a float32 block (rows, units), with the arithmetic of
    ``network.activate`` (the leak rounded to float32 first, NaN kept); the columns listed in
    ``clamped_cols`` are set to 1. ReLU and leaky ReLU only (sigmoid stays in numpy)."""
    leak32 = np.float32(leak)
    zero = np.float32(0.0)
    for r in range(a.shape[0]):
        if code == ACT_LEAKY_RELU:
            for j in range(a.shape[1]):
                v = a[r, j]
                a[r, j] = v if v > zero else leak32 * v
        else:
            for j in range(a.shape[1]):
                v = a[r, j]
                a[r, j] = zero if v <= zero else v
        for t in range(clamped_cols.shape[0]):
            a[r, clamped_cols[t]] = np.float32(1.0)


@numba.njit(cache=True)
def output_error(z, label, loss_code, delta_out):
    """delta_out = dLoss/dz for one sample: z - onehot (squared error, with the 1/2) or
    softmax(z) - onehot (cross-entropy). Returns False if z is not finite."""
    n_out = z.shape[0]
    for o in range(n_out):
        if not math.isfinite(z[o]):
            return False
    if loss_code == LOSS_MSE:
        for o in range(n_out):
            delta_out[o] = z[o] - (1.0 if o == label else 0.0)
    else:
        zmax = z[0]
        for o in range(1, n_out):
            zmax = max(zmax, z[o])
        total = 0.0
        for o in range(n_out):
            delta_out[o] = math.exp(z[o] - zmax)
            total += delta_out[o]
        for o in range(n_out):
            delta_out[o] = delta_out[o] / total - (1.0 if o == label else 0.0)
    return True


# ----------------------------------------------------------------------------- top-k selection

@numba.njit(cache=True)
def topk_outer(a, b, k, sel_i, sel_j, cand_s, cand_i, cand_j):
    """Select the k largest products a[i] * b[j] (a, b >= 0) without forming the matrix.

    Products of zero are never selected. Fills ``sel_i`` / ``sel_j`` with the selected pairs
    in row-major order (rows ascending, columns ascending within a row) and returns their
    number (min(k, positive products)). ``cand_s`` is a float64 scratch buffer of size
    len(a) * len(b); ``cand_i`` / ``cand_j`` are unused (kept for the signature). This
    allocates a workspace per call: loops use :func:`topk_rows.topk_select` with one workspace.
    See ``topk.py`` for the method.
    """
    ws = topk_workspace(a.shape[0], b.shape[0], cand_s)
    return topk_select(np.ascontiguousarray(a), np.ascontiguousarray(b), k, sel_i, sel_j, ws)


# ----------------------------------------------------------------------------- metered writes

@numba.njit(cache=True, inline="always")
def _uniform_at(key, t):
    """Uniform number t (from 0) in [0, 1) of the stream ``key`` (uint64): SplitMix64's
    output for state key + (t + 1) * golden gamma. The priced writers' uniforms for
    stochastic rounding: numba's np.random.random() costs ~100 ns a draw here, and a
    counter-based stream (unlike a recurrence) vectorises, ~0.3 ns a write."""
    z = key + np.uint64(t + 1) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True)
def write_pairs(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i, meter_f,
                counts, hw_params, hw_stats, in_loop_device):
    """Apply dw[i, j] = -lr * pre[i] * post[j] to the listed synapses (grouped by row) and
    meter every write. Zero changes are not writes. Returns nothing; updates in place."""
    row_buf = new_row_buffer(hw_params, w.shape[1])
    _write_pairs_impl(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i, meter_f,
                      counts, hw_params, hw_stats, in_loop_device, row_buf)
    price_held(row_buf, hw_params, hw_stats)


@numba.njit(cache=True)
def _write_pairs_impl(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i, meter_f,
                      counts, hw_params, hw_stats, in_loop_device, row_buf):
    """:func:`write_pairs` with its scratch ``row_buf`` (``row_tally.new_row_buffer``)
    passed in; the rows it leaves in the buffer are priced by the caller's
    ``row_tally.price_held``."""
    if n_sel <= 0:  # nothing selected: touch nothing (the buffers hold stale pairs)
        return
    n_dev = hw_params.shape[0]
    if in_loop_device < 0 and w.shape[1] <= layout(row_buf, n_dev)[3]:
        _write_pair_rows(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i,
                         meter_f, counts, hw_params, hw_stats, row_buf)
        return
    lr32 = np.float32(lr)
    row_n = 0
    current_row = -1
    # the writes of a row are collected in row_buf and priced per device when the row ends
    # (row_tally); the count is kept here, not in the buffer, so a write costs two stores
    at_old, at_new, at_u, cap = layout(row_buf, n_dev)
    held = 0
    cur = 0  # the open row's first slot
    # uniforms for stochastic rounding: write number n_drawn of a stream keyed once per
    # call (_uniform_at); drawn (one per write, shared by the devices) only when some device
    # reads them
    key = np.uint64(np.random.randint(1, 2**62)) if n_dev > 0 else np.uint64(1)
    n_drawn = 0
    draw_u = n_dev > 0 and draws_uniforms(row_buf)
    # the meter's sums run in locals (the same additions in the same order as into
    # meter_f, whose every write would otherwise be a store the next write must wait for)
    n_writes = meter_i[layer]
    m1 = meter_f[layer, MF_M1]
    m1_pot = meter_f[layer, MF_M1_POT]
    m_alpha = meter_f[layer, MF_MALPHA]
    for t in range(n_sel + 1):
        i = sel_i[t] if t < n_sel else -1
        if n_dev > 0 and (i != current_row or cur + held == cap):
            row_buf[0] = held
            held = 0
            if i == current_row:  # a row longer than the buffer: price what is held
                flush_writes(row_buf, hw_params, hw_stats, layer)
                cur = 0
            elif current_row >= 0:
                if records_full(row_buf, n_dev):
                    price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
                close_row(row_buf, n_dev, layer, row_n)
        if i != current_row:
            if t == n_sel:
                break
            current_row = i
            row_n = 0
            if n_dev > 0:
                if must_price_before(row_buf, n_dev, layer, w.shape[1]):
                    price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
                cur = begin_row(row_buf, layer)
        j = sel_j[t]
        # intended change in float64 for the meter; the float32 step is formed exactly as
        # in the fused dense update, so both paths give bit-identical weights
        dw64 = -lr * np.float64(pre[i]) * np.float64(post[j])
        if dw64 == 0.0:
            continue
        w_old = w[i, j]
        if in_loop_device >= 0:
            w_new = np.float32(device_write(hw_params[in_loop_device], np.float64(w_old), dw64,
                                            np.random.random(), np.random.standard_normal()))
            change = np.float64(w_new) - np.float64(w_old)
            if change == 0.0:
                # the device did not move: the attempt is tallied as a write that changed
                # nothing (a lost update), never as the change that was asked for
                row_buf[at_old + cur + held] = np.float64(w_old)
                row_buf[at_new + cur + held] = np.float64(w_old)
                if draw_u:
                    row_buf[at_u + cur + held] = np.random.random()
                held += 1
                continue
        else:
            w_new = w_old + np.float32(-lr32 * pre[i]) * post[j]
            change = dw64
        w[i, j] = w_new
        n_writes += 1
        m1 += abs(change)
        m1_pot += change if change > 0.0 else 0.0
        if alpha >= 0.0:
            m_alpha += abs(change) ** alpha
        counts[i, j] += 1
        row_n += 1
        if n_dev > 0:
            row_buf[at_old + cur + held] = np.float64(w_old)
            row_buf[at_new + cur + held] = np.float64(w_old) + change
            if draw_u:
                row_buf[at_u + cur + held] = _uniform_at(key, n_drawn)
                n_drawn += 1
            held += 1
    meter_i[layer] = n_writes
    meter_f[layer, MF_M1] = m1
    meter_f[layer, MF_M1_POT] = m1_pot
    meter_f[layer, MF_MALPHA] = m_alpha


@numba.njit(cache=True, inline="always")
def _hold_row(row_buf, at_u, held, key, n_drawn, draw_u):
    """Set the open row's write count to ``held`` and, when some device reads them, draw
    its writes' uniforms (write numbers n_drawn on, into slots from ``at_u``); returns the
    next write number. Takes the buffer alone: it runs every row (see row_tally)."""
    if draw_u:
        for t in range(held):  # one draw per write, in write order
            row_buf[_ix(at_u + t)] = _uniform_at(key, n_drawn + t)
    row_buf[0] = held
    return n_drawn + held if draw_u else n_drawn


@compiled_only(cache=True)
def _write_pair_rows(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i, meter_f,
                     counts, hw_params, hw_stats, row_buf):
    """:func:`_write_pairs_impl` for float weights and a buffer that holds a whole row:
    the same writes, meter sums (in the same order), buffered writes and uniforms, a row
    at a time (a tight loop over the row's columns, the row bookkeeping once per row)
    instead of testing for a new row at every write."""
    n_dev = hw_params.shape[0]
    lr32 = np.float32(lr)
    at_old, at_new, at_u, cap = layout(row_buf, n_dev)
    key = np.uint64(np.random.randint(1, 2**62)) if n_dev > 0 else np.uint64(1)
    n_drawn = 0
    draw_u = n_dev > 0 and draws_uniforms(row_buf)
    n_writes = meter_i[layer]
    m1 = meter_f[layer, MF_M1]
    m1_pot = meter_f[layer, MF_M1_POT]
    m_alpha = meter_f[layer, MF_MALPHA]
    t = 0
    while t < n_sel:
        i = sel_i[t]
        t_end = t + 1
        while t_end < n_sel and sel_i[t_end] == i:
            t_end += 1
        p = -lr * np.float64(pre[i])
        p32 = np.float32(-lr32 * pre[i])
        cur = 0
        if n_dev > 0:
            if must_price_before(row_buf, n_dev, layer, t_end - t):
                price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
            cur = begin_row(row_buf, layer)
        at_o = at_old + cur
        at_n = at_new + cur
        held = 0
        iu = _ix(i)
        for q in range(t, t_end):
            j = _ix(sel_j[q])  # unsigned: no test for a negative index on each array
            dw = p * np.float64(post[j])
            if dw == 0.0:
                continue
            w_old = w[iu, j]
            w[iu, j] = w_old + p32 * post[j]
            m1 += abs(dw)
            m1_pot += dw if dw > 0.0 else 0.0
            if alpha >= 0.0:
                m_alpha += abs(dw) ** alpha
            counts[iu, j] += 1
            row_buf[_ix(at_o + held)] = np.float64(w_old)
            row_buf[_ix(at_n + held)] = np.float64(w_old) + dw
            held += 1
        n_writes += held
        if n_dev > 0 and held > 0:
            n_drawn = _hold_row(row_buf, at_u + cur, held, key, n_drawn, draw_u)
            if records_full(row_buf, n_dev):
                price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
            close_row(row_buf, n_dev, layer, held)
        t = t_end
    meter_i[layer] = n_writes
    meter_f[layer, MF_M1] = m1
    meter_f[layer, MF_M1_POT] = m1_pot
    meter_f[layer, MF_MALPHA] = m_alpha


@numba.njit(cache=True, fastmath={"reassoc"})
def write_dense_priced(w, pre, post, lr, layer, alpha, meter_i, meter_f, counts, hw_params,
                       hw_stats, row_buf):
    """:func:`write_pairs` of every pair, row by row, with float weights and hardware
    tallies: the same weights, counts and tallies (the same uniforms in the same order) as
    ``_write_pairs_impl`` over all pairs, without its per-write row bookkeeping. A row whose
    changes are all nonzero but for the columns of zero error (the rule: leaky-ReLU errors,
    centred inputs, a clamped bias unit) is written, metered and copied into the row buffer
    in one vectorised loop per run of nonzero errors; the meter's sums are the same terms
    added in another order (~1e-16 relative). Other rows go write by write.
    ``row_buf`` must hold a whole row (``new_row_buffer(hw_params, n_out)`` or larger); the
    rows it leaves there are priced by the caller's ``row_tally.price_held``."""
    n_in, n_out = w.shape
    n_dev = hw_params.shape[0]
    lr32 = np.float32(lr)
    at_old, at_new, at_u, cap = layout(row_buf, n_dev)
    key = np.uint64(np.random.randint(1, 2**62)) if n_dev > 0 else np.uint64(1)
    n_drawn = 0
    draw_u = n_dev > 0 and draws_uniforms(row_buf)
    # the columns with post[j] != 0, as runs [seg[2 s], seg[2 s + 1]): a zero error (the
    # clamped bias unit's) must not send every row write by write. If |p| times the
    # smallest nonzero |post| is nonzero, so is every p * post[j] of the runs (rounding is
    # monotone)
    seg = np.empty(n_out + 1, np.int64)
    n_seg = 0
    min_post = np.inf
    for j in range(n_out):
        v = abs(np.float64(post[j]))
        if v != 0.0:
            min_post = min(min_post, v)
            if n_seg == 0 or seg[2 * n_seg - 1] != j:
                seg[2 * n_seg] = j
                n_seg += 1
            seg[2 * n_seg - 1] = j + 1
    n_writes = meter_i[layer]
    m1 = meter_f[layer, MF_M1]
    m1_pot = meter_f[layer, MF_M1_POT]
    m_alpha = meter_f[layer, MF_MALPHA]
    for i in range(n_in):
        p = -lr * np.float64(pre[i])
        if p == 0.0:
            continue
        p32 = np.float32(-lr32 * pre[i])
        held = 0
        if n_dev > 0 and must_price_before(row_buf, n_dev, layer, n_out):
            price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
        cur = begin_row(row_buf, layer)
        at_o = at_old + cur
        at_n = at_new + cur
        if abs(p) * min_post != 0.0:
            for s in range(n_seg):
                j0 = seg[2 * s]
                at_os = at_o + held - j0
                at_ns = at_n + held - j0
                for jj in range(j0, seg[2 * s + 1]):
                    j = _ix(jj)  # unsigned: no wrap-around select, contiguous vector loads
                    dw = p * np.float64(post[j])
                    w_old = w[i, j]
                    w[i, j] = w_old + p32 * post[j]
                    counts[i, j] += 1
                    m1 += abs(dw)
                    m1_pot += dw if dw > 0.0 else 0.0
                    row_buf[_ix(at_os + jj)] = np.float64(w_old)
                    row_buf[_ix(at_ns + jj)] = np.float64(w_old) + dw
                if alpha >= 0.0:
                    for jj in range(j0, seg[2 * s + 1]):
                        m_alpha += abs(p * np.float64(post[_ix(jj)])) ** alpha
                held += seg[2 * s + 1] - j0
        else:
            for j in range(n_out):
                dw = p * np.float64(post[j])
                if dw == 0.0:
                    continue
                w_old = w[i, j]
                w[i, j] = w_old + p32 * post[j]
                counts[i, j] += 1
                m1 += abs(dw)
                m1_pot += dw if dw > 0.0 else 0.0
                if alpha >= 0.0:
                    m_alpha += abs(dw) ** alpha
                row_buf[_ix(at_o + held)] = np.float64(w_old)
                row_buf[_ix(at_n + held)] = np.float64(w_old) + dw
                held += 1
        n_writes += held
        if n_dev > 0 and held > 0:
            n_drawn = _hold_row(row_buf, at_u + cur, held, key, n_drawn, draw_u)
            if records_full(row_buf, n_dev):
                price_rows(row_buf, hw_params, hw_stats, np.bool_(False))
            close_row(row_buf, n_dev, layer, held)
    meter_i[layer] = n_writes
    meter_f[layer, MF_M1] = m1
    meter_f[layer, MF_M1_POT] = m1_pot
    meter_f[layer, MF_MALPHA] = m_alpha


@numba.njit(cache=True)
def meter_dense_closed_form(pre, post, lr, layer, meter_i, meter_f):
    """Meter a full outer-product update without visiting it: sum |dw| = lr sum|pre| sum|post|,
    the positive part from the sign-split sums, and the count from nonzero factors.
    Returns the number of nonzero entries of ``pre`` (the rows written)."""
    sp = 0.0
    sn = 0.0
    nz_pre = 0
    for i in range(pre.shape[0]):  # branch-free: the signs are random
        v = np.float64(pre[i])
        sp += max(v, 0.0)
        sn += max(-v, 0.0)
        nz_pre += v != 0.0
    tp = 0.0
    tn = 0.0
    nz_post = 0
    for j in range(post.shape[0]):
        v = np.float64(post[j])
        tp += max(v, 0.0)
        tn += max(-v, 0.0)
        nz_post += v != 0.0
    meter_i[layer] += nz_pre * nz_post
    meter_f[layer, MF_M1] += lr * (sp + sn) * (tp + tn)
    # dw = -lr pre post is positive where pre and post have opposite signs
    meter_f[layer, MF_M1_POT] += lr * (sp * tn + sn * tp)
    return nz_pre
