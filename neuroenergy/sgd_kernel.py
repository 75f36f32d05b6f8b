"""The compiled per-sample SGD loop over one chunk of samples (see ``kernels.py`` for the
plastic-part convention and the metered writes).

Per sample: forward with the current weights, output error, hidden error (from the output
weights *before* this sample's update, and independent of which updates are then applied),
then each layer writes either every synapse or its k largest updates.

Speed. Per-sample SGD is memory-bound: the input-layer update is not applied when it is
decided but folded into the next sample's forward pass (``fold.py``), which reads every row
of ``w1`` anyway. The dense update's M0 / M1 come in closed form, and its write counts as a
per-column accumulator plus corrections for the rows whose input is zero, added into
``counts1`` at the end of the chunk. Weights are bit for bit those of applying every update
at once, and the forward pass accumulates in input order. A dense or masked output layer is
kept transposed, (n_out, kp), for the chunk, so that its per-sample loops (hidden error,
update, masked writes) run along the hidden units and vectorize; its sums keep their order.
Indices read from index arrays go through ``_ix`` (unsigned): numba tests every signed
index for a negative value, several instructions per scattered access.

With hardware tallies or a device in the loop, a second kernel runs: every write goes
through a priced writer as soon as it is decided (``kernels.write_dense_priced`` for a dense
layer, the pair writer of ``kernels.write_pairs`` for a selection), rows ascending; a selected
row's columns come in the selection's order, which decides only which uniform of the
stochastic-rounding stream each write gets. Runs without hardware never compile it.

Compilation. Each kernel takes flags for its code paths (:func:`_flag`: 1 or None), and
numba removes the branches of a None flag before it compiles: a run compiles only the
paths of its rule, e.g. a backprop run no selection code (about half the code).
"""
import numba
import numpy as np

from hardware_models import _kernel_cache
from hardware_models.compiled_only import compiled_only
from .fold import (_apply_dense_rows, _apply_selected, _band_sums, _count_dense,
                   _flush_counts, _forward_rows, apply_masked_rows, apply_masked_t,
                   dense_output_update_t, forward_masked, masked_plan)
from .error_signals import _errors
from .kernels import (STATUS_DIVERGED, STATUS_OK, _write_pair_rows, _write_pairs_impl,
                      meter_dense_closed_form, write_dense_priced)
from .row_tally import new_row_buffer, price_held
from .topk import topk_prepare, topk_prepare_few, topk_workspace
from .topk_rows import topk_select

ROW_BLOCK = 64  # rows whose selected writes are applied just before the forward pass reads them
MASK_SHARE = 8  # selections of at least 1 / MASK_SHARE of a layer are written as masks
CACHED_BYTES = 1 << 20  # a w1 up to this size stays in cache between samples
BYTE_COUNTS = 255  # samples a uint8 write count can take (a synapse is written once a sample)


@numba.njit(cache=True)
def _add_counts(counts, counts_8):
    """counts += counts_8, and counts_8 = 0 (nothing when counts_8 is empty)."""
    for i in range(counts_8.shape[0]):
        for j in range(counts_8.shape[1]):
            counts[i, j] += counts_8[i, j]
            counts_8[i, j] = 0


@numba.njit(cache=True)
def _transpose_into(dst, src):
    """dst[j, i] = src[i, j]."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[j, i] = src[i, j]


@numba.njit(cache=True)
def _end_output_layer(w2, counts2, w2t, counts2t, w2_t_on):
    """With the output layer kept transposed (``w2_t_on``): its weights and write counts
    back into the caller's w2 and counts2."""
    if w2_t_on is not None:
        _transpose_into(w2, w2t)
        for j in range(counts2t.shape[0]):
            for i in range(counts2t.shape[1]):
                counts2[i, j] += counts2t[j, i]


