"""Compiled helpers of the general kernel: metered writes, selections, and update buffers.

Weights, buffers, masks and write counts of every layer live in flat 1-D arrays; layer ``l``
is the (rows, cols) block starting at ``off``, row-major, so synapse (i, j) is at
``off + i * cols + j``. Every write goes through :func:`commit`, which meters it exactly as
``kernels.write_pairs`` does (M0, M1, potentiation-only M1, M_alpha, per-synapse count) and
collects the hardware tallies of each row, priced on every device when the row ends.

References for the selections live with the rules (``neuroenergy/rules_extended.py``); the
slow numpy references are in ``tests/reference_extended.py``.
"""
import math

import numba
import numpy as np

from hardware_models.tally import device_write

from .general_codes import (BF_CHANGE, BF_MAINTENANCE, SCOPE_LAYER, SCOPE_NEURON,
                            SCOPE_SYNAPSE, SCOPE_TOP)
from .kernels import MF_M1, MF_M1_POT, MF_MALPHA
from .row_tally import draws_uniforms, end_row, push_write


@numba.njit(cache=True)
def n_writes(fraction, n_plastic):
    """ceil(p n), at least 1; -1 (all) for p >= 1 - as ``rules.writes_per_sample``."""
    if fraction >= 1.0:
        return -1
    return max(1, int(math.ceil(fraction * n_plastic - 1e-9)))


@numba.njit(cache=True)
def commit(w, q, step32, change64, layer, alpha, meter_i, meter_f, counts, hw_params,
           hw_stats, in_loop, row_buf):
    """Write synapse ``q``: w[q] += step32 (float weights) or what the in-loop device does.

    ``change64`` is the intended change in float64, the value metered. Returns the change
    that happened (0.0: the device did not move; the attempt is still tallied, as a write
    that changed nothing, like ``kernels.write_pairs``). The hardware tallies are collected
    in ``row_buf`` (``row_tally.new_row_buffer``) and priced when the row ends.
    """
    n_dev = hw_params.shape[0]
    w_old = w[q]
    if in_loop >= 0:
        w_new = np.float32(device_write(hw_params[in_loop], np.float64(w_old), change64,
                                        np.random.random(), np.random.standard_normal()))
        change = np.float64(w_new) - np.float64(w_old)
        if change == 0.0:
            at = push_write(row_buf, hw_params, hw_stats, layer, np.float64(w_old),
                            np.float64(w_old))
            if draws_uniforms(row_buf):
                row_buf[at] = np.random.random()
            return 0.0
    else:
        w_new = w_old + step32
        change = change64
    w[q] = w_new
    meter_i[layer] += 1
    meter_f[layer, MF_M1] += abs(change)
    if change > 0.0:
        meter_f[layer, MF_M1_POT] += change
    if alpha >= 0.0:
        meter_f[layer, MF_MALPHA] += abs(change) ** alpha
    counts[q] += 1
    if n_dev > 0:
        at = push_write(row_buf, hw_params, hw_stats, layer, np.float64(w_old),
                        np.float64(w_old) + change)
        if draws_uniforms(row_buf):
            row_buf[at] = np.random.random()
    return change


@numba.njit(cache=True, inline="always")
def plain(hw_params, in_loop, alpha):
    """No hardware tallies, float weights, no extra exponent: writes need no per-write calls
    (the energy sums are then accumulated per call, in a different order)."""
    return hw_params.shape[0] == 0 and in_loop < 0 and alpha < 0.0


@numba.njit(cache=True)
def write_rows(w, counts, mask, off, n_cols, pre, post, lr, rows, n_rows, cols, n_act,
               layer, alpha, meter_i, meter_f, hw_params, hw_stats, in_loop, row_buf):
    """dw = -lr pre[i] post[j] for every listed row x listed column (where ``mask`` is set,
    if a mask is given); zero changes are not writes."""
    lr32 = np.float32(lr)
    use_mask = mask.shape[0] > 0
    if plain(hw_params, in_loop, alpha):
        n_w = 0
        m1 = 0.0
        pot = 0.0
        for t in range(n_rows):
            i = rows[t]
            c = np.float32(-lr32 * pre[i])
            p64 = -lr * np.float64(pre[i])
            base = off + i * n_cols
            for u in range(n_act):
                j = cols[u]
                if use_mask and mask[base + j] == 0:
                    continue
                dw64 = p64 * np.float64(post[j])
                if dw64 == 0.0:
                    continue
                w[base + j] += c * post[j]
                counts[base + j] += 1
                n_w += 1
                m1 += abs(dw64)
                if dw64 > 0.0:
                    pot += dw64
        meter_i[layer] += n_w
        meter_f[layer, MF_M1] += m1
        meter_f[layer, MF_M1_POT] += pot
        return
    for t in range(n_rows):
        i = rows[t]
        c = np.float32(-lr32 * pre[i])
        base = off + i * n_cols
        row_n = 0
        for u in range(n_act):
            j = cols[u]
            if use_mask and mask[base + j] == 0:
                continue
            dw64 = -lr * np.float64(pre[i]) * np.float64(post[j])
            if dw64 == 0.0:
                continue
            if commit(w, base + j, c * post[j], dw64, layer, alpha, meter_i, meter_f, counts,
                      hw_params, hw_stats, in_loop, row_buf) != 0.0:
                row_n += 1
        end_row(row_buf, hw_params, hw_stats, layer, row_n)


