"""Slow, obviously-correct numpy references for the compiled kernels.

Every kernel in ``neuroenergy.kernels`` / ``neuroenergy.sgd_kernel`` has a counterpart here that
says what it computes in the plainest way: form the whole outer product, sort it, apply every
update at once. Tests compare the two over many shapes and seeds.

The references mirror the kernels' floating-point recipe only where the recipe *is* the
specification (float32 forward accumulation in input order, float64 output sums in hidden-unit
order, the float32 weight step), so that weights can be compared bit for bit. Energy sums are
formed in whatever order is most obvious; tests compare them with a relative tolerance.
"""
import math

import numpy as np

from neuroenergy.kernels import (ACT_LEAKY_RELU, ACT_RELU, ACT_SIGMOID, LOSS_MSE,
                                 LOSS_SOFTMAX_CE, MF_M1, MF_M1_POT, MF_MALPHA, STATUS_DIVERGED,
                                 STATUS_OK)

F32 = np.float32
F64 = np.float64


# ----------------------------------------------------------------------------- top-k selection

def topk_outer_ref(a, b, k):
    """The k largest products a[i] * b[j] > 0, by forming and sorting the whole matrix.

    Returns ``(sel_i, sel_j, values)``: pairs in row-major order of the matrix, and the sorted
    (descending) multiset of the k largest nonzero products. With ties at the threshold any
    choice among the tied pairs is correct, so the values are the thing to compare; the pairs
    returned break ties by row-major position.
    """
    a = np.asarray(a, F64)
    b = np.asarray(b, F64)
    prod = np.outer(a, b)  # prod[i, j] = a[i] * b[j], the same float64 product as the kernel's
    flat = prod.ravel()
    nonzero = np.flatnonzero(flat > 0.0)
    n_take = max(0, min(int(k), nonzero.size))
    # stable sort on -value: ties keep row-major order
    order = nonzero[np.argsort(-flat[nonzero], kind="stable")][:n_take]
    order = np.sort(order)
    sel_i, sel_j = np.divmod(order, b.size)
    values = np.sort(flat[order])[::-1]
    return sel_i.astype(np.int64), sel_j.astype(np.int64), values


# ----------------------------------------------------------------------------- network pieces

def activation_ref(a, code, leak):
    """h = act(a) for a float32 vector: computed in float64 from the float32 value, rounded
    to float32 (sigmoid uses exp of the float32 argument)."""
    a64 = a.astype(F64)
    if code == ACT_LEAKY_RELU:
        h = np.where(a64 > 0.0, a64, leak * a64)
    elif code == ACT_RELU:
        h = np.where(a64 > 0.0, a64, 0.0)
    elif code == ACT_SIGMOID:
        h = np.array([1.0 / (1.0 + math.exp(-float(v))) for v in a64])
    else:
        raise ValueError(code)
    return h.astype(F32)


def activation_slope_ref(a, h, code, leak):
    """g'(a) as float64: 1 / leak (leaky ReLU), 1 / 0 (ReLU), h (1 - h) (sigmoid)."""
    if code == ACT_LEAKY_RELU:
        return np.where(a > 0.0, 1.0, leak)
    elif code == ACT_RELU:
        return np.where(a > 0.0, 1.0, 0.0)
    elif code == ACT_SIGMOID:
        h64 = h.astype(F64)
        return h64 * (1.0 - h64)
    raise ValueError(code)


def output_error_ref(z, label, loss_code):
    """dLoss/dz: z - onehot (squared error) or softmax(z) - onehot (cross-entropy); None if z
    is not finite."""
    if not np.all(np.isfinite(z)):
        return None
    onehot = np.zeros(z.size)
    onehot[label] = 1.0
    if loss_code == LOSS_MSE:
        return z - onehot
    elif loss_code == LOSS_SOFTMAX_CE:
        e = np.array([math.exp(float(v) - float(z.max())) for v in z])
        return e / e.sum() - onehot
    raise ValueError(loss_code)