@numba.njit(cache=True, inline="always")
def _fill_all_pairs(m, n, sel_i, sel_j):
    t = 0
    for i in range(m):
        for j in range(n):
            sel_i[t] = i
            sel_j[t] = j
            t += 1
    return t


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
                 lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2, dense1_on, sel1_on,
                 mask1_on, dense2_on, sel2_on, mask2_on, w2_rows_on, w2_t_on):
    """:func:`train_chunk` for float weights without hardware tallies. The ``*_on`` flags
    (:func:`_flag`, from :func:`_layer_modes`) say which writers each layer uses; with
    ``w2_t_on`` (a dense or masked output layer; else ``w2_rows_on``) the chunk works on a
    transposed copy of the output layer, (n_out, kp), so that its per-sample loops run along
    the hidden units (vectorized), and copies it back at the end."""
    ZERO, IN, OUT, no = _typed_constants()
    n_in, kp = w1.shape
    n_out = w2.shape[1]
    lr1_32 = np.float32(lr1)
    # numba prunes the branches of a test on a None argument before it compiles, so a
    # backprop run compiles no selection code and a sparse selection no mask code
    dense1 = dense1_on is not None  # folded dense update, closed-form meter
    dense2 = dense2_on is not None  # in place, closed-form meter
    sel1 = sel1_on is not None
    sel2 = sel2_on is not None
    masked1 = mask1_on is not None  # selections may be written as masks
    masked2 = mask2_on is not None
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
    col_acc2 = np.zeros(n_out, np.int32)
    abs_x = np.zeros(n_in)
    abs_dh = np.zeros(kp)
    abs_h = np.zeros(kp)
    abs_post = np.zeros(n_out)
    cum1_b = np.zeros(kp + 1)
    cum1_pos = np.zeros(kp + 1)
    cum2_b = np.zeros(n_out + 1)
    cum2_pos = np.zeros(n_out + 1)
    if sel1:
        ws1 = topk_workspace(n_in, kp, np.empty(n_in * kp))
    if sel2:
        ws2 = topk_workspace(kp, n_out, np.empty(kp * n_out))
    order1 = np.zeros(kp, np.int64)
    rank1 = np.zeros(kp, np.int64)
    n_row1 = np.zeros(n_in, np.int64)
    order2 = np.zeros(n_out, np.int64)
    rank2 = np.zeros(n_out, np.int64)
    n_row2 = np.zeros(kp, np.int64)
    coef2 = np.zeros(kp, np.float32)
    back = np.zeros(kp)
    if w2_t_on is not None:
        w2w = np.empty((n_out, kp), np.float32)  # the output layer as the chunk keeps it
        _transpose_into(w2w, w2)
        counts2w = np.zeros((n_out, kp), np.int32)
    else:
        w2w = w2
        counts2w = counts2
    lr2_32 = np.float32(lr2)
    mask_pending = False
    # sparse input-layer writes are counted in bytes, added into counts1 every BYTE_COUNTS
    # samples: scattered increments then touch 4x fewer cache lines than in the int32 map
    # (~10 us of a top-fraction sample at 1,000 hidden units here)
    counts1_8 = np.zeros((0 if dense1 else n_in, 0 if dense1 else kp), np.uint8)
    since_flush = 0
    # the output layer's selected writes too: then every _apply_selected call has the same
    # argument types, and the function is compiled once instead of twice (~1.5 s)
    counts2_8 = np.zeros((0 if dense2 else kp, 0 if dense2 else n_out), np.uint8)
    since_flush2 = 0
    # selected writes go a block of rows ahead of the forward read when w1 is beyond cache
    row_block = ROW_BLOCK if n_in * kp * 4 > CACHED_BYTES else n_in

    pending = False   # the previous sample's input-layer update is still to be written
    x_prev = abs_x.astype(np.float32)
    for s in range(sample_idx.shape[0]):
        row = sample_idx[s]
        xs = x[row]
        a[:] = 0.0
        if masked1 and pending and mask_pending:
            forward_masked(xs, w1, a, x_prev, dh_prev, lr1_32, n_row1, rank1, counts1)
        elif sel1 and pending:
            t = ZERO
            if since_flush == BYTE_COUNTS:
                _add_counts(counts1, counts1_8)
                since_flush = 0
            since_flush += 1
            for i0 in range(0, n_in, row_block):
                i1 = min(i0 + row_block, n_in)
                t = _apply_selected(w1, x_prev, dh_prev, lr1, abs_x, abs_dh, ws1, cum1_b,
                                    cum1_pos, i1, t, counts1_8, alpha, meter_i, meter_f, IN)
                _forward_rows(xs, w1, a, i0, i1, no, x_prev, dh_prev, lr1_32)
        else:
            _forward_rows(xs, w1, a, ZERO, n_in, pending, x_prev, dh_prev, lr1_32)
        pending = False
        if not _errors(xs, row, y, offset, w2w, w2_rows_on, w2_t_on, clamped, act_code, leak,
                       loss_code, a, h, z, delta_out, post2, dh, back):
            _end_output_layer(w2, counts2, w2w, counts2w, w2_t_on)
            _flush_counts(counts1, col_acc)
            _flush_counts(counts2, col_acc2)
            _add_counts(counts1, counts1_8)
            _add_counts(counts2, counts2_8)
            return s, STATUS_DIVERGED

        # output layer: written now
        if dense2:
            dense_output_update_t(w2w, h, post2, lr2, counts2w, col_acc2, coef2)
            meter_dense_closed_form(h, post2, lr2, OUT, meter_i, meter_f)
        if sel2:
            _abs64(h, abs_h)
            _abs64(post2, abs_post)
            # a large share of the output layer's 10 columns (the tied fraction): per-column
            # thresholds; a few pairs (k of 1%): the bands, which visit only their rows
            if mask2_on is not None:
                topk_prepare_few(abs_h, abs_post, k2_all, ws2)
            if mask2_on is None:
                topk_prepare(abs_h, abs_post, k2_all, ws2)
            if masked2 and masked_plan(h, post2, lr2, abs_h, abs_post, ws2, order2, rank2,
                                       cum2_b, cum2_pos, n_row2, meter_i, meter_f, OUT):
                apply_masked_t(w2w, h, post2, lr2_32, n_row2, rank2, counts2w, coef2)
            else:
                if since_flush2 == BYTE_COUNTS:
                    _add_counts(counts2, counts2_8)
                    since_flush2 = 0
                since_flush2 += 1
                _band_sums(ws2, abs_post, post2, cum2_b, cum2_pos)
                # pairs in row-major order (ties split at the threshold: rare) on w2 itself
                if w2_t_on is not None:
                    _transpose_into(w2, w2w)
                _apply_selected(w2, h, post2, lr2, abs_h, abs_post, ws2, cum2_b, cum2_pos, kp,
                                ZERO, counts2_8, alpha, meter_i, meter_f, OUT)
                if w2_t_on is not None:
                    _transpose_into(w2w, w2)

        # input layer: decided now, written in the next forward pass
        if dense1:
            nnz = meter_dense_closed_form(xs, dh, lr1, IN, meter_i, meter_f)
            for j in range(kp):
                nz_post[j] = dh[j] != 0.0
            _count_dense(counts1, xs, nz_post, col_acc, nnz)
        if sel1:
            _abs64(xs, abs_x)
            _abs64(dh, abs_dh)
            topk_prepare(abs_x, abs_dh, k1_all, ws1)
            mask_pending = False
            if masked1:
                mask_pending = masked_plan(xs, dh, lr1, abs_x, abs_dh, ws1, order1, rank1,
                                           cum1_b, cum1_pos, n_row1, meter_i, meter_f, IN)
            if not mask_pending:
                _band_sums(ws1, abs_dh, dh, cum1_b, cum1_pos)
        pending = True
        x_prev = xs
        for j in range(kp):  # a loop, not dh_prev[:] = dh: no shape-check code to compile
            dh_prev[j] = dh[j]

    if pending:
        if dense1:
            _apply_dense_rows(w1, ZERO, n_in, x_prev, dh_prev, lr1_32)
        if masked1 and mask_pending:
            apply_masked_rows(w1, x_prev, dh_prev, lr1_32, n_row1, rank1, counts1, ZERO, n_in)
        elif sel1:
            _add_counts(counts1, counts1_8)  # room for one more write per synapse
            _apply_selected(w1, x_prev, dh_prev, lr1, abs_x, abs_dh, ws1, cum1_b, cum1_pos,
                            n_in, ZERO, counts1_8, alpha, meter_i, meter_f, IN)
    _end_output_layer(w2, counts2, w2w, counts2w, w2_t_on)
    _flush_counts(counts1, col_acc)
    _flush_counts(counts2, col_acc2)
    _add_counts(counts1, counts1_8)
    _add_counts(counts2, counts2_8)
    return sample_idx.shape[0], STATUS_OK


