"""Compiled per-write tallies: the contract between neuroenergy's training kernels and
the hardware models.

The training kernels call these functions for every weight write they make, so costs that
depend on each write (pulse counts with a rounding rule, bits flipped, rows touched and the
largest pulse count in a row) are exact, not extrapolated.

Contract (neuroenergy/kernels.py relies on these exact signatures):

- ``params``: float64 1-D array describing one device, made by ``Model.kernel_params()``.
- ``stats``: float64 1-D array of length ``N_STATS`` for one (layer, device) pair; the
  kernel only passes it, the meaning of each slot is defined here (``STAT_*`` indices).
- ``tally_write(params, stats, w_old, w_new, u) -> float64``: records one write of a
  synapse from ``w_old`` to ``w_new`` (float weights); ``u`` is a uniform random number in
  [0, 1) for stochastic rounding. Returns the write's "size" on the row (pulses for analog
  devices, bits flipped for digital ones), used by the kernel for the row maximum.
- ``tally_row(params, stats, n_writes, max_size)``: called once for every row that received
  at least one write in a step, with the number of writes and the largest size in the row.
- ``device_write(params, w_old, dw, u, z) -> float64``: the weight a device really holds
  after being asked to change ``w_old`` by ``dw`` (device-in-the-loop mode); ``u`` uniform in
  [0, 1), ``z`` standard normal, both supplied by the caller so results are reproducible.
- ``uses_uniform(params) -> bool``: whether ``u`` is read at all (stochastic rounding).
- ``tally_rows.tally_batch`` (every device, a batch of rows) and ``tally_rows.tally_writes``
  (one device, one stream): what the training kernels call, through
  ``neuroenergy/row_tally.py``, vectorised loops with the same statistics as
  ``tally_write``, built from the same blocks here, and ``tally_row`` per row and device. ``tally_write`` remains for small write streams (the spiking
  bridge) and as the definition the tests compare against.

Speed (``benchmarks/bench_tally.py``)
------------------------------------
The three functions are compiled *into* their callers (``inline="always"``): a kernel's
write loop gets a few nanoseconds of straight code per device and write instead of a
function call. They read ``params`` only at the top, write ``stats`` only in one block at
the end and never raise (an unknown kind gives NaN; ``pack_kernel_params`` rejects those),
so numba can cancel the reference counts of the views ``hw_params[d]`` / ``hw_stats[l, d]``
a kernel passes in. Two things on the caller's side keep it that way:

- form ``u`` (and ``z``) *before* the call, e.g. ``u = np.random.random()`` on the line
  above: a call written between the views and the tally (an argument
  ``np.random.random()`` is evaluated after the views) keeps two atomic reference-count
  operations per view per write, several times the cost of the tally itself;
- numba's cache of a function holds the tally code it inlined and numba does not check
  this file for it: every module that inlines or links these tallies (``tally_rows``,
  the training kernels, the spiking bridge) drops its cached code when this file changes
  (``_kernel_cache.refresh``, at import). A new module that inlines them needs the same.

``params`` must have ``N_PARAMS`` entries (as made by ``kernel_params()`` and
``pack_kernel_params``) and ``stats`` ``N_STATS``: slots are read and written unconditionally.

Parameter vector layout (``P_*`` indices, all float64)
-----------------------------------------------------
``P_KIND`` model kind (``KIND_NONE`` 0: ignore, ``KIND_DIGITAL`` 1, ``KIND_ANALOG`` 2,
``KIND_BIOLOGY`` 3); ``P_W_MAX`` weight range half-width (weights map onto
[-w_max, w_max]); ``P_ROUNDING`` rounding rule (``ROUND_NEAREST`` 0, ``ROUND_CEIL`` 1,
``ROUND_STOCHASTIC`` 2). Digital: ``P_BITS`` word width, ``P_ENCODING`` (``ENC_TWOS`` 0,
``ENC_SIGN_MAGNITUDE`` 1). Analog: ``P_DW_POT`` / ``P_DW_DEP`` step of one potentiation /
depression pulse (weight units), ``P_NOISE`` cycle-to-cycle std of one pulse's change (weight
units; a write of n pulses gets std ``P_NOISE * sqrt(n)``, as MLP NeuroSim), ``P_PAIR`` 1
for unidirectional pairs (w = G+ - G-, potentiation pulses only).
Rows padded with zeros (``KIND_NONE``) are ignored (their statistics get +0.0).

Statistics slots (``STAT_*`` indices, float64 sums)
---------------------------------------------------
``STAT_WRITES`` calls of ``tally_write`` (requested writes); ``STAT_ABS_DW`` sum |dw| (M1);
``STAT_NOOP`` writes the device did not perform (no pulse / code unchanged: lost updates);
``STAT_NOOP_ABS_DW`` sum |dw| of those; ``STAT_CHANGED`` writes that changed the device;
``STAT_SIZE_POT`` / ``STAT_SIZE_DEP`` potentiation / depression pulses (analog), bits set
0->1 / reset 1->0 (digital), sum of positive / negative |dw| (biology); ``STAT_G_POT`` /
``STAT_G_DEP`` sum of pulses x normalised conductance in [0, 1] (analog, for V^2 G t);
``STAT_REFRESH`` expected pair refreshes and ``STAT_REFRESH_PULSES`` expected re-programming
pulses (analog pairs); ``STAT_CLIPPED`` writes whose target lay outside [-w_max, w_max];
``STAT_ROWS`` rows touched; ``STAT_ROWS_ACTIVE`` rows touched with max_size > 0;
``STAT_ROW_WRITES`` sum of n_writes over rows; ``STAT_ROW_MAX`` sum of the row maxima;
``STAT_ROW_NW_MAX`` sum of n_writes x row maximum (half-select terms).
"""
import math

