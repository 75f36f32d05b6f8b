"""The speed paths of the training kernel against the slow references in ``reference.py``.

``fold.py`` writes the input-layer update inside the next forward pass in three ways (dense
rows, selected pairs a block of rows ahead, masks for selections of >= 1/8 of a layer), and
``topk.py`` / ``topk_rows.py`` split the selection into ``topk_prepare`` / ``topk_row``. These tests pick
shapes and k that reach each path (rows beyond one block, row counts that are not multiples
of four, every selection density) and inputs with many equal values, where products tie at
the threshold and the row-major tie-break decides which synapses are written.
"""
import os

import numpy as np
import pytest

from neuroenergy.fold import FEW_COLUMNS, _argsort_desc, masked_plan
from neuroenergy.kernels import (ACT_LEAKY_RELU, LOSS_MSE, MF_M1, MF_M1_POT, N_METER_F,
                                 topk_outer)
from neuroenergy.sgd_kernel import MASK_SHARE, ROW_BLOCK, _layer_modes, train_chunk
from neuroenergy.topk import (S_CAND, S_COLS, S_EQ, S_MODE, S_NB, S_ROWS, S_TAKE, S_TIES,
                              topk_prepare, topk_prepare_few, topk_workspace)
from neuroenergy.topk_rows import topk_row

from reference import topk_outer_ref, train_chunk_ref

F32 = np.float32
N_OUT = 10


def _problem(rng, n_in, kp, n_images=8, n_samples=7, quantized=False):
    if quantized:  # few distinct values: products tie at the threshold
        x = rng.choice(np.array([0.0, 0.25, 0.5, 1.0], F32), size=(n_images, n_in))
    else:
        x = rng.normal(0, 1, (n_images, n_in)).astype(F32)
        x[rng.random(x.shape) < 0.2] = 0.0
    w1 = rng.normal(0, 1.0 / np.sqrt(n_in), (n_in, kp)).astype(F32)  # no divergence
    if quantized:
        w1 = np.round(w1 * 8) / 8
    return dict(x=x, y=rng.integers(0, N_OUT, n_images).astype(np.int64),
                idx=rng.integers(0, n_images, n_samples).astype(np.int64),
                w1=w1, w2=rng.normal(0, 0.3, (kp, N_OUT)).astype(F32),
                clamped=np.arange(kp) == 0)


def _run(fn, p, k1, k2, lr=0.05, alpha=-1.0):
    n_in, kp = p["w1"].shape
    st = dict(w1=p["w1"].copy(), w2=p["w2"].copy(), meter_i=np.zeros(2, np.int64),
              meter_f=np.zeros((2, N_METER_F)), counts1=np.zeros((n_in, kp), np.int32),
              counts2=np.zeros((kp, N_OUT), np.int32))
    extra = (np.zeros((0, 1)), np.zeros((2, 0, 1)), -1, 0) if fn is train_chunk else ()
    done = fn(p["x"], p["y"], p["idx"], np.zeros((0, N_OUT), F32), st["w1"], st["w2"],
              p["clamped"], ACT_LEAKY_RELU, 0.1, LOSS_MSE, lr, lr, k1, k2, alpha,
              st["meter_i"], st["meter_f"], st["counts1"], st["counts2"], *extra)
    return tuple(int(v) for v in done), st