@numba.njit(cache=True, inline="always")
def _priced_layer(w, pre, post, lr, k, sel_i, sel_j, n_all, ws, abs_pre, abs_post, layer,
                  alpha, meter_i, meter_f, counts, hw_params, hw_stats, in_loop_device,
                  row_buf, dense_on, sel_on, floats_on, in_loop_on):
    """One layer's priced writes in :func:`_chunk_tallied`: every pair row by row (dense),
    or the selected pairs (the first ``n_all`` of sel_i / sel_j when ``k < 0``: all of
    them, with a device in the loop). The selection's arrays are None for a dense layer;
    the flags' None branches are pruned here too."""
    if dense_on is not None:
        write_dense_priced(w, pre, post, lr, layer, alpha, meter_i, meter_f, counts,
                           hw_params, hw_stats, row_buf)
    if sel_on is not None:
        n = n_all
        if k >= 0:
            _abs64(pre, abs_pre)
            _abs64(post, abs_post)
            n = topk_select(abs_pre, abs_post, k, sel_i, sel_j, ws, False)
        if floats_on is not None and n > 0:
            _write_pair_rows(w, pre, post, lr, sel_i, sel_j, n, layer, alpha, meter_i,
                             meter_f, counts, hw_params, hw_stats, row_buf)
        if in_loop_on is not None:
            _write_pairs_impl(w, pre, post, lr, sel_i, sel_j, n, layer, alpha, meter_i,
                              meter_f, counts, hw_params, hw_stats, in_loop_device, row_buf)