from llvmlite import ir as llvm_ir
import numba
from numba.core import types
from numba.extending import intrinsic
import numpy as np

from .llvm_ops import _ceil, _div, _floor, _popcount, _pow2, _sel

# --- model kinds --------------------------------------------------------------------------
KIND_NONE = 0
KIND_DIGITAL = 1
KIND_ANALOG = 2
KIND_BIOLOGY = 3
_KINDS = (KIND_NONE, KIND_DIGITAL, KIND_ANALOG, KIND_BIOLOGY)

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


# --- compiled building blocks -------------------------------------------------------------
# Everything here is inlined into its caller (numba IR inlining), so a training kernel gets
# one straight piece of code per call site instead of a function call per write.
_JIT = dict(cache=True, inline="always")


@intrinsic
def _snap(typingctx, x):
    """``x`` moved onto the nearest integer ``floor(x + 0.5)`` when within ``_SNAP`` of it
    (float64)."""
    if not isinstance(x, types.Number):
        return None
    sig = types.float64(x)

    def codegen(context, builder, signature, args):
        x = context.cast(builder, args[0], signature.args[0], types.float64)
        dbl = llvm_ir.DoubleType()
        floor = builder.module.declare_intrinsic("llvm.floor", [dbl])
        fabs = builder.module.declare_intrinsic("llvm.fabs", [dbl])
        r = builder.call(floor, [builder.fadd(x, llvm_ir.Constant(dbl, 0.5))])
        near = builder.fcmp_ordered("<", builder.call(fabs, [builder.fsub(x, r)]),
                                    llvm_ir.Constant(dbl, _SNAP))
        return builder.select(near, r, x)
    return sig, codegen


@numba.njit(**_JIT)
def _round_steps(x, rule, u):
    """Whole steps for a non-negative step count ``x`` under a rounding rule, without
    branches: every rule is computed and one selected (a few cheap operations; the row loops
    need it branch-free to vectorise, and one loop then serves every rule).

    nearest: floor(x + 0.5) (snapping would only move x onto the integer it rounds to
    anyway); ceil (DNN+NeuroSim): ceil, but only where the change reaches one full step;
    stochastic: floor(x + u)."""
    xs = _snap(x)
    nearest = _floor(x + 0.5)
    ceil = _sel(xs >= 1.0, _ceil(xs), 0.0)
    stochastic = _floor(xs + u)
    return _sel(rule == ROUND_NEAREST, nearest, _sel(rule == ROUND_CEIL, ceil, stochastic))


