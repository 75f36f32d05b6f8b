"""Row-at-a-time tallies (``tally_rows.tally_writes`` and ``neuroenergy.row_tally``): the same
statistics as one ``tally_write`` per write (counts, pulses, bits and maxima exactly, float
sums to 1e-12), and a kernel's metered writes priced on several devices agree with the
pure-Python reference tallies."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_models import pack_kernel_params, presets
from hardware_models import tally as T
from hardware_models import tally_rows as TR

from hw_reference import ref_tally_row, ref_tally_write
from test_hw_tally_inlined import _models, _stream


# slots that only ever receive whole numbers: equal in any summation order
_EXACT = [T.STAT_WRITES, T.STAT_NOOP, T.STAT_CHANGED, T.STAT_CLIPPED, T.STAT_ROWS,
          T.STAT_ROWS_ACTIVE, T.STAT_ROW_WRITES]


def _same_stats(got, want, what, kind=None):
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(got[..., _EXACT], want[..., _EXACT], err_msg=str(what))
    if kind != T.KIND_BIOLOGY:  # pulses and bits are whole numbers too
        np.testing.assert_array_equal(got[..., [T.STAT_SIZE_POT, T.STAT_SIZE_DEP]],
                                      want[..., [T.STAT_SIZE_POT, T.STAT_SIZE_DEP]],
                                      err_msg=str(what))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=str(what))


def _flat(wo, wn, u):
    """(values, offset of the old weights, of the new ones, of the uniforms): the layout
    tally_writes reads, with some padding in front and between."""
    n = len(wo)
    vals = np.full(3 + 3 * n + 2, np.nan)
    vals[3:3 + n], vals[4 + n:4 + 2 * n], vals[5 + 2 * n:5 + 3 * n] = wo, wn, u
    return vals, 3, 4 + n, 5 + 2 * n


def _sequential(p, wo, wn, u):
    """What the kernels did before: one tally_write per write (into a fresh stats row)."""
    stats = np.zeros(T.N_STATS)
    largest = 0.0
    for t in range(wo.shape[0]):
        size = T.tally_write(p, stats, wo[t], wn[t], u[t])
        largest = max(largest, size)
    return stats, largest


def test_tally_writes_matches_tally_write():
    rng = np.random.default_rng(11)
    models = _models(rng, 40)
    for start in range(0, len(models), 4):
        group = models[start:start + 4]
        hw = pack_kernel_params(group)
        n_dev = hw.shape[0]
        for n in (0, 1, 7, 300):
            wo, wn, _, _ = _stream(rng, hw[0], max(n, 1))
            wo, wn = wo[:n].copy(), wn[:n].copy()
            u = rng.random(max(n, 1))
            stats = np.zeros((2, n_dev, T.N_STATS))
            for d in range(n_dev):
                got = TR.tally_writes(hw, stats, 1, d, *_flat(wo, wn, u), n)
                want_stats, want_max = _sequential(hw[d], wo, wn, u)
                _same_stats(stats[1, d], want_stats, group[d], int(hw[d, T.P_KIND]))
                assert got == want_max, group[d]
            assert not stats[0].any()


@pytest.mark.parametrize("seed", range(6))
def test_analog_blocks_without_a_pulse_are_tallied_like_every_write(seed):
    """Analog rows mostly of changes far below one step, which ``_analog_rows`` tallies a
    block of 16 at a time, with writes at the edges of its test among them: half a step
    (nearest), one step less the snapping distance (ceil), x + u just below and above one
    (stochastic), clipped weights. Counts and pulses exactly as write by write."""
    rng = np.random.default_rng(seed)
    analog = [m for m in _models(rng, 40) if m.kind == "analog"]
    hw = pack_kernel_params(analog)
    for d in range(hw.shape[0]):
        w_max, step = hw[d, T.P_W_MAX], min(hw[d, T.P_DW_POT], hw[d, T.P_DW_DEP])
        n = int(rng.choice([16, 64, 200, 400]))
        wo = rng.normal(0.0, 0.3 * w_max, n)
        x = np.abs(rng.normal(0.0, 0.01, n))  # changes in steps: nearly all far below one
        u = rng.random(n)
        edges = rng.random(n) < 0.02
        x[edges] = rng.choice([0.4999, 0.49995, 0.5, 0.50001]
                              if hw[d, T.P_ROUNDING] == T.ROUND_NEAREST else
                              [0.9998, 0.99985, 0.9999, 0.99995, 1.0, 1.00001], edges.sum())
        near = rng.random(n) < 0.03  # stochastic: x + u at one, from both sides
        u[near] = np.clip(1.0 - x[near] + rng.choice([-3e-4, -1e-4, -1e-12, 0.0, 1e-12],
                                                     near.sum()), 0.0, np.nextafter(1.0, 0.0))
        wo[rng.random(n) < 0.05] = 1.2 * w_max  # beyond the range: clipped
        wn = wo + np.where(rng.random(n) < 0.5, 1.0, -1.0) * x * step
        stats = np.zeros((1, hw.shape[0], T.N_STATS))
        got = TR.tally_writes(hw, stats, 0, d, *_flat(wo, wn, u), n)
        want_stats, want_max = _sequential(hw[d], wo, wn, u)
        _same_stats(stats[0, d], want_stats, analog[d], T.KIND_ANALOG)
        assert got == want_max, analog[d]


def test_tally_writes_adds_to_existing_sums_in_order():
    """A row priced in two pieces gives the sums of one sequential stream."""
    rng = np.random.default_rng(5)
    hw = pack_kernel_params([presets.get("pcm"), presets.get("sram-22nm"),
                             presets.get("ecram"), presets.get("biology-low")])
    wo, wn, _, _ = _stream(rng, hw[0], 500)
    u = rng.random(500)
    stats = np.zeros((1, 4, T.N_STATS))
    for d in range(4):
        TR.tally_writes(hw, stats, 0, d, *_flat(wo[:123], wn[:123], u[:123]), 123)
        TR.tally_writes(hw, stats, 0, d, *_flat(wo[123:], wn[123:], u[123:]), 377)
        want, _ = _sequential(hw[d], wo, wn, u)
        _same_stats(stats[0, d], want, d, int(hw[d, T.P_KIND]))


def test_tally_writes_ignores_padding_and_flags_unknown_kinds():
    hw = np.zeros((2, T.N_PARAMS))
    hw[1, T.P_KIND] = 9.0
    stats = np.zeros((1, 2, T.N_STATS))
    x = np.array([0.1, 0.2])
    assert TR.tally_writes(hw, stats, 0, 0, *_flat(x, x, x), 2) == 0.0
    assert np.isnan(TR.tally_writes(hw, stats, 0, 1, *_flat(x, x, x), 2))
    assert not stats.any()


# --- a kernel's writes against the pure-Python reference --------------------------------
_DETERMINISTIC = ("rram-neurosim", "rram-ideal", "agsi", "fefet", "sram-22nm", "sram-cell",
                  "stt-mram", "edram-isaac", "biology-low")


def _reference_pairs(w, pre, post, lr, sel_i, sel_j, hw):
    """Writes of ``kernels.write_pairs`` priced with ``hw_reference`` (float weights)."""
    stats = np.zeros((hw.shape[0], T.N_STATS))
    w = w.copy()
    row, n_row, row_max = -1, 0, np.zeros(hw.shape[0])

    def close():
        if n_row > 0:
            for d in range(hw.shape[0]):
                ref_tally_row(hw[d], stats[d], n_row, row_max[d])

    for i, j in zip(sel_i, sel_j):
        if i != row:
            close()
            row, n_row, row_max[:] = i, 0, 0.0
        dw = -lr * float(pre[i]) * float(post[j])
        if dw == 0.0:
            continue
        w_old = float(w[i, j])
        w[i, j] = w[i, j] + np.float32(-np.float32(lr) * pre[i]) * post[j]
        n_row += 1
        for d in range(hw.shape[0]):
            row_max[d] = max(row_max[d], ref_tally_write(hw[d], stats[d], w_old, w_old + dw, 0.5))
    close()
    return w, stats


def _layer_update(rng, names, n_in, n_out):
    """(hw_params of the presets, weights with some beyond the device range, pre, post, lr)
    of a layer's update dw = -lr pre post."""
    hw = pack_kernel_params([presets.get(n) if n.startswith("biology")
                             else presets.get(n, w_max=0.5) for n in names])
    w = rng.normal(0.0, 0.2, (n_in, n_out)).astype(np.float32)
    w[rng.random(w.shape) < 0.05] = 0.6  # beyond the device range: clipped
    pre = rng.normal(0.0, 1.0, n_in).astype(np.float32)
    post = rng.normal(0.0, 1.0, n_out).astype(np.float32)
    return hw, w, pre, post, float(rng.choice([1e-4, 0.01, 0.3]))


