"""The compiled per-sample SGD loop over one chunk of samples (see ``kernels.py`` for the
plastic-part convention and the metered writes).

Per sample: forward with the current weights, output error, hidden error (from the output
weights *before* this sample's update, and independent of which updates are then applied),
then each layer writes either every synapse or its k largest updates.

Speed: a dense input-layer update is not applied at once; it is folded into the next sample's
forward pass (each row of ``w1`` is updated and then read while still in cache), so the matrix
streams through memory once per sample. Its M0 / M1 come in closed form. Results are the same
as applying it at once, bit for bit.
"""
import numba
import numpy as np

from .kernels import (MF_MALPHA, STATUS_DIVERGED, STATUS_OK, _activation, _activation_slope,
                      meter_dense_closed_form, output_error, topk_outer, write_pairs)


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
def train_chunk(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code,
                lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2,
                hw_params, hw_stats, in_loop_device, seed):
    """Train on ``x[sample_idx]`` one sample at a time.

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
    np.random.seed(seed)
    n_in, kp = w1.shape
    n_out = w2.shape[1]
    n_dev = hw_params.shape[0]
    use_offset = offset.shape[0] > 0
    lr1_32 = np.float32(lr1)
    fused = k1 < 0 and n_dev == 0 and in_loop_device < 0 and alpha < 0.0

    a = np.zeros(kp, np.float32)
    h = np.zeros(kp, np.float32)
    z = np.zeros(n_out)
    delta_out = np.zeros(n_out)
    post2 = np.zeros(n_out, np.float32)
    dh = np.zeros(kp, np.float32)
    x_prev = np.zeros(n_in, np.float32)
    dh_prev = np.zeros(kp, np.float32)
    nz_prev = np.zeros(kp, np.int32)
    pending = False

    size1 = n_in * kp if not fused else 1
    size2 = kp * n_out
    sel1_i = np.empty(size1, np.int64)
    sel1_j = np.empty(size1, np.int64)
    sel2_i = np.empty(size2, np.int64)
    sel2_j = np.empty(size2, np.int64)
    need_cand1 = k1 >= 0
    cand_s = np.empty(max(size1 if need_cand1 else 1, size2))
    cand_i = np.empty(cand_s.shape[0], np.int64)
    cand_j = np.empty(cand_s.shape[0], np.int64)
    abs_pre = np.empty(max(n_in, kp))
    abs_post = np.empty(max(kp, n_out))
    all1 = _fill_all_pairs(n_in, kp, sel1_i, sel1_j) if (k1 < 0 and not fused) else 0
    all2 = _fill_all_pairs(kp, n_out, sel2_i, sel2_j) if k2 < 0 else 0

    for s in range(sample_idx.shape[0]):
        row = sample_idx[s]
        xs = x[row]
        # forward through the input layer, folding in the previous sample's dense update
        a[:] = 0.0
        for i in range(n_in):
            if pending:
                c = np.float32(-lr1_32 * x_prev[i])
                if c != 0.0:
                    for j in range(kp):
                        w1[i, j] += c * dh_prev[j]
                        counts1[i, j] += nz_prev[j]
            xi = xs[i]
            for j in range(kp):
                a[j] += xi * w1[i, j]
        pending = False
        for j in range(kp):
            h[j] = np.float32(1.0) if clamped[j] else np.float32(_activation(a[j], act_code, leak))
        for o in range(n_out):
            z[o] = offset[row, o] if use_offset else 0.0
        for j in range(kp):
            hj = np.float64(h[j])
            for o in range(n_out):
                z[o] += hj * np.float64(w2[j, o])
        if not output_error(z, y[row], loss_code, delta_out):
            return s, STATUS_DIVERGED
        for o in range(n_out):
            post2[o] = np.float32(delta_out[o])
        # hidden error from the output weights before this sample changes them
        for j in range(kp):
            if clamped[j]:
                dh[j] = 0.0
            else:
                back = 0.0
                for o in range(n_out):
                    back += np.float64(w2[j, o]) * np.float64(post2[o])
                dh[j] = np.float32(_activation_slope(a[j], h[j], act_code, leak) * back)

        # output layer writes
        if k2 < 0:
            n2 = all2
        else:
            for j in range(kp):
                abs_pre[j] = abs(np.float64(h[j]))
            for o in range(n_out):
                abs_post[o] = abs(np.float64(post2[o]))
            n2 = topk_outer(abs_pre[:kp], abs_post[:n_out], k2, sel2_i, sel2_j,
                            cand_s, cand_i, cand_j)
        write_pairs(w2, h, post2, lr2, sel2_i, sel2_j, n2, 1, alpha, meter_i, meter_f,
                    counts2, hw_params, hw_stats, in_loop_device)

        # input layer writes
        if fused:
            meter_dense_closed_form(xs, dh, lr1, 0, meter_i, meter_f)
            x_prev[:] = xs
            for j in range(kp):
                dh_prev[j] = dh[j]
                nz_prev[j] = 1 if dh[j] != 0.0 else 0
            pending = True
        else:
            if k1 < 0:
                n1 = all1
            else:
                for i in range(n_in):
                    abs_pre[i] = abs(np.float64(xs[i]))
                for j in range(kp):
                    abs_post[j] = abs(np.float64(dh[j]))
                n1 = topk_outer(abs_pre[:n_in], abs_post[:kp], k1, sel1_i, sel1_j,
                                cand_s, cand_i, cand_j)
            write_pairs(w1, xs, dh, lr1, sel1_i, sel1_j, n1, 0, alpha, meter_i, meter_f,
                        counts1, hw_params, hw_stats, in_loop_device)

    if pending:  # flush the last dense update
        for i in range(n_in):
            c = np.float32(-lr1_32 * x_prev[i])
            if c != 0.0:
                for j in range(kp):
                    w1[i, j] += c * dh_prev[j]
                    counts1[i, j] += nz_prev[j]
    return sample_idx.shape[0], STATUS_OK
