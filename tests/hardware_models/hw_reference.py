"""Slow, obvious pure-Python references for the compiled tallies in hardware_models.tally.

Written from the documented formulas, not from the compiled code: integer codes via Python
ints, bit patterns as binary strings, one branch per rounding rule.
"""
import math

from hardware_models import tally as T

SNAP = 1e-4


def snap(x):
    r = math.floor(x + 0.5)
    return float(r) if abs(x - r) < SNAP else x


def whole_steps(x, rule, u):
    """x >= 0 steps -> whole pulses under the rule."""
    x = snap(x)
    if rule == "nearest":
        return math.floor(x + 0.5)
    if rule == "ceil":
        return math.ceil(x) if x >= 1 else 0
    if rule == "stochastic":
        return math.floor(x + u)
    raise ValueError(rule)


RULES = {T.ROUND_NEAREST: "nearest", T.ROUND_CEIL: "ceil", T.ROUND_STOCHASTIC: "stochastic"}


def bit_string(code, bits, encoding):
    if encoding == "twos":
        return format(code % (1 << bits), f"0{bits}b")
    sign = "1" if code < 0 else "0"
    return sign + format(abs(code), f"0{bits - 1}b")


def code_range(bits, encoding):
    if encoding == "twos":
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1


def ref_tally_write(p, stats, w_old, w_new, u):
    kind = int(p[T.P_KIND])
    if kind == T.KIND_NONE:
        return 0.0
    w_max = p[T.P_W_MAX]
    rule = RULES[int(p[T.P_ROUNDING])]
    dw = w_new - w_old
    stats[T.STAT_WRITES] += 1
    stats[T.STAT_ABS_DW] += abs(dw)
    if kind == T.KIND_BIOLOGY:
        if dw == 0:
            stats[T.STAT_NOOP] += 1
            return 0.0
        stats[T.STAT_CHANGED] += 1
        stats[T.STAT_SIZE_POT if dw > 0 else T.STAT_SIZE_DEP] += abs(dw)
        return abs(dw)
    if abs(w_new) > w_max:
        stats[T.STAT_CLIPPED] += 1
    if kind == T.KIND_DIGITAL:
        bits = int(p[T.P_BITS])
        enc = "twos" if int(p[T.P_ENCODING]) == T.ENC_TWOS else "sm"
        lsb = w_max / 2 ** (bits - 1)
        lo, hi = code_range(bits, enc)
        c_old = min(max(math.floor(snap(w_old / lsb) + 0.5), lo), hi)
        if rule == "stochastic":
            c_new = c_old + math.floor(snap(dw / lsb) + u)
        else:
            c_new = math.floor(snap(w_new / lsb) + 0.5)
        c_new = min(max(c_new, lo), hi)
        a, b = bit_string(c_old, bits, enc), bit_string(c_new, bits, enc)
        set_bits = sum(1 for x, y in zip(a, b) if x == "0" and y == "1")
        reset_bits = sum(1 for x, y in zip(a, b) if x == "1" and y == "0")
        if set_bits + reset_bits == 0:
            stats[T.STAT_NOOP] += 1
            stats[T.STAT_NOOP_ABS_DW] += abs(dw)
        else:
            stats[T.STAT_CHANGED] += 1
            stats[T.STAT_SIZE_POT] += set_bits
            stats[T.STAT_SIZE_DEP] += reset_bits
        return float(set_bits + reset_bits)
    # analog
    a = min(max(w_old, -w_max), w_max)
    b = min(max(w_new, -w_max), w_max)
    up = b > a
    step = p[T.P_DW_POT] if up else p[T.P_DW_DEP]
    n = whole_steps(abs(b - a) / step, rule, u) if b != a else 0
    if n == 0:
        stats[T.STAT_NOOP] += 1
        stats[T.STAT_NOOP_ABS_DW] += abs(dw)
        return 0.0
    stats[T.STAT_CHANGED] += 1
    pair = p[T.P_PAIR] != 0
    g = 0.5 if pair else ((a + w_max) / (2 * w_max) + (b + w_max) / (2 * w_max)) / 2
    stats[T.STAT_SIZE_POT if up else T.STAT_SIZE_DEP] += n
    stats[T.STAT_G_POT if up else T.STAT_G_DEP] += n * g
    if pair:
        hazard = min(n / (w_max / step), 1.0)
        stats[T.STAT_REFRESH] += hazard
        stats[T.STAT_REFRESH_PULSES] += hazard * math.floor(snap(abs(b) / step) + 0.5)
    return float(n)


def ref_tally_row(p, stats, n_writes, max_size):
    if int(p[T.P_KIND]) == T.KIND_NONE:
        return
    stats[T.STAT_ROWS] += 1
    stats[T.STAT_ROW_WRITES] += n_writes
    stats[T.STAT_ROW_MAX] += max_size
    stats[T.STAT_ROW_NW_MAX] += n_writes * max_size
    stats[T.STAT_ROWS_ACTIVE] += 1 if max_size > 0 else 0


def ref_device_write(p, w_old, dw, u, z):
    kind = int(p[T.P_KIND])
    if kind in (T.KIND_NONE, T.KIND_BIOLOGY):
        return w_old + dw
    w_max = p[T.P_W_MAX]
    rule = RULES[int(p[T.P_ROUNDING])]
    if kind == T.KIND_DIGITAL:
        bits = int(p[T.P_BITS])
        enc = "twos" if int(p[T.P_ENCODING]) == T.ENC_TWOS else "sm"
        lsb = w_max / 2 ** (bits - 1)
        lo, hi = code_range(bits, enc)
        x = snap((w_old + dw) / lsb)
        c = math.floor(x + u) if rule == "stochastic" else math.floor(x + 0.5)
        return min(max(c, lo), hi) * lsb
    up = dw > 0
    step = p[T.P_DW_POT] if up else p[T.P_DW_DEP]
    n = whole_steps(abs(dw) / step, rule, u) if dw != 0 else 0
    if n == 0:
        return min(max(w_old, -w_max), w_max)
    w = w_old + (n if up else -n) * step + p[T.P_NOISE] * math.sqrt(n) * z
    return min(max(w, -w_max), w_max)