@numba.njit(cache=True)
def write_list(w, counts, off, n_cols, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha,
               meter_i, meter_f, hw_params, hw_stats, in_loop, row_buf):
    """dw = -lr pre[i] post[j] for the listed pairs (grouped by row, rows ascending)."""
    lr32 = np.float32(lr)
    if plain(hw_params, in_loop, alpha):
        n_w = 0
        m1 = 0.0
        pot = 0.0
        for t in range(n_sel):
            i = sel_i[t]
            j = sel_j[t]
            dw64 = -lr * np.float64(pre[i]) * np.float64(post[j])
            if dw64 == 0.0:
                continue
            q = off + i * n_cols + j
            w[q] += np.float32(-lr32 * pre[i]) * post[j]
            counts[q] += 1
            n_w += 1
            m1 += abs(dw64)
            if dw64 > 0.0:
                pot += dw64
        meter_i[layer] += n_w
        meter_f[layer, MF_M1] += m1
        meter_f[layer, MF_M1_POT] += pot
        return
    current = -1
    row_n = 0
    for t in range(n_sel):
        i = sel_i[t]
        if i != current:
            if current >= 0:
                end_row(row_buf, hw_params, hw_stats, layer, row_n)
            current = i
            row_n = 0
        j = sel_j[t]
        dw64 = -lr * np.float64(pre[i]) * np.float64(post[j])
        if dw64 == 0.0:
            continue
        step = np.float32(-lr32 * pre[i]) * post[j]
        if commit(w, off + i * n_cols + j, step, dw64, layer, alpha, meter_i, meter_f, counts,
                  hw_params, hw_stats, in_loop, row_buf) != 0.0:
            row_n += 1
    if current >= 0:
        end_row(row_buf, hw_params, hw_stats, layer, row_n)


N_KEY_BINS = 1 << 15  # the top 15 bits of a non-negative float32's bit pattern


@numba.njit(cache=True)
def topk_flat(vals, k, out):
    """Indices of the k largest positive ``vals`` (float32) in ascending order (ties at the
    threshold: lowest index first); all positive ones if k < 0 or fewer exist. Returns their
    number.

    Method: the bit pattern of a non-negative float32 grows with its value, so a histogram
    of its top 15 bits finds the bin that holds the k-th largest; only that bin is
    partitioned exactly.
    """
    n = vals.shape[0]
    bits = vals.view(np.uint32)
    hist = np.zeros(N_KEY_BINS, np.int64)
    n_pos = 0
    for t in range(n):
        if vals[t] > 0.0:
            hist[bits[t] >> 16] += 1
            n_pos += 1
    if k == 0:
        return 0
    if k < 0 or k >= n_pos:
        m = 0
        for t in range(n):
            if vals[t] > 0.0:
                out[m] = t
                m += 1
        return m
    cum = 0
    kb = 0
    for b in range(N_KEY_BINS - 1, -1, -1):
        if cum + hist[b] >= k:
            kb = b
            break
        cum += hist[b]
    cand = np.empty(hist[kb], np.float32)
    m = 0
    for t in range(n):
        if vals[t] > 0.0 and (bits[t] >> 16) == kb:
            cand[m] = vals[t]
            m += 1
    need = k - cum
    threshold = -np.partition(-cand, need - 1)[need - 1]
    above = cum
    for t in range(m):
        if cand[t] > threshold:
            above += 1
    ties = k - above
    m = 0
    for t in range(n):
        v = vals[t]
        if v > threshold or (v == threshold and ties > 0):
            if v == threshold:
                ties -= 1
            out[m] = t
            m += 1
    return m


@numba.njit(cache=True)
def abs_sum(x, start, stop):
    """sum |x[start:stop]| in float64, in eight interleaved partial sums (a fixed order)."""
    acc = np.zeros(8)
    n8 = start + (stop - start) // 8 * 8
    for t in range(start, n8, 8):
        for u in range(8):
            acc[u] += abs(np.float64(x[t + u]))
    total = 0.0
    for t in range(n8, stop):
        total += abs(np.float64(x[t]))
    for u in range(8):
        total += acc[u]
    return total


