"""The compiled tallies as they were before they were made inlinable (hardware_models/tally.py
at commit ac75463): separate, non-inlined numba functions with raises. Kept unchanged as an
exact reference: the current tallies must give bit-identical statistics and sizes (and the
same device weights), and ``benchmarks/bench_tally.py --before`` times it for comparison.
Do not edit.
"""
import math

import numba
import numpy as np

# --- model kinds --------------------------------------------------------------------------
KIND_NONE = 0
KIND_DIGITAL = 1
KIND_ANALOG = 2
KIND_BIOLOGY = 3

# --- rounding rules and encodings ---------------------------------------------------------
ROUND_NEAREST = 0
ROUND_CEIL = 1
ROUND_STOCHASTIC = 2
ENC_TWOS = 0
ENC_SIGN_MAGNITUDE = 1

# --- parameter slots ----------------------------------------------------------------------
P_KIND = 0
P_W_MAX = 1
P_ROUNDING = 2
P_BITS = 3          # digital
P_ENCODING = 4      # digital
P_DW_POT = 3        # analog
P_DW_DEP = 4        # analog
P_NOISE = 5         # analog
P_PAIR = 6          # analog
N_PARAMS = 8

# --- statistics slots ---------------------------------------------------------------------
STAT_WRITES = 0
STAT_ABS_DW = 1
STAT_NOOP = 2
STAT_NOOP_ABS_DW = 3
STAT_CHANGED = 4
STAT_SIZE_POT = 5
STAT_SIZE_DEP = 6
STAT_G_POT = 7
STAT_G_DEP = 8
STAT_REFRESH = 9
STAT_REFRESH_PULSES = 10
STAT_CLIPPED = 11
STAT_ROWS = 12
STAT_ROWS_ACTIVE = 13
STAT_ROW_WRITES = 14
STAT_ROW_MAX = 15
STAT_ROW_NW_MAX = 16
N_STATS = 17

STAT_NAMES = (
    "writes", "abs_dw", "noop", "noop_abs_dw", "changed", "size_pot", "size_dep",
    "g_pot", "g_dep", "refresh", "refresh_pulses", "clipped", "rows", "rows_active",
    "row_writes", "row_max", "row_nw_max",
)

# a step count within this distance of an integer is that integer: weights already on the
# device grid (device-in-the-loop, stored as float32 by the kernels: relative error ~6e-8,
# up to ~3e-5 of a 0.002 step) must give exact counts; the price is that a genuine change
# within 1e-4 step of a whole number of steps counts as that whole number
_SNAP = 1e-4


@numba.njit(cache=True)
def _snap(x):
    r = math.floor(x + 0.5)
    if abs(x - r) < _SNAP:
        return r
    return x


@numba.njit(cache=True)
def _round_steps(x, rule, u):
    """Whole steps for a non-negative step count ``x`` under a rounding rule."""
    x = _snap(x)
    if rule == ROUND_NEAREST:
        return math.floor(x + 0.5)
    elif rule == ROUND_CEIL:
        # DNN+NeuroSim: ceil, but only where the change reaches one full step
        if x >= 1.0:
            return math.ceil(x)
        return 0.0
    else:
        return math.floor(x + u)


@numba.njit(cache=True)
def _clip(w, w_max):
    if w > w_max:
        return w_max
    if w < -w_max:
        return -w_max
    return w


# --- digital ------------------------------------------------------------------------------
@numba.njit(cache=True)
def _code_limits(bits, encoding):
    half = 2 ** (bits - 1)
    if encoding == ENC_TWOS:
        return -half, half - 1
    return -(half - 1), half - 1


@numba.njit(cache=True)
def _clip_code(c, lo, hi):
    if c < lo:
        return lo
    if c > hi:
        return hi
    return c


@numba.njit(cache=True)
def _bit_pattern(code, bits, encoding):
    mask = (1 << bits) - 1
    if encoding == ENC_TWOS:
        return code & mask
    if code < 0:
        return ((1 << (bits - 1)) | (-code)) & mask
    return code & mask


@numba.njit(cache=True)
def _popcount(x):
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


