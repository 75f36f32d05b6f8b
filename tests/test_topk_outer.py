"""The top-fraction selection kernel (``kernels.topk_outer``) against the sorted reference
in ``tests/reference.py``: random shapes and seeds, hypothesis problems, all-equal values,
the edge cases (k = 0, k above the positive products, underflowed products)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuroenergy.kernels import topk_outer

from reference import topk_outer_ref

F32 = np.float32
N_OUT = 10
METER_RTOL = 1e-9


# ============================================================================ topk_outer

def run_topk(a, b, k):
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    size = a.size * b.size
    sel_i = np.full(size, -7, np.int64)
    sel_j = np.full(size, -7, np.int64)
    cand_s = np.empty(size)
    cand_i = np.empty(size, np.int64)
    cand_j = np.empty(size, np.int64)
    n = topk_outer(a, b, k, sel_i, sel_j, cand_s, cand_i, cand_j)
    return sel_i[:n].copy(), sel_j[:n].copy()


def check_topk(a, b, k, exact_pairs=False):
    """The kernel's selection is a valid top-k: right size, the k largest values (ties
    anywhere among the tied), no zero product, no duplicate, grouped by row ascending."""
    sel_i, sel_j = run_topk(a, b, k)
    ref_i, ref_j, ref_values = topk_outer_ref(a, b, k)
    assert sel_i.size == ref_i.size
    if sel_i.size == 0:
        return sel_i, sel_j
    assert np.all(np.diff(sel_i) >= 0), "pairs not grouped by row in ascending order"
    assert np.all((sel_i >= 0) & (sel_i < len(a)) & (sel_j >= 0) & (sel_j < len(b)))
    flat = sel_i * len(b) + sel_j
    assert np.unique(flat).size == flat.size, "a pair was selected twice"
    values = np.asarray(a, np.float64)[sel_i] * np.asarray(b, np.float64)[sel_j]
    assert np.all(values > 0.0), "a zero product was selected"
    np.testing.assert_array_equal(np.sort(values)[::-1], ref_values)
    if exact_pairs:
        assert set(zip(sel_i.tolist(), sel_j.tolist())) == set(zip(ref_i.tolist(),
                                                                   ref_j.tolist()))
    return sel_i, sel_j


def _vector(rng, size, zero_fraction, spread):
    """Positive values log-uniform over ``spread`` decades, with exact zeros mixed in."""
    v = 10.0 ** rng.uniform(-spread / 2, spread / 2, size)
    v[rng.random(size) < zero_fraction] = 0.0
    return v


@pytest.mark.parametrize("seed", range(150))
def test_topk_random_shapes_match_reference(seed):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 41)), int(rng.integers(1, 61))
    spread = float(rng.choice([0.5, 3.0, 12.0, 200.0]))
    a = _vector(rng, m, rng.choice([0.0, 0.2, 0.8]), spread)
    b = _vector(rng, n, rng.choice([0.0, 0.2, 0.8]), spread)
    nnz = np.count_nonzero(a) * np.count_nonzero(b)
    for k in {0, 1, max(nnz // 7, 1), max(nnz // 2, 1), max(nnz - 1, 0), nnz, nnz + 3,
              m * n, int(rng.integers(0, m * n + 1))}:
        # continuous values: ties have probability zero, so the pair sets must agree
        check_topk(a, b, k, exact_pairs=True)


_element = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]),  # repeated values give ties
)


@st.composite
def topk_problem(draw):
    m = draw(st.integers(1, 40))
    n = draw(st.integers(1, 60))
    a = draw(arrays(np.float64, m, elements=_element))
    b = draw(arrays(np.float64, n, elements=_element))
    k = draw(st.one_of(st.integers(0, m * n + 2), st.sampled_from([0, 1, m * n])))
    return a, b, k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topk_problem())
def test_topk_hypothesis(problem):
    a, b, k = problem
    check_topk(a, b, k)


@settings(max_examples=100, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 60), value_a=st.sampled_from([1e-3, 0.7, 1.0]),
       value_b=st.sampled_from([0.5, 1.0, 42.0]), data=st.data())
def test_topk_all_equal_values(m, n, value_a, value_b, data):
    a = np.full(m, value_a)
    b = np.full(n, value_b)
    # k = everything, more than everything, and any k in between (all tied)
    for k in (m * n, m * n + 5, data.draw(st.integers(0, m * n))):
        sel_i, sel_j = check_topk(a, b, k)
        assert sel_i.size == min(k, m * n)


def test_topk_edge_cases():
    # nothing to select
    assert run_topk(np.zeros(5), np.ones(3), 4)[0].size == 0
    assert run_topk(np.ones(5), np.zeros(3), 4)[0].size == 0
    assert run_topk(np.ones(5), np.ones(3), 0)[0].size == 0
    assert run_topk(np.ones(5), np.ones(3), -1)[0].size == 0
    # one element
    sel_i, sel_j = run_topk(np.array([2.0]), np.array([3.0]), 1)
    assert (sel_i.tolist(), sel_j.tolist()) == ([0], [0])
    # a single nonzero pair among zeros, k larger than everything
    sel_i, sel_j = run_topk(np.array([0.0, 0.0, 5.0]), np.array([0.0, 1.0]), 6)
    assert (sel_i.tolist(), sel_j.tolist()) == ([2], [1])
    # the largest value sits exactly on the top bin edge
    check_topk(np.array([1.0, 2.0 ** 64]), np.array([1.0, 2.0 ** -64, 2.0 ** 10]), 2,
               exact_pairs=True)
    # one dominant row and column
    check_topk(np.r_[1e6, np.linspace(0.1, 1, 39)], np.r_[np.linspace(0.1, 1, 59), 1e6], 100,
               exact_pairs=True)


def test_topk_never_selects_an_underflowed_zero_product():
    a = np.array([1e-200, 1.0])
    b = np.array([1e-200])
    sel_i, _ = run_topk(a, b, 2)
    assert sel_i.tolist() == [1]