def _assert_same(kern, ref):
    assert kern[0] == ref[0]
    a, b = kern[1], ref[1]
    for name in ("w1", "w2", "counts1", "counts2", "meter_i"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_allclose(a["meter_f"], b["meter_f"], rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("share", [0.003, 0.05, 1 / MASK_SHARE, 0.4, 1.0])
def test_chunk_beyond_one_row_block_matches_reference(seed, share):
    """More input rows than ``ROW_BLOCK`` (and not a multiple of four): the selected writes
    are applied block by block ahead of the forward read, or as masks."""
    rng = np.random.default_rng(seed)
    n_in, kp = ROW_BLOCK * 2 + 7, int(rng.integers(3, 40))
    p = _problem(rng, n_in, kp)
    k1 = max(1, int(share * n_in * (kp - 1)))
    k2 = max(1, int(share * kp * N_OUT))
    _assert_same(_run(train_chunk, p, k1, k2), _run(train_chunk_ref, p, k1, k2))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("share", [0.01, 0.1, 0.3, 0.7])
def test_chunk_ties_are_broken_in_row_major_order(seed, share):
    """Quantized inputs and weights: many equal products; the synapses written must be the
    reference's (the first tied ones in row-major order), in every write path."""
    rng = np.random.default_rng(100 + seed)
    n_in, kp = int(rng.integers(5, 90)), int(rng.integers(2, 20))
    p = _problem(rng, n_in, kp, quantized=True)
    k1 = max(1, int(share * n_in * (kp - 1)))
    k2 = max(1, int(share * kp * N_OUT))
    _assert_same(_run(train_chunk, p, k1, k2, lr=0.25), _run(train_chunk_ref, p, k1, k2,
                                                               lr=0.25))


@pytest.mark.parametrize("seed", range(6))
def test_chunk_dense_large_matches_reference(seed):
    """A dense input layer of several row blocks (the four-row fused update and forward)."""
    rng = np.random.default_rng(200 + seed)
    p = _problem(rng, 203, int(rng.integers(5, 70)), n_samples=5)
    _assert_same(_run(train_chunk, p, -1, -1), _run(train_chunk_ref, p, -1, -1))


@pytest.mark.parametrize("seed", range(2))
def test_chunk_longer_than_the_byte_counters_matches_reference(seed):
    """Sparse input-layer writes are counted in bytes (``sgd_kernel.BYTE_COUNTS``) added into
    counts1 every 255 samples: a chunk of 700 samples of one image, in which synapses are
    written in every sample (a byte would wrap within 256), gives the reference's counts."""
    rng = np.random.default_rng(400 + seed)
    p = _problem(rng, 23, 4, n_images=1, n_samples=700)
    k1 = int(0.1 * 23 * 3)
    kern = _run(train_chunk, p, k1, -1, lr=1e-4)
    assert kern[0] == (700, 0) and kern[1]["counts1"].max() > 255
    _assert_same(kern, _run(train_chunk_ref, p, k1, -1, lr=1e-4))


def _topk_rows(a, b, k):
    """Pairs read back row by row with topk_prepare / topk_row, each row sorted."""
    ws = topk_workspace(a.size, b.size, np.empty(a.size * b.size))
    n = topk_prepare(a, b, k, ws)
    st = ws.state
    ties = st[S_TIES]
    out_i, out_j = [], []
    for t in range(st[S_ROWS]):
        cnt, ties = topk_row(a, b, t, ws.rows, ws.cols, ws.qa, ws.sb, ws.col_order, st[S_MODE],
                             st[S_NB], st[S_TAKE], st[S_CAND], st[S_COLS], ws.threshold[0],
                             ties, ws.row_out)
        out_i += [ws.rows[t]] * cnt
        out_j += sorted(ws.row_out[:cnt].tolist())
    return n, np.array(out_i, np.int64), np.array(out_j, np.int64)


@pytest.mark.parametrize("seed", range(60))
def test_topk_prepare_and_rows_give_the_reference_pairs(seed):
    """Exact pairs, ties included (the reference breaks them in row-major order too)."""
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 50)), int(rng.integers(1, 70))
    values = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    a = rng.choice(values, m) if seed % 2 else rng.random(m) * (rng.random(m) > 0.2)
    b = rng.choice(values, n) if seed % 3 == 0 else 10.0 ** rng.uniform(-6, 2, n)
    for k in {0, 1, m * n // 9, m * n // 2, m * n, int(rng.integers(0, m * n + 1))}:
        ref_i, ref_j, _ = topk_outer_ref(a, b, k)
        n_sel, got_i, got_j = _topk_rows(a, b, k)
        assert n_sel == ref_i.size == got_i.size
        np.testing.assert_array_equal(got_i, ref_i)
        np.testing.assert_array_equal(got_j, ref_j)
        # the ordered public entry point gives them in row-major order as they are
        size = m * n
        sel_i, sel_j = np.empty(size, np.int64), np.empty(size, np.int64)
        count = topk_outer(a, b, k, sel_i, sel_j, np.empty(size), sel_i.copy(), sel_j.copy())
        np.testing.assert_array_equal(sel_i[:count], ref_i)
        np.testing.assert_array_equal(sel_j[:count], ref_j)


@pytest.mark.parametrize("n", [1, 2, 7, 51, 300])
def test_argsort_desc_sorts(n):
    rng = np.random.default_rng(n)
    b = np.round(rng.random(n), 1)  # with repeats
    order = np.empty(n, np.int64)
    _argsort_desc(b, order)
    assert sorted(order.tolist()) == list(range(n))
    assert np.all(np.diff(b[order]) <= 0)


@pytest.mark.parametrize("few_method", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_masked_plan_counts_and_meter(seed, few_method):
    """Per-row counts are the number of selected pairs in each row, the selected columns are
    the row's largest |post|, and the meter is the pair-by-pair one; for few columns (counted
    by direct comparison, ``fold.FEW_COLUMNS``) and many, with and without products tied at
    the threshold; after either selection method (``topk_prepare_few``: the output layer)."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 60))
    n = int(rng.integers(2, FEW_COLUMNS + 1) if seed % 2 else rng.integers(FEW_COLUMNS + 1, 40))
    if seed % 8 in (1, 3):
        n = 10  # the output layer's own loop, with products tied at the threshold or not
    if seed % 4 >= 2:  # few distinct magnitudes: ties at the threshold
        pre = rng.choice(np.array([-1.0, -0.5, 0.5, 1.0, 2.0], F32), size=m)
        post = rng.choice(np.array([-0.25, 0.25, 0.5], F32), size=n)
    else:
        pre = rng.normal(size=m).astype(F32)
        post = rng.normal(size=n).astype(F32)
    pre[rng.random(m) < 0.2] = 0.0
    a, b = np.abs(pre.astype(np.float64)), np.abs(post.astype(np.float64))
    k = int(rng.integers(1, m * n + 1))
    ws = topk_workspace(m, n, np.empty(m * n))
    (topk_prepare_few if few_method else topk_prepare)(a, b, k, ws)
    order, rank = np.empty(n, np.int64), np.empty(n, np.int64)
    cum_b, cum_pos, n_row = np.empty(n + 1), np.empty(n + 1), np.empty(m, np.int64)
    meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, N_METER_F))
    if not masked_plan(pre, post, 0.1, a, b, ws, order, rank, cum_b, cum_pos, n_row, meter_i,
                       meter_f, 1):
        # declined only when the tied products must be split in row-major order
        assert 0 < ws.state[S_TIES] < ws.state[S_EQ] and meter_i[1] == 0
        return
    ref_i, ref_j, _ = topk_outer_ref(a, b, k)
    np.testing.assert_array_equal(n_row, np.bincount(ref_i, minlength=m))
    mask = np.zeros((m, n), bool)
    mask[ref_i, ref_j] = True
    np.testing.assert_array_equal(mask, rank[None, :] < n_row[:, None])
    dw = -0.1 * np.outer(pre.astype(np.float64), post.astype(np.float64))[mask]
    assert meter_i[1] == mask.sum()
    np.testing.assert_allclose(meter_f[1, MF_M1], np.abs(dw).sum(), rtol=1e-12)
    np.testing.assert_allclose(meter_f[1, MF_M1_POT], dw[dw > 0].sum(), rtol=1e-12,
                               atol=1e-300)


@pytest.mark.parametrize("seed", range(24))
def test_transposed_output_layer_matches_the_row_major_one(seed):
    """The plain kernel keeps a dense or masked output layer transposed: its sums are the
    row-major ones bit for bit (the same order), for ten outputs (held in registers) and
    for other counts, and its dense update is the per-pair rule."""
    from neuroenergy.error_signals import (_hidden_error, _hidden_error_t, _output_sums,
                                           _output_sums_t)
    from neuroenergy.fold import dense_output_update_t
    rng = np.random.default_rng(seed)
    kp = int(rng.integers(1, 300))
    n_out = (1, 3, 10, 12)[seed % 4]
    w2 = rng.normal(0, 0.3, (kp, n_out)).astype(F32)
    w2t = w2.T.copy()  # a copy even for one output (w2.T is then contiguous already)
    h = rng.normal(size=kp).astype(F32)
    h[rng.random(kp) < 0.3] = 0.0
    a = rng.normal(size=kp).astype(F32)
    post = rng.normal(size=n_out).astype(F32)
    post[rng.random(n_out) < 0.3] = 0.0
    clamped = rng.random(kp) < 0.1
    z0 = rng.normal(size=n_out)
    z, z_t = z0.copy(), z0.copy()
    _output_sums(h, w2, z)
    _output_sums_t(h, w2t, z_t)
    np.testing.assert_array_equal(z_t, z)
    dh, dh_t = np.zeros(kp, F32), np.zeros(kp, F32)
    _hidden_error(w2, post, a, h, clamped, ACT_LEAKY_RELU, 0.1, dh)
    _hidden_error_t(w2t, post, a, h, clamped, ACT_LEAKY_RELU, 0.1, dh_t, np.empty(kp))
    np.testing.assert_array_equal(dh_t, dh)
    counts_t = np.zeros((n_out, kp), np.int32)
    col_acc = np.zeros(n_out, np.int32)
    dense_output_update_t(w2t, h, post, 0.05, counts_t, col_acc, np.empty(kp, F32))
    written = (h[:, None] != 0) & (post[None, :] != 0)
    c = (np.float32(-0.05) * h).astype(F32)
    np.testing.assert_array_equal(w2t.T, np.where(written, w2 + c[:, None] * post[None, :],
                                                  w2))
    np.testing.assert_array_equal(col_acc[None, :] + counts_t.T, written)


@pytest.mark.parametrize("k, alpha, n, expected", [
    (-1, -1.0, 100, (1, None, None)),      # dense, closed-form meter
    (-1, 0.5, 100, (None, 1, None)),       # every write metered one by one (alpha)
    (13, -1.0, 100, (None, 1, 1)),         # >= 1 / MASK_SHARE of the layer: masks
    (12, -1.0, 96, (None, 1, 1)),
    (12, -1.0, 100, (None, 1, None)),      # sparse selection
    (13, 0.5, 100, (None, 1, None)),       # alpha meters write by write: no masks
])
def test_layer_modes(k, alpha, n, expected):
    assert MASK_SHARE == 8
    assert _layer_modes(k, alpha, n) == expected


def test_a_dense_run_compiles_no_selection_code(tmp_path):
    """The kernel compiled for backprop holds no selection or mask code (numba prunes the
    branches of None flags before it compiles), and one for a sparse selection no mask
    code; each compiles the error signals for one layout of the output layer (transposed
    for a dense one, row-major for a sparse selection): checked on the dispatchers a fresh
    process compiles with an empty numba cache."""
    import subprocess
    import sys
    script = """
import numpy as np
from neuroenergy import error_signals as es, fold, kernels, topk
from neuroenergy.sgd_kernel import train_chunk
rng = np.random.default_rng(0)
x = rng.normal(size=(4, 20)).astype(np.float32)
w1, w2 = np.zeros((20, 6), np.float32), np.zeros((6, 10), np.float32)
def run(k1, k2):
    train_chunk(x, np.arange(4) % 10, np.arange(4), np.zeros((0, 10), np.float32), w1, w2,
                np.zeros(6, bool), 0, 0.1, 0, 0.01, 0.01, k1, k2, -1.0, np.zeros(2, np.int64),
                np.zeros((2, 3)), np.zeros((20, 6), np.int32), np.zeros((6, 10), np.int32),
                np.zeros((0, 1)), np.zeros((2, 0, 1)), -1, 0)
def compiled(*fns):
    return [len(f.signatures) for f in fns]
run(-1, -1)
print(compiled(topk.topk_prepare, fold._apply_selected, fold.masked_plan,
               fold._count_dense, kernels.meter_dense_closed_form))
def layouts():
    # (w2_rows_on, w2_t_on) of each compiled _errors: the row-major sums are inlined there
    return sorted((str(s[5]), str(s[6])) for s in es._errors.signatures)
print(compiled(es._output_sums_t, es._hidden_error_t), layouts())
run(3, 2)
print(compiled(topk.topk_prepare, fold._apply_selected, fold.masked_plan,
               fold._count_dense, kernels.meter_dense_closed_form))
print(compiled(es._output_sums_t, es._hidden_error_t), layouts())
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dense, dense_errors, sparse, sparse_errors = proc.stdout.split("\n")[:4]
    assert dense == "[0, 0, 0, 1, 1]"   # only the dense writers
    assert dense_errors == "[1, 1] [('none', 'int64')]"  # the transposed output layer only
    assert sparse == "[1, 1, 0, 1, 1]"  # + the selection, still no masks
    assert sparse_errors == ("[1, 1] [('int64', 'none'), ('none', 'int64')]")  # + row-major