@numba.njit(cache=True)
def _digital_write(params, stats, w_old, w_new, u):
    w_max = params[P_W_MAX]
    bits = int(params[P_BITS])
    encoding = int(params[P_ENCODING])
    rule = int(params[P_ROUNDING])
    lsb = w_max / 2.0 ** (bits - 1)
    lo, hi = _code_limits(bits, encoding)
    dw = w_new - w_old
    c_old = _clip_code(int(math.floor(_snap(w_old / lsb) + 0.5)), lo, hi)
    if rule == ROUND_STOCHASTIC:
        # floor(x + u) is unbiased for either sign of x
        steps = int(math.floor(_snap(dw / lsb) + u))
        c_new = _clip_code(c_old + steps, lo, hi)
    else:
        c_new = _clip_code(int(math.floor(_snap(w_new / lsb) + 0.5)), lo, hi)
    if w_new > w_max or w_new < -w_max:
        stats[STAT_CLIPPED] += 1.0
    p_old = _bit_pattern(c_old, bits, encoding)
    p_new = _bit_pattern(c_new, bits, encoding)
    set_bits = _popcount(p_new & ~p_old)
    reset_bits = _popcount(p_old & ~p_new)
    flipped = set_bits + reset_bits
    if flipped == 0:
        stats[STAT_NOOP] += 1.0
        stats[STAT_NOOP_ABS_DW] += abs(dw)
    else:
        stats[STAT_CHANGED] += 1.0
        stats[STAT_SIZE_POT] += set_bits
        stats[STAT_SIZE_DEP] += reset_bits
    return float(flipped)


@numba.njit(cache=True)
def _digital_device(params, w_old, dw, u):
    w_max = params[P_W_MAX]
    bits = int(params[P_BITS])
    encoding = int(params[P_ENCODING])
    rule = int(params[P_ROUNDING])
    lsb = w_max / 2.0 ** (bits - 1)
    lo, hi = _code_limits(bits, encoding)
    x = _snap((w_old + dw) / lsb)
    if rule == ROUND_STOCHASTIC:
        c = int(math.floor(x + u))
    else:
        c = int(math.floor(x + 0.5))
    return _clip_code(c, lo, hi) * lsb


# --- analog -------------------------------------------------------------------------------
@numba.njit(cache=True)
def _analog_pulses(params, dw, u):
    """Signed pulse count for a (clipped) change ``dw``; negative means depression."""
    rule = int(params[P_ROUNDING])
    if dw > 0.0:
        return _round_steps(dw / params[P_DW_POT], rule, u)
    elif dw < 0.0:
        return -_round_steps(-dw / params[P_DW_DEP], rule, u)
    return 0.0


@numba.njit(cache=True)
def _analog_write(params, stats, w_old, w_new, u):
    w_max = params[P_W_MAX]
    pair = params[P_PAIR] != 0.0
    if w_new > w_max or w_new < -w_max:
        stats[STAT_CLIPPED] += 1.0
    a = _clip(w_old, w_max)
    b = _clip(w_new, w_max)
    n = _analog_pulses(params, b - a, u)
    if n == 0.0:
        stats[STAT_NOOP] += 1.0
        stats[STAT_NOOP_ABS_DW] += abs(w_new - w_old)
        return 0.0
    stats[STAT_CHANGED] += 1.0
    if pair:
        # the pulsed device's own conductance is not tracked: its fill level is taken as
        # uniform over its range (mean 0.5), the same renewal argument as the refresh hazard
        g_mid = 0.5
    else:
        g_mid = 0.5 * ((a + w_max) + (b + w_max)) / (2.0 * w_max)
    p = abs(n)
    if n > 0.0:
        stats[STAT_SIZE_POT] += p
        stats[STAT_G_POT] += p * g_mid
        step = params[P_DW_POT]
    else:
        stats[STAT_SIZE_DEP] += p
        stats[STAT_G_DEP] += p * g_mid
        step = params[P_DW_DEP]
    if pair:
        # each device of the pair spans w_max / step pulses; a device whose fill level is
        # uniform over that range saturates during these p pulses with probability p / cap
        cap = w_max / step
        hazard = p / cap
        if hazard > 1.0:
            hazard = 1.0
        stats[STAT_REFRESH] += hazard
        # after a refresh |w| is re-programmed onto one device with potentiation pulses
        stats[STAT_REFRESH_PULSES] += hazard * math.floor(_snap(abs(b) / step) + 0.5)
    return p


@numba.njit(cache=True)
def _analog_device(params, w_old, dw, u, z):
    w_max = params[P_W_MAX]
    n = _analog_pulses(params, dw, u)
    if n == 0.0:
        return _clip(w_old, w_max)
    if n > 0.0:
        step = params[P_DW_POT]
    else:
        step = params[P_DW_DEP]
    w = w_old + n * step + params[P_NOISE] * math.sqrt(abs(n)) * z
    return _clip(w, w_max)


# --- biology ------------------------------------------------------------------------------
@numba.njit(cache=True)
def _biology_write(stats, w_old, w_new):
    dw = w_new - w_old
    if dw == 0.0:
        stats[STAT_NOOP] += 1.0
        return 0.0
    stats[STAT_CHANGED] += 1.0
    if dw > 0.0:
        stats[STAT_SIZE_POT] += dw
    else:
        stats[STAT_SIZE_DEP] -= dw
    return abs(dw)