@settings(max_examples=25, deadline=None)
@given(n_in=st.integers(1, 40), n_out=st.integers(1, 30), seed=st.integers(0, 2**31 - 1),
       dense=st.booleans())
def test_write_pairs_priced_like_the_reference(n_in, n_out, seed, dense):
    from neuroenergy.kernels import write_pairs
    rng = np.random.default_rng(seed)
    names = [_DETERMINISTIC[i] for i in rng.choice(len(_DETERMINISTIC), 3, replace=False)]
    hw, w, pre, post, lr = _layer_update(rng, names, n_in, n_out)
    pre[rng.random(n_in) < 0.2] = 0.0
    if dense:
        sel_i, sel_j = (a.ravel() for a in np.meshgrid(np.arange(n_in), np.arange(n_out),
                                                        indexing="ij"))
    else:
        flat = np.sort(rng.choice(n_in * n_out, max(1, n_in * n_out // 5), replace=False))
        sel_i, sel_j = flat // n_out, flat % n_out
    sel_i, sel_j = sel_i.astype(np.int64), sel_j.astype(np.int64)
    w_ref, stats_ref = _reference_pairs(w, pre, post, lr, sel_i, sel_j, hw)
    stats = np.zeros((2, hw.shape[0], T.N_STATS))
    meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, 3))
    counts = np.zeros((n_in, n_out), np.int32)
    write_pairs(w, pre, post, lr, sel_i, sel_j, sel_i.size, 1, -1.0, meter_i, meter_f,
                counts, hw, stats, -1)
    np.testing.assert_array_equal(w, w_ref)
    assert not stats[0].any()
    for d, name in enumerate(names):
        _same_stats(stats[1, d], stats_ref[d], name, int(hw[d, T.P_KIND]))
    assert stats[1, 0, T.STAT_WRITES] == meter_i[1]


@pytest.mark.parametrize("cap", [1, 3, 1000])
def test_row_buffer_splits_long_rows_without_changing_sums(cap):
    """A buffer smaller than a row prices it in pieces: the same statistics, the same row
    maxima, one tally_row per row."""
    from neuroenergy.row_tally import end_row, new_row_buffer, price_held, push_write
    rng = np.random.default_rng(cap)
    hw = pack_kernel_params([presets.get("pcm", w_max=0.5), presets.get("sram-22nm", w_max=0.5),
                             presets.get("ecram", w_max=0.5)])
    wo, wn, _, _ = _stream(rng, hw[0], 40)
    u = rng.random(40)
    buf = new_row_buffer(hw, cap, 0)
    assert buf[1] == 1.0  # ecram rounds stochastically: uniforms are drawn
    stats = np.zeros((1, 3, T.N_STATS))
    for t in range(40):
        at = push_write(buf, hw, stats, 0, wo[t], wn[t])
        buf[at] = u[t]
        if t in (19, 39):
            end_row(buf, hw, stats, 0, 20)
    price_held(buf, hw, stats)
    want = np.zeros((3, T.N_STATS))
    for lo in (0, 20):
        for d in range(3):
            largest = 0.0
            for t in range(lo, lo + 20):
                largest = max(largest, T.tally_write(hw[d], want[d], wo[t], wn[t], u[t]))
            T.tally_row(hw[d], want[d], 20, largest)
    for d in range(3):
        _same_stats(stats[0, d], want[d], d)


@pytest.mark.parametrize("seed", range(4))
def test_batches_of_short_and_long_rows_priced_like_every_write(seed):
    """Many rows in batches (16 to 1024 slots) on every kind of device, stochastic ones
    included (with given uniforms): rows that no write of a coarse device can pulse (priced
    from the rows' summaries), rows with writes near a pulse or beyond the range (write by
    write), rows of lost updates (0 -> 0), rows longer than the buffer. Counts, pulses,
    bits and row maxima exactly as one tally_write per write and tally_row per row."""
    from neuroenergy.row_tally import end_row, new_row_buffer, price_held, push_write
    rng = np.random.default_rng(seed)
    names = ["rram-neurosim", "pcm", "ecram", "sram-22nm", "biology-low", "agsi"]
    hw = pack_kernel_params([presets.get(n) if n.startswith("biology")
                             else presets.get(n, w_max=0.5) for n in names])
    buf = new_row_buffer(hw, 1, int(rng.choice([16, 64, 1024])))
    stats = np.zeros((1, len(names), T.N_STATS))
    want = np.zeros((len(names), T.N_STATS))
    for _ in range(60):
        m = int(rng.choice([1, 3, 10, 16, 17, 50, 100]))
        wo = rng.normal(0.0, 0.15, m)
        scale = rng.choice([1e-7, 1e-5, 1e-3, 3e-2])  # from far below a step to several
        wn = wo + rng.normal(0.0, scale, m)
        if rng.random() < 0.2:
            wo[rng.random(m) < 0.3] = 0.55  # beyond the range: clipped
        if rng.random() < 0.1:
            wn = wo.copy()  # lost updates only
        u = rng.random(m)
        largest = np.zeros(len(names))
        changed = 0
        for t in range(m):
            at = push_write(buf, hw, stats, 0, wo[t], wn[t])
            buf[at] = u[t]
            changed += wn[t] != wo[t]
            for d in range(len(names)):
                largest[d] = max(largest[d],
                                 T.tally_write(hw[d], want[d], wo[t], wn[t], u[t]))
        end_row(buf, hw, stats, 0, changed)
        if changed:
            for d in range(len(names)):
                T.tally_row(hw[d], want[d], changed, largest[d])
    price_held(buf, hw, stats)
    for d, name in enumerate(names):
        _same_stats(stats[0, d], want[d], name, int(hw[d, T.P_KIND]))


@numba.njit(cache=True)
def _seed_numba(seed):
    np.random.seed(seed)


@settings(max_examples=30, deadline=None)
@given(n_in=st.integers(1, 40), n_out=st.integers(1, 70), seed=st.integers(0, 2**31 - 1),
       zeros=st.sampled_from(["none", "pre", "post", "underflow"]))
def test_dense_priced_writes_match_the_pairwise_writer(n_in, n_out, seed, zeros):
    """``kernels.write_dense_priced`` (every pair, a row in one vectorised loop) against
    ``_write_pairs_impl`` over all pairs, which the test above checks against the reference:
    the same weights, counts and tallies (stochastic devices included: the same uniforms in
    the same order), meters equal to 1e-12. Zero inputs, zero errors and products that
    underflow to zero are not writes, and send rows down the write-by-write branch."""
    from neuroenergy.kernels import _write_pairs_impl, write_dense_priced
    from neuroenergy.row_tally import new_row_buffer, price_held
    rng = np.random.default_rng(seed)
    names = ["pcm", "ecram", "sram-22nm", "rram-neurosim", "biology-low"]
    hw, w, pre, post, lr = _layer_update(rng, names, n_in, n_out)
    if zeros == "pre":
        pre[rng.random(n_in) < 0.3] = 0.0
    elif zeros == "post":
        post[rng.random(n_out) < 0.3] = 0.0
    elif zeros == "underflow":  # float64 products of float32 values that round to zero
        lr = 1e-300
        post[rng.random(n_out) < 0.5] = np.float32(1e-30)
    sel_i, sel_j = (a.ravel().astype(np.int64) for a in np.meshgrid(
        np.arange(n_in), np.arange(n_out), indexing="ij"))
    out = []
    for dense in (True, False):
        wk, counts = w.copy(), np.zeros((n_in, n_out), np.int32)
        stats = np.zeros((2, hw.shape[0], T.N_STATS))
        meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, 3))
        buf = new_row_buffer(hw, n_out, int(rng.choice([0, 64, 1024])))  # batches of rows
        _seed_numba(seed)
        if dense:
            write_dense_priced(wk, pre, post, lr, 1, 0.5, meter_i, meter_f, counts, hw, stats,
                               buf)
        else:
            _write_pairs_impl(wk, pre, post, lr, sel_i, sel_j, sel_i.size, 1, 0.5, meter_i,
                              meter_f, counts, hw, stats, -1, buf)
        price_held(buf, hw, stats)
        out.append((wk, counts, stats, meter_i, meter_f))
    (w_a, c_a, s_a, mi_a, mf_a), (w_b, c_b, s_b, mi_b, mf_b) = out
    np.testing.assert_array_equal(w_a, w_b)
    np.testing.assert_array_equal(c_a, c_b)
    np.testing.assert_array_equal(mi_a, mi_b)
    np.testing.assert_allclose(mf_a, mf_b, rtol=1e-12, atol=0)
    for d, name in enumerate(names):
        _same_stats(s_a[1, d], s_b[1, d], name, int(hw[d, T.P_KIND]))
    assert not s_a[0].any()
