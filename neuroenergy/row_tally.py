"""The writes of weight rows, collected so the hardware tallies price them per device in batches.

A kernel puts every write of a row (old weight, new weight, float64) into a flat buffer and
closes the row when it moves on. Closed rows pile up back to back, each padded with zero
writes to whole blocks of 16 slots; when the buffer is full,
when the layer changes, or when the kernel is done (:func:`price_held`), one call of
``hardware_models.tally_rows.tally_batch`` prices them all (see there). A device's
statistics are thus updated once per batch instead of once per row, which is what a short row
(top-fraction, ~10 writes) used to cost most of. Counts, pulses, bits and row maxima are those
of per-write calls; float sums agree to ~1e-15 (``tests/hardware_models/test_hw_row_tally.py``).

A kernel's row loop uses the steps :func:`must_price_before` / :func:`price_rows` /
:func:`begin_row` and :func:`records_full` / :func:`close_row`, which take the buffer alone
(and scalars) where they run every row; :func:`open_row` and :func:`end_row` bundle them.

Buffer layout (float64, from :func:`new_row_buffer`), D devices, ``cap`` slots::

    [0]                          writes held in the open row, m (kernels set it)
    [1]                          1.0 if some device reads uniforms (stochastic rounding)
    [2]                          cursor: slots taken by closed rows (the open row starts here)
    [3]                          closed rows held, R
    [4]                          layer of the rows held (-1: none)
    [5 : 5 + D]                  each device's largest size over the priced pieces of the
                                 open row (a row longer than the buffer is priced in pieces)
    [B : B + cap]                old weights            (B = 5 + D)
    [B + cap : B + 2 cap]        new weights (old + the change, in float64)
    [B + 2 cap : B + 3 cap]      uniforms, one per write, shared by the devices
    [B + 3 cap : B + 4 cap]      largest size of each block of 16 slots (scratch of the pricing)
    [B + 4 cap : B + 6 cap + 2]  per closed row: writes held, writes that changed a weight
    [B + 6 cap + 2 : B + 9 cap + 2]  the open row's writes, aside while the rows before it
                                 are priced (the zero padding after them would overwrite it)
    [S : S + N_SUM (cap + 1)]    per row held and the open piece: its summary, shared by the
                                 devices (scratch of the pricing; S = B + 9 cap + 2)

Stats are complete only after :func:`price_held`: every kernel calls it before it returns.
"""
import numba
import numpy as np

from hardware_models.compiled_only import compiled_only
from hardware_models.llvm_ops import _ix
from hardware_models.tally import uses_uniform
from hardware_models.tally_rows import BLOCK, N_SUM, tally_batch

_M, _UNIFORM, _CURSOR, _ROWS, _LAYER = 0, 1, 2, 3, 4
_HEAD = 5
# slots of a buffer at least (a batch of short rows: the per-device cost of a pricing call
# is then shared by ~100 rows of top-fraction)
BATCH_SLOTS = 1024


@numba.njit(cache=True, inline="always")
def new_row_buffer(hw_params, row_len, batch=BATCH_SLOTS):
    """Buffer for the devices ``hw_params`` (n_devices, N_PARAMS) that holds a row of
    ``row_len`` writes whole and at least ``batch`` writes (longer rows are priced in
    pieces)."""
    n_dev = hw_params.shape[0]
    cap = (max(row_len, batch, 1) + BLOCK - 1) // BLOCK * BLOCK
    buf = np.zeros(_HEAD + n_dev + 9 * cap + 2 + N_SUM * (cap + 1))
    buf[_LAYER] = -1.0
    for d in range(n_dev):
        if uses_uniform(hw_params[d]):
            buf[_UNIFORM] = 1.0
    return buf


@numba.njit(cache=True, inline="always")
def row_capacity(buf, n_devices):
    return (buf.shape[0] - _HEAD - n_devices - 2 - N_SUM) // (9 + N_SUM)


@numba.njit(cache=True, inline="always")
def layout(buf, n_devices):
    """(start of the old weights, of the new weights, of the uniforms, capacity): a kernel
    that fills the buffer itself writes write t of its open row at ``start + cursor + t``
    (cursor from :func:`open_row`), keeps the count in a local variable (faster than
    :func:`push_write` in a tight loop) and sets ``buf[0]`` to it before :func:`end_row` or
    :func:`flush_writes`."""
    cap = row_capacity(buf, n_devices)
    base = _HEAD + n_devices
    return base, base + cap, base + 2 * cap, cap