@intrinsic
def _clip(typingctx, w, w_max):
    """``w`` clipped to [-w_max, w_max] in float64 (NaN stays NaN)."""
    if not (isinstance(w, types.Number) and isinstance(w_max, types.Number)):
        return None
    sig = types.float64(w, w_max)

    def codegen(context, builder, signature, args):
        w = context.cast(builder, args[0], signature.args[0], types.float64)
        w_max = context.cast(builder, args[1], signature.args[1], types.float64)
        neg = builder.fneg(w_max)
        low = builder.select(builder.fcmp_ordered("<", w, neg), neg, w)
        return builder.select(builder.fcmp_ordered(">", w, w_max), w_max, low)
    return sig, codegen


# --- digital ------------------------------------------------------------------------------
@intrinsic
def _clip_code(typingctx, c, lo, hi):
    """Integer ``c`` clipped to [lo, hi]."""
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        c, lo, hi = args
        low = builder.select(builder.icmp_signed(">", c, hi), hi, c)
        return builder.select(builder.icmp_signed("<", c, lo), lo, low)
    return sig, codegen


@numba.njit(**_JIT)
def _bit_pattern(code, bits, encoding):
    """The b-bit pattern stored for an integer code."""
    mask = (1 << bits) - 1
    if encoding == ENC_TWOS:
        return code & mask
    return _sel(code < 0, ((1 << (bits - 1)) | (-code)) & mask, code & mask)


@numba.njit(**_JIT)
def _digital_codes(w_max, bits, encoding):
    """(lsb, lowest code, highest code) of a b-bit word; lsb = w_max / 2 ** (bits - 1),
    computed exactly as a product with a power of two."""
    half = 1 << (bits - 1)
    lo = -half if encoding == ENC_TWOS else -(half - 1)
    return w_max * _pow2(1 - bits), lo, half - 1


@numba.njit(**_JIT)
def _digital_flips(x_old, x_new, x_dw, rule, bits, encoding, u, lo, hi):
    """(bits set 0->1, bits reset 1->0) by a write from w_old to w_new, given in lsb units:
    x_old = w_old / lsb, x_new = w_new / lsb, x_dw = (w_new - w_old) / lsb."""
    c_old = _clip_code(int(_floor(x_old + 0.5)), lo, hi)
    if rule == ROUND_STOCHASTIC:
        # floor(x + u) is unbiased for either sign of x
        c_new = _clip_code(c_old + int(_floor(_snap(x_dw) + u)), lo, hi)
    else:
        c_new = _clip_code(int(_floor(x_new + 0.5)), lo, hi)
    p_old = _bit_pattern(c_old, bits, encoding)
    p_new = _bit_pattern(c_new, bits, encoding)
    return _popcount(p_new & ~p_old), _popcount(p_old & ~p_new)


@numba.njit(**_JIT)
def _digital_write(w_max, rule, bits, encoding, w_old, w_new, u):
    """(bits set 0->1, bits reset 1->0) by one write."""
    lsb, lo, hi = _digital_codes(w_max, bits, encoding)
    return _digital_flips(_div(w_old, lsb), _div(w_new, lsb), _div(w_new - w_old, lsb), rule,
                          bits, encoding, u, lo, hi)


@numba.njit(**_JIT)
def _digital_device(w_max, rule, bits, encoding, w_old, dw, u):
    lsb, lo, hi = _digital_codes(w_max, bits, encoding)
    x = _div(w_old + dw, lsb)
    if rule == ROUND_STOCHASTIC:
        c = int(_floor(_snap(x) + u))
    else:
        c = int(_floor(x + 0.5))
    return _clip_code(c, lo, hi) * lsb


# --- analog -------------------------------------------------------------------------------
_N_CAP = 2.0 ** 62  # more pulses than any device range holds; keeps device weights finite


@numba.njit(**_JIT)
def _analog_pulses(rule, step_pot, step_dep, dw, u):
    """Signed pulse count for a (clipped) change ``dw``; negative means depression."""
    if dw > 0.0:
        return _round_steps(_div(dw, step_pot), rule, u)
    elif dw < 0.0:
        return -_round_steps(_div(-dw, step_dep), rule, u)
    return 0.0