def forward_ref(xs, w1, clamped, act_code, leak):
    """Input-layer forward of one sample: a = x @ w1 accumulated in float32 in input order."""
    a = np.zeros(w1.shape[1], F32)
    for i in range(w1.shape[0]):
        a += xs[i] * w1[i]
    h = activation_ref(a, act_code, leak)
    h[clamped] = F32(1.0)
    return a, h


def select_pairs_ref(pre, post, k):
    """Pairs (i, j) a layer writes: every pair with a nonzero intended change (k < 0), else
    the k largest |pre_i| |post_j|."""
    if k < 0:
        ii, jj = np.nonzero(np.outer(pre.astype(F64), post.astype(F64)) != 0.0)
        return ii, jj
    sel_i, sel_j, _ = topk_outer_ref(np.abs(pre.astype(F64)), np.abs(post.astype(F64)), k)
    return sel_i, sel_j


def write_ref(w, pre, post, lr, sel_i, sel_j, layer, alpha, meter_i, meter_f, counts):
    """Apply dw = -lr pre_i post_j to the listed synapses, meter them (in place).

    The weight step is float32: float32(float32(-lr) * pre_i) * post_j. The meter uses the
    intended change in float64; zero changes are not writes.
    """
    dw64 = -lr * pre[sel_i].astype(F64) * post[sel_j].astype(F64)
    keep = dw64 != 0.0
    si, sj, dw64 = sel_i[keep], sel_j[keep], dw64[keep]
    step = (-F32(lr) * pre[si]).astype(F32) * post[sj]
    w[si, sj] = w[si, sj] + step
    meter_i[layer] += si.size
    meter_f[layer, MF_M1] += np.abs(dw64).sum()
    meter_f[layer, MF_M1_POT] += dw64[dw64 > 0.0].sum()
    if alpha >= 0.0:
        meter_f[layer, MF_MALPHA] += (np.abs(dw64) ** alpha).sum()
    np.add.at(counts, (si, sj), 1)
    return si, sj


def train_chunk_ref(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code,
                    lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2,
                    hw_params=None, hw_stats=None, in_loop_device=-1, seed=0, log=None):
    """Per-sample SGD over ``x[sample_idx]``, with the argument list of ``train_chunk``.

    Float weights only (no hardware). Every update of a sample is applied at once, after its
    forward and backward pass. ``log``, if a list, receives per sample a dict with the
    selected pairs of each layer. Returns ``(samples done, status)``.
    """
    assert hw_params is None or hw_params.shape[0] == 0, "the reference has no hardware"
    assert in_loop_device < 0
    n_out = w2.shape[1]
    for s, row in enumerate(sample_idx):
        xs = x[row]
        a, h = forward_ref(xs, w1, clamped, act_code, leak)
        z = offset[row].astype(F64) if offset.shape[0] > 0 else np.zeros(n_out)
        for j in range(w2.shape[0]):  # float64, in hidden-unit order
            z = z + F64(h[j]) * w2[j].astype(F64)
        delta_out = output_error_ref(z, y[row], loss_code)
        if delta_out is None:
            return s, STATUS_DIVERGED
        post2 = delta_out.astype(F32)
        # hidden error from the output weights before this sample changes them
        back = np.array([_dot_in_order(w2[j], post2) for j in range(w2.shape[0])])
        dh = (activation_slope_ref(a, h, act_code, leak) * back).astype(F32)
        dh[clamped] = F32(0.0)
        s2 = write_ref(w2, h, post2, lr2, *select_pairs_ref(h, post2, k2), 1, alpha,
                       meter_i, meter_f, counts2)
        s1 = write_ref(w1, xs, dh, lr1, *select_pairs_ref(xs, dh, k1), 0, alpha,
                       meter_i, meter_f, counts1)
        if log is not None:
            log.append({"output": s2, "input": s1})
    return len(sample_idx), STATUS_OK


