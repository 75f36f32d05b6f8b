"""The general per-sample SGD kernel: any number of hidden layers, every rule.

Layers: sizes = (n_in, H_1, ..., H_n, n_out); weight layer l maps the units of layer l to
those of layer l + 1. Unit 0 of every hidden layer is clamped to 1 and acts as the bias of the
next layer (for one hidden layer: the output bias of the study). Weights, buffers, masks and
write counts of all layers are flat arrays (layer l starts at ``w_offsets(sizes)[l]``).

Per sample (the study's order, generalised):

1. choose the plastic hidden units (fixed, rotating, random; error-selected ones after step 3);
2. forward pass: float32 sums in input order for hidden layers, float64 output sums;
3. output error; lazy learning may stop here (the sample is then only "time passing" for the
   buffers); hidden errors from the weights *before* this sample's writes, for every unit -
   which updates are then applied never feeds back into them;
4. each layer, output first: write every plastic update, or a selection of them, or add them
   to the layer's buffer and consolidate what crosses the threshold.

A synapse is plastic when its target is a plastic unit (or an output) and - for paths - its
source is a plastic unit too (inputs always are). With one hidden layer and the study's rules
this kernel computes what ``sgd_kernel.train_chunk`` computes (tested), only slower.
"""
import numba
import numpy as np

from hardware_models import _kernel_cache
from .general_codes import (BUF_NONE, BUF_VISIBLE, F_ALPHA, F_B, F_C, F_DECAY, F_LAZY, F_LEAK,
                            F_THETA, I_ACT, I_BUFFER, I_IN_LOOP, I_LOSS, I_PERIOD,
                            I_READOUT_ONLY, I_RESTRICT_OUT, I_SCOPE, I_UNITS, I_WRITE,
                            LZ_SKIPPED, LZ_UPDATED, SCOPE_TOP, UNITS_ERROR, UNITS_RANDOM,
                            UNITS_ROTATING, WRITE_ALL, WRITE_LARGEST_W, WRITE_MASK,
                            WRITE_SMALLEST, WRITE_TOP, WRITE_TOP_NEURON)
from .general_writes import (buffer_layer, n_writes, top_rows, topk_flat, write_list,
                             write_rows)
from .kernels import (STATUS_DIVERGED, STATUS_OK, _activation, _activation_slope,
                      output_error, topk_outer)
from .row_tally import new_row_buffer, price_held


def w_offsets(sizes):
    """Start of each weight layer in the flat arrays, and the total size (numpy int64)."""
    sizes = np.asarray(sizes, np.int64)
    return np.concatenate([[0], np.cumsum(sizes[:-1] * sizes[1:])]).astype(np.int64)


def hidden_offsets(sizes):
    """Start of each hidden layer's units in the flat hidden-unit arrays, and the total."""
    sizes = np.asarray(sizes, np.int64)
    return np.concatenate([[0], np.cumsum(sizes[1:-1])]).astype(np.int64)


@numba.njit(cache=True)
def _offsets(sizes):
    n_layers = sizes.shape[0] - 1
    w_off = np.zeros(n_layers + 1, np.int64)
    u_off = np.zeros(n_layers + 1, np.int64)  # units of layer l (inputs are layer 0)
    for l in range(n_layers):
        w_off[l + 1] = w_off[l] + sizes[l] * sizes[l + 1]
        u_off[l + 1] = u_off[l] + sizes[l]
    return w_off, u_off


@numba.njit(cache=True)
def _choose_units(on, u_off, sizes, mode, k_units, perm, block, dv, scratch):
    """Set the plastic flags of every hidden layer for modes that choose per sample."""
    p_start = 0
    for hl in range(sizes.shape[0] - 2):
        h = sizes[hl + 1]
        base = u_off[hl + 1]
        k = min(k_units[hl], h - 1)
        for j in range(h):
            on[base + j] = 0
        on[base] = 1
        if mode == UNITS_ROTATING:
            for t in range(k):
                on[base + perm[p_start + (block * k + t) % (h - 1)]] = 1
        elif mode == UNITS_RANDOM:
            for j in range(h - 1):
                scratch[j] = j + 1
            for t in range(k):  # partial Fisher-Yates
                r = t + np.random.randint(0, h - 1 - t)
                tmp = scratch[t]
                scratch[t] = scratch[r]
                scratch[r] = tmp
                on[base + scratch[t]] = 1
        elif mode == UNITS_ERROR:
            key = np.empty(h - 1)
            for j in range(h - 1):
                key[j] = -abs(np.float64(dv[base + 1 + j]))
            order = np.argsort(key, kind="mergesort")
            for t in range(k):
                on[base + 1 + order[t]] = 1
        else:
            raise ValueError("unknown unit mode")
        p_start += h - 1


