"""Endurance: most-written cell, write-count distribution, runs before wear-out."""
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from hardware_models import HardwareModelError, lifetime_from_counts


def test_known_counts():
    counts = [np.array([[0, 3], [1, 0]]), np.array([[5]])]
    life = lifetime_from_counts(counts, 100.0, n_steps=10)
    assert life.max_cell_writes == 5 and life.max_cell == (1, 0, 0)
    assert life.layer_max_writes == [3, 5]
    assert life.lifetime_runs == pytest.approx(20.0)
    assert life.max_writes_per_step == pytest.approx(0.5)
    assert life.lifetime_steps == pytest.approx(200.0)
    assert life.fraction_cells_written == pytest.approx(3 / 5)
    assert life.mean_cell_writes == pytest.approx(9 / 5)
    assert life.n_cells == 5 and life.percentiles["p50"] == 1


def test_unlimited_unknown_and_unwritten():
    counts = [np.array([[2, 1]])]
    assert math.isinf(lifetime_from_counts(counts, math.inf).lifetime_runs)
    life = lifetime_from_counts(counts, None, n_steps=4)
    assert life.lifetime_runs is None and life.max_cell_writes == 2
    life = lifetime_from_counts([np.zeros((3, 3), np.int64)], 1e6, n_steps=4)
    assert math.isinf(life.lifetime_runs) and life.max_cell is None
    d = life.to_dict()
    assert d["lifetime_runs"] is None and d["lifetime_runs_unlimited"] is True


def test_bad_counts():
    with pytest.raises(HardwareModelError, match="integer"):
        lifetime_from_counts([np.ones((2, 2))], 10.0)
    with pytest.raises(HardwareModelError, match="negative"):
        lifetime_from_counts([-np.ones((2, 2), np.int64)], 10.0)
    with pytest.raises(HardwareModelError, match="shape"):
        lifetime_from_counts([np.ones((2, 2), np.int64)], 10.0, layer_shapes=[(2, 3)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=30), min_size=1,
                max_size=3))
def test_percentiles_match_numpy(layers):
    counts = [np.array(v, dtype=np.int64).reshape(1, -1) for v in layers]
    life = lifetime_from_counts(counts, 1e3, n_steps=7)
    flat = np.concatenate([c.ravel() for c in counts])
    for q in (50.0, 90.0, 99.0, 99.9):
        assert life.percentiles[f"p{q:g}"] == np.percentile(flat, q, method="inverted_cdf")
    assert life.max_cell_writes == flat.max()
    if flat.max() > 0:
        assert life.lifetime_runs == pytest.approx(1e3 / flat.max())
