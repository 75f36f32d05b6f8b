"""The writes of one weight row, collected so the hardware tallies price them per device.

A kernel pushes every write of a row (old weight, new weight, float64) into a flat buffer and
closes the row when it moves on; the buffer then calls
``hardware_models.tally_rows.tally_row_writes`` once, a vectorised loop per device, instead of
``tally_write`` once per device and write (a kind dispatch and a read-modify-write of the
statistics each time). Counts, pulses, bits and row maxima are identical to per-write
calls; float sums agree to ~1e-15 (``tests/hardware_models/test_hw_row_tally.py``).

Buffer layout (float64, from :func:`new_row_buffer`)::

    [0]                         number of writes held, m
    [1]                         1.0 if some device reads uniforms (stochastic rounding)
    [2 : 2 + D]                 largest size per device in the current row
    [B : B + cap]               old weights            (B = 2 + D)
    [B + cap : B + 2 cap]       new weights (old + the change, in float64)
    [B + 2 cap : B + 3 cap]     uniforms, one per write, shared by the devices

with D devices and ``cap`` writes per flush. A row longer than ``cap`` is priced in pieces
(same sums, since a row's writes only add to the sums and its maximum carries over).
"""
import numba
import numpy as np

from hardware_models.tally import tally_row, uses_uniform
from hardware_models.tally_rows import tally_row_writes

_HEAD = 2
# rows are priced in whole blocks of this many slots (zero-padded), so the vectorised loops
# never run their scalar remainder
_BLOCK = 16


@numba.njit(cache=True)
def new_row_buffer(hw_params, cap):
    """Buffer for the devices ``hw_params`` (n_devices, N_PARAMS) and up to ``cap`` writes
    per flush (a row's length keeps rows whole)."""
    n_dev = hw_params.shape[0]
    cap = (max(cap, 1) + _BLOCK - 1) // _BLOCK * _BLOCK
    buf = np.zeros(_HEAD + n_dev + 3 * cap)
    for d in range(n_dev):
        if uses_uniform(hw_params[d]):
            buf[1] = 1.0
    return buf


@numba.njit(cache=True, inline="always")
def row_capacity(buf, n_devices):
    return (buf.shape[0] - _HEAD - n_devices) // 3


@numba.njit(cache=True, inline="always")
def layout(buf, n_devices):
    """(start of the old weights, of the new weights, of the uniforms, capacity): for a
    kernel that fills the buffer itself, keeping the count in a local variable (faster than
    :func:`push_write` in a tight loop); it sets ``buf[0]`` to the count before
    :func:`end_row` or :func:`flush_writes`."""
    cap = row_capacity(buf, n_devices)
    base = _HEAD + n_devices
    return base, base + cap, base + 2 * cap, cap


@numba.njit(cache=True, inline="always")
def draws_uniforms(buf):
    """Whether some device reads the uniforms: callers draw them only then, so pricing on
    devices that round deterministically leaves the random streams of training alone."""
    return buf[1] != 0.0


@numba.njit(cache=True, inline="always")
def flush_writes(buf, hw_params, hw_stats, layer):
    """Price the writes held (not the row itself) and keep each device's row maximum."""
    m = int(buf[0])
    if m == 0:
        return
    n_dev = hw_params.shape[0]
    cap = row_capacity(buf, n_dev)
    base = _HEAD + n_dev
    m_pad = min((m + _BLOCK - 1) // _BLOCK * _BLOCK, cap)
    for t in range(m, m_pad):
        buf[base + t] = 0.0
        buf[base + cap + t] = 0.0
        buf[base + 2 * cap + t] = 0.0
    tally_row_writes(hw_params, hw_stats, layer, buf, base, base + cap, base + 2 * cap, m, m_pad,
                     _HEAD)
    buf[0] = 0.0


@numba.njit(cache=True, inline="always")
def push_write(buf, hw_params, hw_stats, layer, w_old, w_new):
    """Hold one write; returns the position in ``buf`` of its uniform, which the caller
    sets if some device uses one (:func:`draws_uniforms`). Prices the writes held first
    when the buffer is full."""
    n_dev = hw_params.shape[0]
    cap = row_capacity(buf, n_dev)
    if int(buf[0]) == cap:
        flush_writes(buf, hw_params, hw_stats, layer)
    t = int(buf[0])
    base = _HEAD + n_dev
    buf[base + t] = w_old
    buf[base + cap + t] = w_new
    buf[0] = t + 1.0
    return base + 2 * cap + t


@numba.njit(cache=True)
def end_row(buf, hw_params, hw_stats, layer, row_n):
    """Close a row: price its writes, then one ``tally_row`` per device if ``row_n`` (the
    writes that changed a weight) is positive; the row maxima are reset either way."""
    flush_writes(buf, hw_params, hw_stats, layer)
    n_dev = hw_params.shape[0]
    if row_n > 0:
        for d in range(n_dev):
            tally_row(hw_params[d], hw_stats[layer, d], row_n, buf[_HEAD + d])
    for d in range(n_dev):
        buf[_HEAD + d] = 0.0
