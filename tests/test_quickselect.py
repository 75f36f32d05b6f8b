"""The exact step of the top-k selections (``quickselect.threshold_of``) against a sort:
both of its methods (the branch-free copying selection when the buffer holds twice the
entries, the in-place partition otherwise), with many ties and runs of equal values."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroenergy.quickselect import threshold_of


def _check(values, r, spare):
    n = values.size
    buf = np.empty(n + spare)
    buf[:n] = values
    t, above, equal = threshold_of(buf, n, r)
    expected = np.sort(values)[::-1][r - 1]
    assert t == expected
    assert above == np.count_nonzero(values > expected)
    assert equal == np.count_nonzero(values == expected)
    assert above < r <= above + equal


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0, 1e-300, 7e300]), min_size=1,
                max_size=80), st.data())
def test_ties_and_extremes(values, data):
    values = np.array(values)
    r = data.draw(st.integers(1, values.size))
    for spare in (0, values.size - 1, values.size, 3 * values.size):
        _check(values, r, spare)


@pytest.mark.parametrize("seed", range(30))
def test_random_sizes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    values = rng.random(n) if seed % 3 else np.round(rng.random(n) * 5)
    if seed % 5 == 0:
        values = np.full(n, 0.25)
    for r in (1, n, int(rng.integers(1, n + 1))):
        for spare in (0, n):
            _check(values, r, spare)
