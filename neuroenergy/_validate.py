"""Parameter checks with one message format, used at every public boundary.

"The 'p' parameter of TopFraction must be a float in the range (0, 1]. Got 1.5 instead."
"""
import math
import numbers

from .errors import ConfigError


def _fmt_bound(x):
    return str(x) if isinstance(x, int) else f"{x:g}"


def _show(value):
    """numpy scalars print as plain numbers in messages."""
    return repr(value.item()) if hasattr(value, "item") and hasattr(value, "dtype") else repr(value)


def _fmt_range(lo, hi, lo_open, hi_open):
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo is None else _fmt_bound(lo)
    hi_s = "inf" if hi is None else _fmt_bound(hi)
    return f"{left}{lo_s}, {hi_s}{right}"


def check_number(value, name, owner, lo=None, hi=None, lo_open=False, hi_open=False,
                 integer=False):
    """Return ``value`` if it is a finite number in the range, else raise ConfigError."""
    kind = "an int" if integer else "a float"
    rng = _fmt_range(lo, hi, lo_open, hi_open)
    msg = f"The '{name}' parameter of {owner} must be {kind} in the range {rng}. Got {_show(value)} instead."
    if isinstance(value, bool):
        raise ConfigError(msg)
    if integer:
        if not isinstance(value, numbers.Integral):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(msg)
        value = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise ConfigError(msg)
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(msg)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ConfigError(msg)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ConfigError(msg)
    return value


def check_choice(value, name, owner, choices):
    """Return ``value`` if it is one of ``choices``, else raise ConfigError."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(
            f"The '{name}' parameter of {owner} must be one of {options}. Got {value!r} instead.")
    return value
