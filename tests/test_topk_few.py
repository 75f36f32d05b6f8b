"""The output layer's selection (``topk.topk_prepare_few``, the method of ``topk_few``)
against the sort of the whole matrix in ``tests/reference.py``, on layers of few columns and
on others, and the masked output-layer update (``fold.apply_masked_t``) against the
per-pair rule it replaces."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroenergy.fold import FEW_COLUMNS, apply_masked_rows, apply_masked_t
from neuroenergy.topk import MODE_SCAN, S_MODE, S_ROWS, topk_prepare_few, topk_workspace
from neuroenergy.topk_rows import topk_read

from reference import topk_outer_ref


def select(a, b, k):
    size = a.size * b.size
    sel_i = np.full(size, -7, np.int64)
    sel_j = np.full(size, -7, np.int64)
    ws = topk_workspace(a.size, b.size, np.empty(size))
    n = topk_prepare_few(a, b, k, ws)
    assert topk_read(a, b, sel_i, sel_j, ws, True) == n
    return sel_i[:n], sel_j[:n]


def check(a, b, k, exact_pairs):
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    sel_i, sel_j = select(a, b, k)
    ref_i, ref_j, ref_values = topk_outer_ref(a, b, k)
    assert sel_i.size == ref_i.size
    flat = sel_i * b.size + sel_j
    assert np.all(np.diff(flat) > 0), "pairs not in row-major order, or repeated"
    values = a[sel_i] * b[sel_j]
    assert np.all(values > 0.0)
    np.testing.assert_array_equal(np.sort(values)[::-1], ref_values)
    if exact_pairs:
        np.testing.assert_array_equal(sel_i, ref_i)
        np.testing.assert_array_equal(sel_j, ref_j)


def _vector(rng, size, zero_fraction, octaves):
    v = 2.0 ** rng.uniform(-octaves / 2, octaves / 2, size)
    v[rng.random(size) < zero_fraction] = 0.0
    return v


def test_the_few_column_method_reads_back_in_the_scan_mode():
    rng = np.random.default_rng(0)
    a, b = _vector(rng, 1000, 0.05, 20), _vector(rng, 10, 0.0, 6)
    ws = topk_workspace(1000, 10, np.empty(10000))
    assert topk_prepare_few(a, b, 7840, ws) == 7840
    assert ws.state[S_MODE] == MODE_SCAN
    assert ws.state[S_ROWS] <= np.count_nonzero(a)  # rows that cannot reach are dropped


@pytest.mark.parametrize("seed", range(60))
def test_few_columns_match_the_sort_of_the_whole_matrix(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.choice([1, 2, 7, 60, 700, 3000]))
    n = int(rng.integers(1, FEW_COLUMNS + 1))
    octaves = float(rng.choice([0.01, 1.0, 10.0, 40.0, 300.0]))  # one bin .. very wide ranges
    a = _vector(rng, m, float(rng.choice([0.0, 0.3])), octaves)
    b = _vector(rng, n, float(rng.choice([0.0, 0.3])), octaves)
    nnz = np.count_nonzero(a) * np.count_nonzero(b)
    for k in {1, 2, max(nnz // 100, 1), nnz // 2, int(0.784 * nnz), nnz - 1,
              int(rng.integers(0, nnz + 1))}:
        if 0 < k:
            check(a, b, k, exact_pairs=True)  # continuous values: no ties


@pytest.mark.parametrize("seed", range(6))
def test_any_number_of_columns_is_exact(seed):
    rng = np.random.default_rng(100 + seed)
    a, b = _vector(rng, 300, 0.1, 20.0), _vector(rng, 90, 0.1, 20.0)
    nnz = np.count_nonzero(a) * np.count_nonzero(b)
    for k in (1, nnz // 100, nnz // 2, nnz - 1):
        check(a, b, k, exact_pairs=True)


def test_edge_cases():
    assert select(np.zeros(5), np.ones(3), 4)[0].size == 0
    assert select(np.ones(5), np.ones(3), 0)[0].size == 0
    sel_i, sel_j = select(np.array([0.0, 0.0, 5.0]), np.array([0.0, 1.0]), 6)
    assert (sel_i.tolist(), sel_j.tolist()) == ([2], [1])  # everything, zeros left out
    check(np.array([1e-200, 1.0]), np.array([1e-200]), 2, exact_pairs=True)  # underflow
    check(np.array([1.0, 2.0 ** 64]), np.array([1.0, 2.0 ** -64, 2.0 ** 10]), 2,
          exact_pairs=True)


def test_many_rows_in_coarse_bins():
    rng = np.random.default_rng(5)
    a = _vector(rng, 60000, 0.1, 60.0)  # 60 octaves over at most 1,024 bins
    b = _vector(rng, 10, 0.0, 8.0)
    for k in (1, 777, 300000, 539999):
        check(a, b, k, exact_pairs=True)


_element = st.one_of(st.just(0.0),
                     st.floats(min_value=1e-6, max_value=1e3),
                     st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]))  # repeated values: ties


@st.composite
def few_problem(draw):
    m = draw(st.integers(1, 300))
    n = draw(st.integers(1, FEW_COLUMNS))
    a = draw(arrays(np.float64, m, elements=_element))
    b = draw(arrays(np.float64, n, elements=_element))
    return a, b, draw(st.integers(1, m * n))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(few_problem())
def test_few_columns_with_ties(problem):
    a, b, k = problem
    check(a, b, k, exact_pairs=True)  # ties: the first ones in row-major order


def test_products_that_round_onto_the_threshold():
    # a[i] * b[j] within an ulp of each other across columns: the bounds must be widened
    b = np.array([1.0, 1.0 + 2.0 ** -52, 3.0, 3.0 * (1 + 2.0 ** -51), 1.0 / 3.0])
    a = np.nextafter(1.0, 2.0) ** np.arange(-40, 40) * 0.75
    for k in range(1, a.size * b.size, 7):
        check(a, b, k, exact_pairs=True)


@pytest.mark.parametrize("seed", range(20))
def test_masked_update_of_the_transposed_layer_equals_the_rank_rule(seed):
    rng = np.random.default_rng(seed)
    kp = int(rng.integers(1, 400))
    n = int(rng.choice([3, 10, 16]))
    w = rng.normal(0, 0.1, (kp, n)).astype(np.float32)
    counts = rng.integers(0, 5, (kp, n)).astype(np.int32)
    pre = rng.normal(0, 1, kp).astype(np.float32)
    post = rng.normal(0, 1, n).astype(np.float32)
    rank = rng.permutation(n).astype(np.int64)
    n_row = rng.integers(0, n + 1, kp).astype(np.int64)
    w0, counts0 = w.copy(), counts.copy()
    w_ref, counts_ref = w.copy(), counts.copy()
    apply_masked_rows(w_ref, pre, post, np.float32(0.01), n_row, rank, counts_ref, 0, kp)
    w_t, counts_t = w.T.copy(), counts.T.copy()
    apply_masked_t(w_t, pre, post, np.float32(0.01), n_row, rank, counts_t,
                   np.empty(kp, np.float32))
    # the rule: row i writes the columns of its n_row[i] lowest ranks, in float32
    selected = rank[None, :] < n_row[:, None]
    c = (np.float32(-0.01) * pre).astype(np.float32)
    np.testing.assert_array_equal(w_t.T, np.where(selected, w0 + c[:, None] * post[None, :],
                                                  w0))
    np.testing.assert_array_equal(counts_t.T, counts0 + selected)
    np.testing.assert_array_equal(w_t.T, w_ref)
    np.testing.assert_array_equal(counts_t.T, counts_ref)


def test_ties_split_in_row_major_order_are_written_by_the_pair_writer():
    """When products tied at the threshold must be split, the masked plan declines and the
    kernel writes the pairs of the scan mode (``fold._apply_selected``): exactly the
    reference's pairs, the first tied ones in row-major order."""
    from neuroenergy.fold import _apply_selected, _band_sums, masked_plan
    from neuroenergy.kernels import MF_M1, N_METER_F
    from neuroenergy.topk import S_EQ, S_TIES
    pre = np.array([1.0, -1.0, 0.5, 1.0, 0.0, -2.0], np.float32)
    post = np.array([0.5, -0.5, 0.25, 1.0], np.float32)
    a, b = np.abs(pre.astype(np.float64)), np.abs(post.astype(np.float64))
    m, n = a.size, b.size
    k = 9  # ends inside the products tied at 0.5
    ws = topk_workspace(m, n, np.empty(m * n))
    assert topk_prepare_few(a, b, k, ws) == k
    assert 0 < ws.state[S_TIES] < ws.state[S_EQ]
    order, rank = np.empty(n, np.int64), np.empty(n, np.int64)
    cum_b, cum_pos, n_row = np.empty(n + 1), np.empty(n + 1), np.empty(m, np.int64)
    meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, N_METER_F))
    assert not masked_plan(pre, post, 0.1, a, b, ws, order, rank, cum_b, cum_pos, n_row,
                           meter_i, meter_f, 1)
    w = np.zeros((m, n), np.float32)
    counts = np.zeros((m, n), np.uint8)
    _band_sums(ws, b, post, cum_b, cum_pos)
    _apply_selected(w, pre, post, 0.1, a, b, ws, cum_b, cum_pos, m, 0, counts, -1.0, meter_i,
                    meter_f, 1)
    ref_i, ref_j, _ = topk_outer_ref(a, b, k)
    expected = np.zeros((m, n), np.uint8)
    expected[ref_i, ref_j] = 1
    np.testing.assert_array_equal(counts, expected)
    assert meter_i[1] == k
    dw = 0.1 * a[ref_i] * b[ref_j]
    np.testing.assert_allclose(meter_f[1, MF_M1], dw.sum(), rtol=1e-12)