@numba.njit(cache=True, inline="always")
def draws_uniforms(buf):
    """Whether some device reads the uniforms: callers draw them only then, so pricing on
    devices that round deterministically leaves the random streams of training alone."""
    return buf[_UNIFORM] != 0.0


@numba.njit(cache=True, inline="always")
def _zero(buf, base, cap, lo, hi):
    """Zero writes (0 -> 0, uniform 0) in slots [lo, hi): padding every device tallies as
    nothing but a lost update, which the pricing takes off again."""
    for t in range(lo, hi):
        buf[_ix(base + t)] = 0.0
        buf[_ix(base + cap + t)] = 0.0
        buf[_ix(base + 2 * cap + t)] = 0.0


@compiled_only(cache=True)
def price_rows(buf, hw_params, hw_stats, piece):
    """Price the closed rows held; the open row's writes stay, unless ``piece`` (an
    ``np.bool_``: a literal would compile this once more) prices them too (their maximum
    carried to the row's end; the open row then starts again at slot 0). Kernels call it
    directly, not through an inlined wrapper: numba links a called function's code into
    every caller and optimises it there again, so each wrapper level is seconds of a first
    compilation, and an inlined one in a row loop costs reference counting per row."""
    n_dev = hw_params.shape[0]
    cap = row_capacity(buf, n_dev)
    base = _HEAD + n_dev
    cur = int(buf[_CURSOR])
    m = int(buf[_M])
    n_rows = int(buf[_ROWS])
    layer = int(buf[_LAYER])
    at_rows = base + 4 * cap
    n = 0  # writes held; the slots also hold each closed row's padding
    for r in range(n_rows):
        n += int(buf[at_rows + 2 * r])
    n_slots = cur
    if piece:
        n += m
        n_slots += m
    aside = base + 6 * cap + 2
    if not piece:
        for t in range(m):
            buf[_ix(aside + t)] = buf[_ix(base + cur + t)]
            buf[_ix(aside + cap + t)] = buf[_ix(base + cap + cur + t)]
            buf[_ix(aside + 2 * cap + t)] = buf[_ix(base + 2 * cap + cur + t)]
    if layer >= 0 and (n > 0 or n_rows > 0):
        n_pad = min((n_slots + BLOCK - 1) // BLOCK * BLOCK, cap)
        _zero(buf, base, cap, n_slots, n_pad)
        # typed constants (np.int64, np.bool_ below): a literal argument would compile the
        # callee once more for every distinct constant, seconds each
        tally_batch(hw_params, hw_stats, layer, buf, base, base + cap, base + 2 * cap,
                    base + 3 * cap, n, n_pad, at_rows, n_rows, np.int64(_HEAD),
                    base + 9 * cap + 2, np.int64(0), n_dev)
    if piece:
        buf[_M] = 0.0
    else:  # the open row's writes move to the front
        for t in range(m):
            buf[_ix(base + t)] = buf[_ix(aside + t)]
            buf[_ix(base + cap + t)] = buf[_ix(aside + cap + t)]
            buf[_ix(base + 2 * cap + t)] = buf[_ix(aside + 2 * cap + t)]
    buf[_CURSOR] = 0.0
    buf[_ROWS] = 0.0


@numba.njit(cache=True, inline="always")
def price_held(buf, hw_params, hw_stats):
    """Price every closed row held (a kernel calls it before it returns; inlined, so the
    kernel links :func:`price_rows` alone)."""
    if buf[_ROWS] > 0.0 or buf[_CURSOR] > 0.0:
        price_rows(buf, hw_params, hw_stats, np.bool_(False))


@numba.njit(cache=True, inline="always")
def must_price_before(buf, n_devices, layer, row_len):
    """Whether the rows held must be priced (:func:`price_rows`) before a row of at most
    ``row_len`` writes in ``layer`` opens: it might not fit, or they belong to another
    layer. The per-row steps take only the buffer (and scalars): numba increments and
    decrements the reference count of each array passed to an inlined function, atomically,
    at every call unless the whole body uses it to the end, so a kernel's row loop calls
    these and :func:`price_rows` (not inlined) only when a batch is full."""
    cap = row_capacity(buf, n_devices)
    held = buf[_ROWS] > 0.0 or buf[_CURSOR] > 0.0
    room = (min(row_len, cap) + BLOCK - 1) // BLOCK * BLOCK
    return held and (int(buf[_CURSOR]) + room > cap or int(buf[_LAYER]) != layer)


@numba.njit(cache=True, inline="always")
def begin_row(buf, layer):
    """Open a row in ``layer`` (after :func:`must_price_before`); returns its first slot
    (relative to :func:`layout`'s starts)."""
    buf[_LAYER] = layer
    return int(buf[_CURSOR])


@numba.njit(cache=True, inline="always")
def open_row(buf, hw_params, hw_stats, layer, row_len):
    """Start a row of at most ``row_len`` writes in ``layer``; returns its first slot
    (relative to :func:`layout`'s starts). Prices the rows held first if the row might not
    fit or they belong to another layer."""
    if must_price_before(buf, hw_params.shape[0], layer, row_len):
        price_rows(buf, hw_params, hw_stats, np.bool_(False))
    return begin_row(buf, layer)


@numba.njit(cache=True, inline="always")
def flush_writes(buf, hw_params, hw_stats, layer):
    """Price what is held, the open row's writes so far included (for a row longer than
    the buffer); the row continues from slot 0."""
    buf[_LAYER] = layer
    price_rows(buf, hw_params, hw_stats, np.bool_(True))


@numba.njit(cache=True, inline="always")
def push_write(buf, hw_params, hw_stats, layer, w_old, w_new):
    """Hold one write of the open row; returns the position in ``buf`` of its uniform,
    which the caller sets if some device uses one (:func:`draws_uniforms`). Prices what is
    held first when the buffer is full or holds rows of another layer."""
    n_dev = hw_params.shape[0]
    cap = row_capacity(buf, n_dev)
    if int(buf[_M]) == 0:
        open_row(buf, hw_params, hw_stats, layer, 1)
    if int(buf[_CURSOR]) + int(buf[_M]) == cap:
        price_rows(buf, hw_params, hw_stats, int(buf[_CURSOR]) == 0)
    t = int(buf[_CURSOR]) + int(buf[_M])
    base = _HEAD + n_dev
    buf[base + t] = w_old
    buf[base + cap + t] = w_new
    buf[_M] += 1.0
    return base + 2 * cap + t


@numba.njit(cache=True, inline="always")
def records_full(buf, n_devices):
    """Whether the row records are full (rows without slots: a long row priced in pieces):
    :func:`price_rows` before :func:`close_row`."""
    return int(buf[_ROWS]) >= row_capacity(buf, n_devices)


@numba.njit(cache=True, inline="always")
def close_row(buf, n_devices, layer, row_n):
    """Close the open row (``buf[0]`` writes) of a buffer with devices (see
    :func:`end_row`)."""
    m = int(buf[_M])
    cap = row_capacity(buf, n_devices)
    base = _HEAD + n_devices
    r = int(buf[_ROWS])
    if m == 0 and row_n == 0:
        for d in range(n_devices):  # a row of no writes: nothing carries over
            buf[_HEAD + d] = 0.0
    else:
        at_rows = base + 4 * cap
        buf[_ix(at_rows + 2 * r)] = m
        buf[_ix(at_rows + 2 * r + 1)] = row_n
        buf[_ROWS] = r + 1.0
        # the row is padded to whole blocks, whose maxima the pricing keeps (tally_batch)
        cur = int(buf[_CURSOR])
        m_pad = (m + BLOCK - 1) // BLOCK * BLOCK
        _zero(buf, base, cap, cur + m, cur + m_pad)
        buf[_CURSOR] = cur + m_pad
        buf[_LAYER] = layer
    buf[_M] = 0.0


@numba.njit(cache=True, inline="always")
def end_row(buf, hw_params, hw_stats, layer, row_n):
    """Close the open row (``buf[0]`` writes): it is priced with the rows held, one
    ``tally_row`` per device if ``row_n`` (the writes that changed a weight) is positive."""
    n_dev = hw_params.shape[0]
    if n_dev > 0 and records_full(buf, n_dev):
        price_rows(buf, hw_params, hw_stats, np.bool_(False))
    if n_dev > 0:
        close_row(buf, n_dev, layer, row_n)
    buf[_M] = 0.0  # nothing is priced without devices: nothing is held