def _dot_in_order(u, v):
    """sum_o float64(u_o) float64(v_o), accumulated left to right (as the kernel does)."""
    total = 0.0
    for uo, vo in zip(u.astype(F64), v.astype(F64)):
        total += uo * vo
    return total


def train_full_ref(x, y, sample_idx, w_in, w_out, units, act_code, leak, loss_code, lr1, lr2,
                   k1, k2, alpha, meter_i, meter_f, counts_in, counts_out, bias_unit=0):
    """The whole network, without the plastic-part decomposition: every hidden unit is
    computed on every sample, unit ``bias_unit`` reads 1, and only the synapses of the
    plastic ``units`` (incoming and outgoing; never the bias unit's incoming ones) may be
    written. The reference for ``path`` / ``combined`` as the paper states them.

    Sums are in float64 over all units, so results match the kernel to rounding only.
    """
    units = np.asarray(units)
    plastic = np.zeros(w_in.shape[1], bool)
    plastic[units] = True
    for row in sample_idx:
        xs = x[row].astype(F64)
        a = xs @ w_in.astype(F64)
        h = activation_ref(a.astype(F32), act_code, leak).astype(F64)
        h[bias_unit] = 1.0
        z = h @ w_out.astype(F64)
        delta_out = output_error_ref(z, y[row], loss_code)
        if delta_out is None:
            return
        slope = activation_slope_ref(a, h, act_code, leak)
        dh = slope * (w_out.astype(F64) @ delta_out)
        dh[bias_unit] = 0.0
        dh[~plastic] = 0.0
        h_plastic = np.where(plastic, h, 0.0)
        for w, pre, post, k, lr, layer, counts in (
                (w_out, h_plastic, delta_out, k2, lr2, 1, counts_out),
                (w_in, xs, dh, k1, lr1, 0, counts_in)):
            dw = -lr * np.outer(pre, post)
            if k >= 0:
                mag = np.abs(dw).ravel()
                nz = np.flatnonzero(mag > 0)
                keep = nz[np.argsort(-mag[nz], kind="stable")][:k]
                mask = np.zeros(mag.size, bool)
                mask[keep] = True
                dw = np.where(mask.reshape(dw.shape), dw, 0.0)
            written = dw != 0.0
            w += dw.astype(F32)
            counts += written
            meter_i[layer] += int(written.sum())
            meter_f[layer, MF_M1] += np.abs(dw).sum()
            meter_f[layer, MF_M1_POT] += dw[dw > 0].sum()
            if alpha >= 0:
                meter_f[layer, MF_MALPHA] += (np.abs(dw[written]) ** alpha).sum()


# ----------------------------------------------------------------------------- meters

def meter_dense_ref(pre, post, lr):
    """(M0, M1, M1_pot) of the full update dw = -lr outer(pre, post), by forming it."""
    dw = -lr * np.outer(pre.astype(F64), post.astype(F64))
    return int(np.count_nonzero(dw)), float(np.abs(dw).sum()), float(dw[dw > 0].sum())


def energy_summary_ref(writes, sums, w_start, w_end):
    """M0, M1, minima and potentiation-only M1 per layer and in total, from the raw meter."""
    out = {key: {} for key in ("M0", "M1", "M0_min", "M1_min", "M1_potentiation")}
    for li, layer in enumerate(("input", "output")):
        diff = np.abs(w_end[li].astype(F64) - w_start[li].astype(F64))
        out["M0"][layer] = int(writes[li])
        out["M1"][layer] = float(sums[li, MF_M1])
        out["M0_min"][layer] = int((diff > 0).sum())
        out["M1_min"][layer] = float(diff.sum())
        out["M1_potentiation"][layer] = float(sums[li, MF_M1_POT])
    for key in out:
        out[key]["total"] = out[key]["input"] + out[key]["output"]
    return out