@numba.njit(cache=True)
def _forward(sizes, w_off, u_off, w, s, visible, hv, av, z, act_code, leak):
    n_layers = sizes.shape[0] - 1
    for l in range(n_layers):
        r = sizes[l]
        c = sizes[l + 1]
        pb = u_off[l]
        if l < n_layers - 1:
            qb = u_off[l + 1]
            for j in range(c):
                av[qb + j] = 0.0
            for i in range(r):
                pi = hv[pb + i]
                base = w_off[l] + i * c
                if visible:
                    for j in range(c):
                        av[qb + j] += pi * (w[base + j] + s[base + j])
                else:
                    for j in range(c):
                        av[qb + j] += pi * w[base + j]
            hv[qb] = np.float32(1.0)
            for j in range(1, c):
                hv[qb + j] = np.float32(_activation(av[qb + j], act_code, leak))
        else:
            for o in range(c):
                z[o] = 0.0
            for j in range(r):
                hj = np.float64(hv[pb + j])
                base = w_off[l] + j * c
                for o in range(c):
                    wj = w[base + o] + s[base + o] if visible else w[base + o]
                    z[o] += hj * np.float64(wj)


@numba.njit(cache=True)
def _backward(sizes, w_off, u_off, w, s, visible, hv, av, dv, act_code, leak):
    """Hidden errors of every unit, from the current (not yet updated) weights; the output
    errors are already in ``dv`` after the last hidden layer."""
    n_layers = sizes.shape[0] - 1
    for l in range(n_layers - 1, 0, -1):
        r = sizes[l]
        c = sizes[l + 1]
        pb = u_off[l]
        dv[pb] = 0.0
        for j in range(1, r):
            base = w_off[l] + j * c
            back = 0.0
            for m in range(c):
                wj = w[base + m] + s[base + m] if visible else w[base + m]
                back += np.float64(wj) * np.float64(dv[u_off[l + 1] + m])
            dv[pb + j] = np.float32(_activation_slope(av[pb + j], hv[pb + j], act_code, leak)
                                    * back)