@compiled_only(cache=True)
def _selection_arrays(m, n, k):
    """(abs_pre, abs_post, sel_i, sel_j, workspace, number of pairs listed) for a layer of
    m x n synapses that writes selected pairs (k < 0: every pair, listed once here)."""
    sel_i = np.empty(m * n, np.int64)
    sel_j = np.empty(m * n, np.int64)
    ws = topk_workspace(m if k >= 0 else 0, n if k >= 0 else 0, np.empty(m * n if k >= 0 else 1))
    n_all = _fill_all_pairs(m, n, sel_i, sel_j) if k < 0 else 0
    return np.zeros(m), np.zeros(n), sel_i, sel_j, ws, n_all


@numba.njit(cache=True)
def _chunk_tallied(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code, lr1,
                   lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2, hw_params,
                   hw_stats, in_loop_device, seed, dense_on, sel_on, floats_on, in_loop_on):
    """:func:`train_chunk` with hardware tallies or a device in the loop. The ``*_on``
    flags (:func:`_flag`): both layers write every pair row by row (dense) or pairs from a
    list (a selection, or all pairs when ``k < 0``); the weights are floats or a device in
    the loop."""
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
    row_buf = new_row_buffer(hw_params, max(kp, n_out))
    # dense layers have no selection arrays (None): each flag's branch is pruned in turn,
    # so every variable has one type in a compiled variant
    if sel_on is not None:
        abs_x, abs_dh, sel1_i, sel1_j, ws1, all1 = _selection_arrays(n_in, kp, k1)
        abs_h, abs_post, sel2_i, sel2_j, ws2, all2 = _selection_arrays(kp, n_out, k2)
    if dense_on is not None:
        abs_x, abs_dh, sel1_i, sel1_j, ws1, all1 = None, None, None, None, None, 0
        abs_h, abs_post, sel2_i, sel2_j, ws2, all2 = None, None, None, None, None, 0
    for s in range(sample_idx.shape[0]):
        row = sample_idx[s]
        xs = x[row]
        a[:] = 0.0
        _forward_rows(xs, w1, a, ZERO, n_in, no, xs, dh, np.float32(lr1))
        # the output layer row-major (OUT: any int flag is on), no transpose
        if not _errors(xs, row, y, offset, w2, OUT, None, clamped, act_code, leak, loss_code,
                       a, h, z, delta_out, post2, dh, dh):
            price_held(row_buf, hw_params, hw_stats)
            return s, STATUS_DIVERGED
        # output layer, then input layer
        _priced_layer(w2, h, post2, lr2, k2, sel2_i, sel2_j, all2, ws2, abs_h, abs_post, OUT,
                      alpha, meter_i, meter_f, counts2, hw_params, hw_stats, in_loop_device,
                      row_buf, dense_on, sel_on, floats_on, in_loop_on)
        _priced_layer(w1, xs, dh, lr1, k1, sel1_i, sel1_j, all1, ws1, abs_x, abs_dh, IN,
                      alpha, meter_i, meter_f, counts1, hw_params, hw_stats, in_loop_device,
                      row_buf, dense_on, sel_on, floats_on, in_loop_on)
    price_held(row_buf, hw_params, hw_stats)
    return sample_idx.shape[0], STATUS_OK