# --- the contract -------------------------------------------------------------------------
@numba.njit(cache=True)
def tally_write(params, stats, w_old, w_new, u):
    """Record one write of one synapse from ``w_old`` to ``w_new``.

    Parameters
    ----------
    params : float64 array, shape (n_params,)
        One device's parameter vector (``Model.kernel_params()``, possibly zero-padded).
    stats : float64 array, shape (N_STATS,)
        The (layer, device) accumulator, updated in place.
    w_old, w_new : float
        Float weight before and after the write.
    u : float
        Uniform random number in [0, 1), used by stochastic rounding only.

    Returns
    -------
    size : float
        Pulses (analog), bits flipped (digital) or |dw| (biology): the kernel keeps the
        largest size of each row for ``tally_row``.
    """
    kind = int(params[P_KIND])
    if kind == KIND_NONE:
        return 0.0
    stats[STAT_WRITES] += 1.0
    stats[STAT_ABS_DW] += abs(w_new - w_old)
    if kind == KIND_ANALOG:
        return _analog_write(params, stats, w_old, w_new, u)
    elif kind == KIND_DIGITAL:
        return _digital_write(params, stats, w_old, w_new, u)
    elif kind == KIND_BIOLOGY:
        return _biology_write(stats, w_old, w_new)
    else:
        raise ValueError("unknown hardware model kind in params[0]")


@numba.njit(cache=True)
def tally_row(params, stats, n_writes, max_size):
    """Record one row touched in one training step.

    Parameters
    ----------
    params : float64 array, shape (n_params,)
        One device's parameter vector.
    stats : float64 array, shape (N_STATS,)
        The (layer, device) accumulator, updated in place.
    n_writes : int
        Writes made to this row in this step (>= 1).
    max_size : float
        Largest size returned by ``tally_write`` for this row in this step.
    """
    if int(params[P_KIND]) == KIND_NONE:
        return
    stats[STAT_ROWS] += 1.0
    stats[STAT_ROW_WRITES] += n_writes
    stats[STAT_ROW_MAX] += max_size
    stats[STAT_ROW_NW_MAX] += n_writes * max_size
    if max_size > 0.0:
        stats[STAT_ROWS_ACTIVE] += 1.0


@numba.njit(cache=True)
def device_write(params, w_old, dw, u, z):
    """The weight a device holds after being asked to change ``w_old`` by ``dw``.

    Analog: ``pulses = round_rule(|dw| / dw_min)`` steps of the potentiation or depression
    size, plus cycle-to-cycle noise ``noise * sqrt(pulses) * z``, clipped to
    [-w_max, w_max]. Digital: ``w_old + dw`` rounded (nearest or stochastic) to the b-bit
    grid, clipped to the code range. Biology: ``w_old + dw`` unchanged.
    ``device_write(params, w, 0.0, u, z)`` gives the device's representation of ``w``.

    Parameters
    ----------
    params : float64 array, shape (n_params,)
    w_old, dw : float
        Current weight and requested change (weight units).
    u : float
        Uniform in [0, 1), for stochastic rounding.
    z : float
        Standard normal, for cycle-to-cycle write noise.

    Returns
    -------
    w_new : float
    """
    kind = int(params[P_KIND])
    if kind == KIND_ANALOG:
        return _analog_device(params, w_old, dw, u, z)
    elif kind == KIND_DIGITAL:
        return _digital_device(params, w_old, dw, u)
    elif kind == KIND_BIOLOGY or kind == KIND_NONE:
        return w_old + dw
    else:
        raise ValueError("unknown hardware model kind in params[0]")


def pack_kernel_params(models):
    """Stack the models' parameter vectors into one zero-padded 2-D array.

    Parameters
    ----------
    models : sequence of models (objects with ``kernel_params()``) or 1-D arrays

    Returns
    -------
    hw_params : float64 array, shape (n_devices, N_PARAMS)
    """
    rows = []
    for m in models:
        v = m.kernel_params() if hasattr(m, "kernel_params") else m
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size > N_PARAMS:
            raise ValueError(
                f"A kernel parameter vector has {v.size} entries; at most {N_PARAMS} fit.")
        rows.append(v)
    out = np.zeros((len(rows), N_PARAMS), dtype=np.float64)
    for i, v in enumerate(rows):
        out[i, :v.size] = v
    return out


def new_stats(n_layers, n_devices):
    """Zeroed statistics array, shape (n_layers, n_devices, N_STATS), float64."""
    return np.zeros((n_layers, n_devices, N_STATS), dtype=np.float64)