@numba.njit(cache=True)
def train_chunk_general(x, y, sample_idx, sizes, w, s, mask, counts, unit_on, k_units, perm,
                        p_layer, lr_layer, ispec, fspec, counter, meter_i, meter_f, buf_f,
                        lazy_i, hw_params, hw_stats, seed):
    """Train on ``x[sample_idx]`` one sample at a time, with any rule and depth.

    Parameters
    ----------
    x : float32 (n_images, n_in); y : int64 (n_images,); sample_idx : int64 (n_samples,)
    sizes : int64 (n_layers + 1,) units per layer, inputs first, outputs last
    w : float32 (total synapses,) flat weights (the persistent part under caching)
    s : float32 (total,) update buffers, or (0,) without; mask : uint8 (total,) or (0,)
    counts : int32 (total,) per-synapse write counts
    unit_on : uint8 (total hidden units,) plastic flags for the fixed / all modes
    k_units : int64 (n_hidden,) units per layer for the per-sample modes
    perm : int64 (sum of H_l - 1,) rotating order of units 1..H_l-1 per layer
    p_layer, lr_layer : float64 (n_layers,) write fraction and learning rate per layer
    ispec : int64 (N_ISPEC,); fspec : float64 (N_FSPEC,) see ``general_codes``
    counter : int64 (1,) samples seen so far (carried between chunks; rotation clock)
    meter_i : int64 (n_layers,); meter_f : float64 (n_layers, 3); buf_f : (n_layers, 2)
    lazy_i : int64 (2,) samples updated / skipped
    hw_params : float64 (n_dev, P); hw_stats : float64 (n_layers, n_dev, S)
    seed : seeds numba's generator for this chunk

    Returns
    -------
    (samples done, status) with status ``STATUS_OK`` or ``STATUS_DIVERGED``.
    """
    np.random.seed(seed)
    n_layers = sizes.shape[0] - 1
    n_out = sizes[n_layers]
    w_off, u_off = _offsets(sizes)
    act_code = ispec[I_ACT]
    unit_mode = ispec[I_UNITS]
    write_mode = ispec[I_WRITE]
    buffer = ispec[I_BUFFER]
    scope = ispec[I_SCOPE]
    restrict_out = ispec[I_RESTRICT_OUT] == 1
    readout_only = ispec[I_READOUT_ONLY] == 1
    in_loop = ispec[I_IN_LOOP]
    leak = fspec[F_LEAK]
    alpha = fspec[F_ALPHA]
    lazy = fspec[F_LAZY]
    visible = buffer == BUF_VISIBLE
    out0 = u_off[n_layers]  # the output units' slot in the flat unit arrays
    hv = np.zeros(out0 + n_out, np.float32)
    av = np.zeros(out0 + n_out, np.float32)
    dv = np.zeros(out0 + n_out, np.float32)
    on = np.ones(out0 + n_out, np.uint8)
    on[sizes[0]:out0] = unit_on
    z = np.zeros(n_out)
    delta_out = np.zeros(n_out)
    max_units = 0
    max_syn = 1
    for l in range(n_layers + 1):
        max_units = max(max_units, sizes[l])
    for l in range(n_layers):
        max_syn = max(max_syn, sizes[l] * sizes[l + 1])
    rows = np.empty(max_units, np.int64)
    rows_sel = np.empty(max_units, np.int64)
    cols = np.empty(max_units, np.int64)
    a_abs = np.zeros(max_units)
    b_abs = np.zeros(max_units)
    scratch = np.empty(max_units, np.int64)
    col_flag = np.zeros(max_units, np.uint8)
    row_buf = new_row_buffer(hw_params, max_units)
    need_pairs = write_mode != WRITE_ALL and write_mode != WRITE_MASK
    n_pair = max_syn if (need_pairs or buffer != BUF_NONE) else 1
    sel_i = np.empty(n_pair, np.int64)
    sel_j = np.empty(n_pair, np.int64)
    cand_s = np.empty(n_pair)
    vals32 = np.empty(n_pair, np.float32)
    cand_i = np.empty(n_pair, np.int64)
    cand_j = np.empty(n_pair, np.int64)
    block = -1

    for t_s in range(sample_idx.shape[0]):
        row = sample_idx[t_s]
        for i in range(sizes[0]):
            hv[i] = x[row, i]
        if unit_mode == UNITS_ROTATING:
            b = counter[0] // ispec[I_PERIOD]
            if b != block:
                block = b
                _choose_units(on, u_off, sizes, unit_mode, k_units, perm, block, dv, scratch)
        counter[0] += 1
        _forward(sizes, w_off, u_off, w, s, visible, hv, av, z, act_code, leak)
        if not output_error(z, y[row], ispec[I_LOSS], delta_out):
            price_held(row_buf, hw_params, hw_stats)
            return t_s, STATUS_DIVERGED
        active = True
        if lazy >= 0.0:
            label = y[row]
            best_other = -np.inf
            for o in range(n_out):
                if o != label:
                    best_other = max(best_other, z[o])
            active = z[label] - best_other <= lazy
        if active:
            lazy_i[LZ_UPDATED] += 1
            for o in range(n_out):
                dv[out0 + o] = np.float32(delta_out[o])
            _backward(sizes, w_off, u_off, w, s, visible, hv, av, dv, act_code, leak)
            if unit_mode == UNITS_RANDOM or unit_mode == UNITS_ERROR:
                _choose_units(on, u_off, sizes, unit_mode, k_units, perm, 0, dv, scratch)
        else:
            lazy_i[LZ_SKIPPED] += 1
            if buffer == BUF_NONE:
                continue

        for l in range(n_layers - 1, -1, -1):
            if readout_only and l < n_layers - 1:
                continue
            r = sizes[l]
            c = sizes[l + 1]
            pb = u_off[l]
            pre = hv[pb:pb + r]
            post = dv[u_off[l + 1]:u_off[l + 1] + c]
            n_pre_on = 0
            n_rows = 0
            for i in range(r):
                if l == 0 or not restrict_out or on[pb + i] == 1:
                    n_pre_on += 1
                    a_abs[i] = abs(np.float64(pre[i]))
                    if pre[i] != 0.0:
                        rows[n_rows] = i
                        n_rows += 1
                else:
                    a_abs[i] = 0.0
            n_post_on = 0
            n_act = 0
            for j in range(c):
                if l == n_layers - 1 or (j > 0 and on[u_off[l + 1] + j] == 1):
                    n_post_on += 1
                    b_abs[j] = abs(np.float64(post[j]))
                    if post[j] != 0.0:
                        cols[n_act] = j
                        n_act += 1
                else:
                    b_abs[j] = 0.0
            n_plastic = n_pre_on * n_post_on
            lr = lr_layer[l]
            off = w_off[l]
            if buffer != BUF_NONE:
                k = -1
                if scope == SCOPE_TOP:  # a skipped sample adds nothing, so writes nothing
                    k = n_writes(p_layer[l], n_plastic) if active else 0
                buffer_layer(w, s, counts, off, r, c, pre, post, lr, rows, n_rows, cols,
                             n_act, active, fspec[F_DECAY], fspec[F_THETA], scope, k,
                             fspec[F_C], fspec[F_B], l, alpha, meter_i, meter_f, buf_f,
                             hw_params, hw_stats, in_loop, row_buf, vals32, cand_i, col_flag)
                continue
            k = n_writes(p_layer[l], n_plastic)
            if write_mode == WRITE_ALL or write_mode == WRITE_MASK or k < 0:
                use_mask = mask if write_mode == WRITE_MASK else mask[:0]
                write_rows(w, counts, use_mask, off, c, pre, post, lr, rows, n_rows, cols,
                           n_act, l, alpha, meter_i, meter_f, hw_params, hw_stats, in_loop,
                           row_buf)
            elif write_mode == WRITE_TOP_NEURON:
                m = top_rows(pre, rows, n_rows, n_writes(p_layer[l], n_pre_on), rows_sel)
                write_rows(w, counts, mask[:0], off, c, pre, post, lr, rows_sel, m, cols,
                           n_act, l, alpha, meter_i, meter_f, hw_params, hw_stats, in_loop,
                           row_buf)
            else:
                if write_mode == WRITE_TOP:
                    n_sel = topk_outer(a_abs[:r], b_abs[:c], k, sel_i, sel_j, cand_s, cand_i,
                                       cand_j)
                elif write_mode == WRITE_SMALLEST:
                    for i in range(r):
                        a_abs[i] = 1.0 / a_abs[i] if a_abs[i] > 0.0 else 0.0
                    for j in range(c):
                        b_abs[j] = 1.0 / b_abs[j] if b_abs[j] > 0.0 else 0.0
                    n_sel = topk_outer(a_abs[:r], b_abs[:c], k, sel_i, sel_j, cand_s, cand_i,
                                       cand_j)
                elif write_mode == WRITE_LARGEST_W:
                    size = r * c
                    for q in range(size):
                        vals32[q] = 0.0
                    for t in range(n_rows):
                        i = rows[t]
                        for u in range(n_act):
                            q = i * c + cols[u]
                            vals32[q] = abs(w[off + q])
                    n_sel = topk_flat(vals32[:size], k, cand_i)
                    for t in range(n_sel):
                        sel_i[t] = cand_i[t] // c
                        sel_j[t] = cand_i[t] % c
                else:
                    raise ValueError("unknown write mode")
                write_list(w, counts, off, c, pre, post, lr, sel_i, sel_j, n_sel, l, alpha,
                           meter_i, meter_f, hw_params, hw_stats, in_loop, row_buf)
    price_held(row_buf, hw_params, hw_stats)
    return sample_idx.shape[0], STATUS_OK


def _dependency_files():
    import hardware_models.llvm_ops as llvm_ops
    import hardware_models.tally as tally
    import hardware_models.tally_rows as tally_rows
    from . import general_codes, general_writes, kernels, row_tally
    here = [__file__, general_writes.__file__, kernels.__file__, general_codes.__file__,
            tally.__file__, row_tally.__file__, tally_rows.__file__, llvm_ops.__file__]
    topk = [kernels.__file__.replace("kernels.py", name)
            for name in ("topk.py", "topk_few.py", "quickselect.py", "topk_rows.py")]
    return here + topk


# the cached files of its dependencies' modules here too: they embed each other's code
# (kernels.topk_outer the selection, row_tally the row tallies), and a run of the general
# kernel alone must not load them stale either
_kernel_cache.refresh(train_chunk_general, _dependency_files(), "general_kernel.deps.sha256")