@numba.njit(**_JIT)
def _analog_device(w_max, rule, step_pot, step_dep, noise, w_old, dw, u, z):
    n = _analog_pulses(rule, step_pot, step_dep, dw, u)
    # |n| >= 2**62 pulses saturate anyway; the bound keeps w finite (no inf - inf)
    n = _sel(n > _N_CAP, _N_CAP, _sel(n < -_N_CAP, -_N_CAP, n))
    step = _sel(n > 0.0, step_pot, step_dep)
    w = w_old + n * step + noise * math.sqrt(abs(n)) * z
    return _clip(_sel(n == 0.0, w_old, w), w_max)


# --- the contract -------------------------------------------------------------------------
# tally_write, tally_row and device_write read ``params`` only at the top and write
# ``stats`` only in one straight block at the end, and cannot raise: the reference counts of
# the array views a kernel passes in (``hw_params[d]``, ``hw_stats[layer, d]``) then cancel
# at compile time. An early return, a raise (a ZeroDivisionError check included) or a slot
# written on some paths only leaves two atomic reference-count calls per view per write,
# which cost ten times the tally itself.
@numba.njit(**_JIT)
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
        largest size of each row for ``tally_row``. NaN, with nothing tallied, for an
        unknown model kind (``pack_kernel_params`` rejects those).
    """
    kind = int(params[P_KIND])
    w_max = params[P_W_MAX]
    rule = int(params[P_ROUNDING])
    q3 = params[3]
    q4 = params[4]
    pair = params[P_PAIR] != 0.0
    dw = w_new - w_old
    adw = abs(dw)
    # one write adds `writes` to STAT_WRITES and to slot `event` (STAT_NOOP or
    # STAT_CHANGED), `add_a` to slot `slot_a` and `add_b` to slot `slot_b`. Slots a write
    # does not reach get +0.0, which leaves them bit-identical: every slot is a sum of
    # non-negative terms started at +0.0.
    writes = 1.0
    event = STAT_CHANGED
    noop_dw = 0.0
    slot_a = STAT_SIZE_POT
    add_a = 0.0
    slot_b = STAT_SIZE_DEP
    add_b = 0.0
    clipped = 0.0
    refresh = 0.0
    refresh_p = 0.0
    size = 0.0
    if kind == KIND_ANALOG:
        clipped = _sel((w_new > w_max) | (w_new < -w_max), 1.0, 0.0)
        a = _clip(w_old, w_max)
        b = _clip(w_new, w_max)
        n = _analog_pulses(rule, q3, q4, b - a, u)
        noop = n == 0.0
        pot = n > 0.0
        # the sign of a change is unpredictable: selects; whether a write moves the device
        # is mostly predictable (coarse devices lose most updates): a branch, which skips
        # the divisions of lost updates
        event = _sel(noop, STAT_NOOP, STAT_CHANGED)
        noop_dw = _sel(noop, adw, 0.0)
        slot_a = _sel(pot, STAT_SIZE_POT, STAT_SIZE_DEP)
        slot_b = _sel(pot, STAT_G_POT, STAT_G_DEP)
        if not noop:
            size = abs(n)
            if pair:
                # the pulsed device's own conductance is not tracked: its fill level is
                # taken as uniform over its range (mean 0.5), the same renewal argument as
                # the refresh hazard
                g_mid = 0.5
                # each device of the pair spans w_max / step pulses; a device whose fill
                # level is uniform over that range saturates during these pulses with
                # probability pulses / cap; after a refresh |w| is re-programmed onto one
                # device with potentiation pulses
                step = _sel(pot, q3, q4)
                refresh = _div(size, _div(w_max, step))
                refresh = _sel(refresh > 1.0, 1.0, refresh)
                refresh_p = refresh * _floor(_div(abs(b), step) + 0.5)
            else:
                g_mid = _div(0.5 * ((a + w_max) + (b + w_max)), 2.0 * w_max)
            add_a = size
            add_b = size * g_mid
    elif kind == KIND_DIGITAL:
        clipped = _sel((w_new > w_max) | (w_new < -w_max), 1.0, 0.0)
        set_bits, reset_bits = _digital_write(w_max, rule, int(q3), int(q4), w_old, w_new, u)
        flipped = set_bits + reset_bits
        event = _sel(flipped == 0, STAT_NOOP, STAT_CHANGED)
        noop_dw = _sel(flipped == 0, adw, 0.0)
        add_a = float(set_bits)
        add_b = float(reset_bits)
        size = float(flipped)
    elif kind == KIND_BIOLOGY:
        noop = dw == 0.0
        event = _sel(noop, STAT_NOOP, STAT_CHANGED)
        slot_a = _sel(dw > 0.0, STAT_SIZE_POT, STAT_SIZE_DEP)
        add_a = _sel(noop, 0.0, adw)
        size = add_a
    else:
        # KIND_NONE (padding) or unknown: nothing is tallied
        writes = 0.0
        adw = 0.0
        if kind != KIND_NONE:
            size = math.nan
    stats[STAT_WRITES] += writes
    stats[STAT_ABS_DW] += adw
    stats[event] += writes
    stats[STAT_NOOP_ABS_DW] += noop_dw
    stats[slot_a] += add_a
    stats[slot_b] += add_b
    stats[STAT_CLIPPED] += clipped
    stats[STAT_REFRESH] += refresh
    stats[STAT_REFRESH_PULSES] += refresh_p
    return size


@numba.njit(**_JIT)
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
    on = int(params[P_KIND]) != KIND_NONE
    rows = _sel(on, 1.0, 0.0)
    nw = _sel(on, float(n_writes), 0.0)
    mx = _sel(on, float(max_size), 0.0)
    stats[STAT_ROWS] += rows
    stats[STAT_ROW_WRITES] += nw
    stats[STAT_ROW_MAX] += mx
    stats[STAT_ROW_NW_MAX] += nw * mx
    stats[STAT_ROWS_ACTIVE] += _sel(mx > 0.0, rows, 0.0)


@numba.njit(**_JIT)
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
        NaN for an unknown model kind (``pack_kernel_params`` rejects those).
    """
    kind = int(params[P_KIND])
    w_max = params[P_W_MAX]
    rule = int(params[P_ROUNDING])
    q3 = params[3]
    q4 = params[4]
    noise = params[P_NOISE]
    if kind == KIND_ANALOG:
        return _analog_device(w_max, rule, q3, q4, noise, w_old, dw, u, z)
    elif kind == KIND_DIGITAL:
        return _digital_device(w_max, rule, int(q3), int(q4), w_old, dw, u)
    elif kind == KIND_BIOLOGY or kind == KIND_NONE:
        return w_old + dw
    return math.nan


@numba.njit(**_JIT)
def uses_uniform(params):
    """Whether ``tally_write`` / ``device_write`` read ``u`` for this device: analog and
    digital devices with stochastic rounding. A kernel may skip drawing ``u`` for the others
    (pass any value), which changes which random numbers the stochastic devices get."""
    kind = int(params[P_KIND])
    stochastic = int(params[P_ROUNDING]) == ROUND_STOCHASTIC
    return stochastic and (kind == KIND_ANALOG or kind == KIND_DIGITAL)


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
        # the compiled tallies cannot raise (it would slow every write): check here
        if v.size and not (np.isfinite(v[P_KIND]) and int(v[P_KIND]) in _KINDS):
            raise ValueError(
                f"Unknown hardware model kind {v[P_KIND]!r} in a kernel parameter vector "
                f"(known: {', '.join(str(k) for k in _KINDS)}).")
        rows.append(v)
    out = np.zeros((len(rows), N_PARAMS), dtype=np.float64)
    for i, v in enumerate(rows):
        out[i, :v.size] = v
    return out


def new_stats(n_layers, n_devices):
    """Zeroed statistics array, shape (n_layers, n_devices, N_STATS), float64."""
    return np.zeros((n_layers, n_devices, N_STATS), dtype=np.float64)