@numba.njit(cache=True)
def top_rows(pre, rows, n_rows, m, out):
    """Of the listed rows, the m with the largest |pre| (ties: lower index), ascending."""
    if m < 0 or m >= n_rows:
        for t in range(n_rows):
            out[t] = rows[t]
        return n_rows
    key = np.empty(n_rows)
    for t in range(n_rows):
        key[t] = -abs(np.float64(pre[rows[t]]))
    order = np.argsort(key, kind="mergesort")
    for t in range(m):
        out[t] = rows[order[t]]
    out[:m].sort()
    return m


# ----------------------------------------------------------------------------- update buffers

@numba.njit(cache=True)
def _consolidate(w, s, q, layer, alpha, meter_i, meter_f, counts, hw_params, hw_stats,
                 in_loop, row_buf):
    """Move the buffer of synapse q into its weight; the buffer keeps what was not written."""
    change = commit(w, q, s[q], np.float64(s[q]), layer, alpha, meter_i, meter_f, counts,
                    hw_params, hw_stats, in_loop, row_buf)
    if in_loop >= 0:
        s[q] = s[q] - np.float32(change)
    else:
        s[q] = np.float32(0.0)
    return change != 0.0


@numba.njit(cache=True)
def buffer_layer(w, s, counts, off, n_rows_all, n_cols, pre, post, lr, rows, n_rows, cols,
                 n_act, active, decay, theta, scope, k, c_maint, b_change, layer, alpha,
                 meter_i, meter_f, buf_f, hw_params, hw_stats, in_loop, row_buf, vals, idx,
                 col_flag):
    """One sample of a buffered layer, in this order: decay the buffer, add this sample's
    updates (if ``active``), consolidate what the scope selects, charge maintenance on what
    remains. ``k`` is the number to consolidate for ``SCOPE_TOP`` (-1: all nonzero)."""
    size = n_rows_all * n_cols
    if decay < 1.0:
        d32 = np.float32(decay)
        for t in range(size):
            s[off + t] *= d32
    if active:
        lr32 = np.float32(lr)
        sum_pre = 0.0
        for t in range(n_rows):
            i = rows[t]
            sum_pre += abs(np.float64(pre[i]))
            c = np.float32(-lr32 * pre[i])
            base = off + i * n_cols
            for u in range(n_act):
                j = cols[u]
                s[base + j] += c * post[j]
        sum_post = 0.0
        for u in range(n_act):
            sum_post += abs(np.float64(post[cols[u]]))
        # sum over the pairs of |lr pre_i post_j|, in closed form
        buf_f[layer, BF_CHANGE] += b_change * lr * sum_pre * sum_post
    if scope == SCOPE_TOP:
        for t in range(size):
            vals[t] = abs(s[off + t])
        m = topk_flat(vals[:size], k, idx)
        current = -1
        row_n = 0
        for t in range(m):
            i = idx[t] // n_cols
            if i != current:
                if current >= 0:
                    end_row(row_buf, hw_params, hw_stats, layer, row_n)
                current = i
                row_n = 0
            if _consolidate(w, s, off + idx[t], layer, alpha, meter_i, meter_f, counts,
                            hw_params, hw_stats, in_loop, row_buf):
                row_n += 1
        if current >= 0:
            end_row(row_buf, hw_params, hw_stats, layer, row_n)
    else:
        whole = False
        for j in range(n_cols):
            col_flag[j] = 0
        if scope == SCOPE_NEURON or scope == SCOPE_LAYER:
            for i in range(n_rows_all):
                base = off + i * n_cols
                for j in range(n_cols):
                    if abs(np.float64(s[base + j])) > theta:
                        col_flag[j] = 1
                        whole = True
        elif scope != SCOPE_SYNAPSE:
            raise ValueError("unknown consolidation scope")
        for i in range(n_rows_all):
            base = off + i * n_cols
            row_n = 0
            for j in range(n_cols):
                v = s[base + j]
                if v == 0.0:
                    continue
                if scope == SCOPE_SYNAPSE:
                    go = abs(np.float64(v)) > theta
                elif scope == SCOPE_NEURON:
                    go = col_flag[j] == 1
                else:
                    go = whole
                if go and _consolidate(w, s, base + j, layer, alpha, meter_i, meter_f, counts,
                                       hw_params, hw_stats, in_loop, row_buf):
                    row_n += 1
            end_row(row_buf, hw_params, hw_stats, layer, row_n)
    if c_maint > 0.0:
        buf_f[layer, BF_MAINTENANCE] += c_maint * abs_sum(s, off, off + size)