def _flag(on):
    """A kernel's switch for a code path: 1 if on, else None. numba removes the branches of
    ``flag is not None`` for a None argument before it compiles (it cannot for a bool), so
    the kernel compiled for a run holds only the paths the run takes (e.g. no selection
    code for backprop: ~10 s of a first compilation instead of ~20)."""
    return 1 if on else None


def _layer_modes(k, alpha, n_synapses):
    """The (dense, select, mask) flags of a layer for :func:`_chunk_plain`: dense for the
    update of every synapse metered in closed form (k < 0 and no alpha meter), else select;
    mask too when the selection of k writes (k < 0: all) is a sizeable share of the layer
    (``MASK_SHARE``), the case the mask writers serve."""
    dense = k < 0 and alpha < 0.0
    k_all = k if k >= 0 else n_synapses
    return (_flag(dense), _flag(not dense),
            _flag(not dense and alpha < 0.0 and MASK_SHARE * k_all >= n_synapses))


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
        dense2, sel2, mask2 = _layer_modes(k2, alpha, w2.size)
        transposed = dense2 is not None or mask2 is not None
        return _chunk_plain(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak,
                            loss_code, lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1,
                            counts2, *_layer_modes(k1, alpha, w1.size), dense2, sel2, mask2,
                            _flag(not transposed), _flag(transposed))
    # with float weights and both layers dense, every pair is written row by row
    # (write_dense_priced); otherwise the pairs go through the pair writers, a dense layer
    # next to a selective one as the list of all its pairs: the same writes, and combined
    # runs share top-fraction's kernel (one compilation of ~25 s less)
    floats = in_loop_device < 0
    dense = k1 < 0 and k2 < 0 and floats
    return _chunk_tallied(x, y, sample_idx, offset, w1, w2, clamped, act_code, leak, loss_code,
                          lr1, lr2, k1, k2, alpha, meter_i, meter_f, counts1, counts2,
                          hw_params, hw_stats, in_loop_device, seed, _flag(dense),
                          _flag(not dense), _flag(floats), _flag(not floats))


def _dependency_files():
    """The files whose code the chunk kernels embed besides this one."""
    import hardware_models.llvm_ops as llvm_ops
    import hardware_models.tally as tally
    import hardware_models.tally_rows as tally_rows

    from . import (error_signals, fold, kernels, quickselect, row_tally, topk, topk_few,
                   topk_rows)
    return [__file__, error_signals.__file__, fold.__file__, topk.__file__, kernels.__file__,
            tally.__file__, row_tally.__file__, tally_rows.__file__, topk_few.__file__,
            quickselect.__file__, topk_rows.__file__, llvm_ops.__file__]


# numba checks only the source file of a cached function: drop the cached files of every
# module here whose functions embed others when any of those files changes
_kernel_cache.refresh(_chunk_plain, _dependency_files(), "sgd_kernel.deps.sha256")
