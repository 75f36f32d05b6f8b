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

from hardware_models.tally import device_write, tally_row, tally_write

ACT_LEAKY_RELU, ACT_RELU, ACT_SIGMOID = 0, 1, 2
LOSS_MSE, LOSS_SOFTMAX_CE = 0, 1
STATUS_OK, STATUS_DIVERGED = 0, 1
# meter_f columns: summed |dw| (M1), summed positive dw (potentiation-only M1), sum |dw|^alpha
MF_M1, MF_M1_POT, MF_MALPHA = 0, 1, 2
N_METER_F = 3
N_TOPK_BINS = 64


@numba.njit(cache=True, inline="always")
def _activation(a, code, leak):
    if code == ACT_LEAKY_RELU:
        return a if a > 0.0 else leak * a
    elif code == ACT_RELU:
        return a if a > 0.0 else 0.0
    return 1.0 / (1.0 + math.exp(-a))


@numba.njit(cache=True, inline="always")
def _activation_slope(a, h, code, leak):
    if code == ACT_LEAKY_RELU:
        return 1.0 if a > 0.0 else leak
    elif code == ACT_RELU:
        return 1.0 if a > 0.0 else 0.0
    return h * (1.0 - h)


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

    Products of zero are never selected. Fills ``sel_i`` / ``sel_j`` with the selected pairs,
    grouped by row in ascending row order, and returns their number (min(k, nonzero pairs)).
    ``cand_*`` are scratch buffers of size len(a) * len(b).

    Method: bin log2 a and log2 b with one common width w; a pair in bins (ia, ib) lies in the
    band [c w, (c + 2) w) with c = ia + ib (plus rounding slack). Band counts are a convolution
    of the two histograms; bands well above the k-th value are taken whole, bands well below
    are dropped, and only the few bands around the threshold are compared exactly.
    """
    m = a.shape[0]
    n = b.shape[0]
    nza = 0
    nzb = 0
    lo_a = np.inf
    hi_a = -np.inf
    lo_b = np.inf
    hi_b = -np.inf
    la = np.empty(m)
    lb = np.empty(n)
    for i in range(m):
        if a[i] > 0.0:
            nza += 1
            la[i] = math.log2(a[i])
            lo_a = min(lo_a, la[i])
            hi_a = max(hi_a, la[i])
    for j in range(n):
        if b[j] > 0.0:
            nzb += 1
            lb[j] = math.log2(b[j])
            lo_b = min(lo_b, lb[j])
            hi_b = max(hi_b, lb[j])
    if k <= 0 or nza == 0 or nzb == 0:
        return 0
    nbins = N_TOPK_BINS
    width = max(hi_a - lo_a, hi_b - lo_b) / nbins
    if width <= 0.0:
        width = 1.0
    width *= 1.0 + 1e-9  # keep the largest value inside the last bin
    bin_a = np.full(m, -1, np.int64)
    bin_b = np.full(n, -1, np.int64)
    hist_a = np.zeros(nbins, np.int64)
    hist_b = np.zeros(nbins, np.int64)
    for i in range(m):
        if a[i] > 0.0:
            q = min(int((la[i] - lo_a) / width), nbins - 1)
            bin_a[i] = q
            hist_a[q] += 1
    for j in range(n):
        if b[j] > 0.0:
            q = min(int((lb[j] - lo_b) / width), nbins - 1)
            bin_b[j] = q
            hist_b[q] += 1
    n_bands = 2 * nbins - 1
    band = np.zeros(n_bands, np.int64)
    for ia in range(nbins):
        if hist_a[ia] > 0:
            for ib in range(nbins):
                band[ia + ib] += hist_a[ia] * hist_b[ib]
    # c1: the highest band whose cumulative count from the top reaches k
    total = 0
    c1 = -1
    for c in range(n_bands - 1, -1, -1):
        total += band[c]
        if total >= k:
            c1 = c
            break
    if c1 < 0:  # fewer nonzero pairs than k: take them all
        c_take = 0
        c_cand = 0
    else:
        c_take = c1 + 3   # bands >= c_take are certainly in the top k
        c_cand = c1 - 2   # bands in [c_cand, c_take) are compared exactly
    # columns grouped by bin (counting sort), so each (row bin, column bin) block is a slice
    col_start = np.zeros(nbins + 1, np.int64)
    for q in range(nbins):
        col_start[q + 1] = col_start[q] + hist_b[q]
    col_fill = col_start[:-1].copy()
    col_order = np.empty(nzb, np.int64)
    for j in range(n):
        if bin_b[j] >= 0:
            col_order[col_fill[bin_b[j]]] = j
            col_fill[bin_b[j]] += 1
    n_take = 0
    n_cand = 0
    for i in range(m):
        ia = bin_a[i]
        if ia < 0:
            continue
        for ib in range(nbins - 1, -1, -1):
            c = ia + ib
            if c < c_cand:
                break
            for t in range(col_start[ib], col_start[ib + 1]):
                j = col_order[t]
                if c >= c_take:
                    sel_i[n_take] = i
                    sel_j[n_take] = j
                    n_take += 1
                else:
                    cand_s[n_cand] = a[i] * b[j]
                    cand_i[n_cand] = i
                    cand_j[n_cand] = j
                    n_cand += 1
    need = min(k, n_take + n_cand) - n_take
    if need > 0:
        if need < n_cand:
            # the need-th largest candidate score is the exact threshold
            threshold = -np.partition(-cand_s[:n_cand], need - 1)[need - 1]
            taken = 0
            for t in range(n_cand):  # strictly above first, then ties in scan order
                if cand_s[t] > threshold:
                    sel_i[n_take + taken] = cand_i[t]
                    sel_j[n_take + taken] = cand_j[t]
                    taken += 1
            for t in range(n_cand):
                if taken >= need:
                    break
                if cand_s[t] == threshold:
                    sel_i[n_take + taken] = cand_i[t]
                    sel_j[n_take + taken] = cand_j[t]
                    taken += 1
        else:
            for t in range(n_cand):
                sel_i[n_take + t] = cand_i[t]
                sel_j[n_take + t] = cand_j[t]
    n_sel = n_take + max(need, 0)
    _group_by_row(sel_i, sel_j, n_sel, m)
    return n_sel


@numba.njit(cache=True)
def _group_by_row(sel_i, sel_j, n_sel, m):
    """Stable counting sort of the first n_sel pairs by row index."""
    counts = np.zeros(m + 1, np.int64)
    for t in range(n_sel):
        counts[sel_i[t] + 1] += 1
    for r in range(m):
        counts[r + 1] += counts[r]
    out_i = np.empty(n_sel, np.int64)
    out_j = np.empty(n_sel, np.int64)
    for t in range(n_sel):
        r = sel_i[t]
        out_i[counts[r]] = r
        out_j[counts[r]] = sel_j[t]
        counts[r] += 1
    sel_i[:n_sel] = out_i
    sel_j[:n_sel] = out_j


# ----------------------------------------------------------------------------- metered writes

@numba.njit(cache=True)
def write_pairs(w, pre, post, lr, sel_i, sel_j, n_sel, layer, alpha, meter_i, meter_f,
                counts, hw_params, hw_stats, in_loop_device):
    """Apply dw[i, j] = -lr * pre[i] * post[j] to the listed synapses (grouped by row) and
    meter every write. Zero changes are not writes. Returns nothing; updates in place."""
    n_dev = hw_params.shape[0]
    lr32 = np.float32(lr)
    row_max = np.zeros(max(n_dev, 1))
    row_n = 0
    current_row = -1
    for t in range(n_sel + 1):
        i = sel_i[t] if t < n_sel else -1
        if i != current_row:
            if current_row >= 0 and row_n > 0:
                for d in range(n_dev):
                    tally_row(hw_params[d], hw_stats[layer, d], row_n, row_max[d])
            if t == n_sel:
                break
            current_row = i
            row_n = 0
            for d in range(n_dev):
                row_max[d] = 0.0
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
                for d in range(n_dev):
                    tally_write(hw_params[d], hw_stats[layer, d], np.float64(w_old),
                                np.float64(w_old), np.random.random())
                continue
        else:
            w_new = w_old + np.float32(-lr32 * pre[i]) * post[j]
            change = dw64
        w[i, j] = w_new
        meter_i[layer] += 1
        meter_f[layer, MF_M1] += abs(change)
        if change > 0.0:
            meter_f[layer, MF_M1_POT] += change
        if alpha >= 0.0:
            meter_f[layer, MF_MALPHA] += abs(change) ** alpha
        counts[i, j] += 1
        row_n += 1
        for d in range(n_dev):
            size = tally_write(hw_params[d], hw_stats[layer, d], np.float64(w_old),
                               np.float64(w_old) + change, np.random.random())
            row_max[d] = max(row_max[d], size)


@numba.njit(cache=True)
def meter_dense_closed_form(pre, post, lr, layer, meter_i, meter_f):
    """Meter a full outer-product update without visiting it: sum |dw| = lr sum|pre| sum|post|,
    the positive part from the sign-split sums, and the count from nonzero factors."""
    sp = 0.0
    sn = 0.0
    nz_pre = 0
    for i in range(pre.shape[0]):
        v = np.float64(pre[i])
        if v > 0.0:
            sp += v
        else:
            sn -= v
        if v != 0.0:
            nz_pre += 1
    tp = 0.0
    tn = 0.0
    nz_post = 0
    for j in range(post.shape[0]):
        v = np.float64(post[j])
        if v > 0.0:
            tp += v
        else:
            tn -= v
        if v != 0.0:
            nz_post += 1
    meter_i[layer] += nz_pre * nz_post
    meter_f[layer, MF_M1] += lr * (sp + sn) * (tp + tn)
    # dw = -lr pre post is positive where pre and post have opposite signs
    meter_f[layer, MF_M1_POT] += lr * (sp * tn + sn * tp)
