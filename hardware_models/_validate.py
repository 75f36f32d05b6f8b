"""Parameter checks with one message format, used by every model's ``__post_init__``.

"The 'dw_min' parameter of AnalogCrossbar must be a float > 0. Got 0.0 instead."
"""
import math
import numbers


class HardwareModelError(ValueError):
    """A hardware model parameter, preset name or pricing input is invalid."""


def _describe(lo, hi, lo_open, hi_open):
    if lo is not None and hi is None:
        return ("> " if lo_open else ">= ") + repr(lo)
    if hi is not None and lo is None:
        return ("< " if hi_open else "<= ") + repr(hi)
    if lo is None and hi is None:
        return "(finite)"
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    return f"in the range {left}{lo!r}, {hi!r}{right}"


def check_float(owner, name, value, lo=None, hi=None, lo_open=False, hi_open=False,
                allow_inf=False, allow_none=False):
    """Return ``value`` as a float if it is a real number in the range, else raise.

    Parameters
    ----------
    owner : object
        The model being checked; its class name goes into the message.
    name : str
        Parameter name.
    value : object
        Value to check.
    lo, hi : float or None
        Bounds; ``lo_open`` / ``hi_open`` make them exclusive.
    allow_inf : bool
        Accept +inf (e.g. unlimited endurance).
    allow_none : bool
        Accept None (e.g. unknown endurance); returned unchanged.
    """
    if value is None and allow_none:
        return None
    cls = type(owner).__name__
    what = _describe(lo, hi, lo_open, hi_open)
    extra = " or inf" if allow_inf else ""
    extra += " or None" if allow_none else ""
    msg = f"The '{name}' parameter of {cls} must be a float {what}{extra}. Got {value!r} instead."
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise HardwareModelError(msg)
    value = float(value)
    if math.isnan(value):
        raise HardwareModelError(msg)
    if math.isinf(value) and not (allow_inf and value > 0):
        raise HardwareModelError(msg)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise HardwareModelError(msg)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise HardwareModelError(msg)
    return value


def check_int(owner, name, value, lo=None, hi=None):
    """Return ``value`` as an int if it is an integer in [lo, hi], else raise."""
    cls = type(owner).__name__
    what = _describe(lo, hi, False, False)
    msg = f"The '{name}' parameter of {cls} must be an int {what}. Got {value!r} instead."
    if isinstance(value, bool):
        raise HardwareModelError(msg)
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    else:
        raise HardwareModelError(msg)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise HardwareModelError(msg)
    return value


def check_choice(owner, name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise."""
    if not isinstance(value, str) or value not in choices:
        cls = type(owner).__name__
        options = ", ".join(repr(c) for c in choices)
        raise HardwareModelError(
            f"The '{name}' parameter of {cls} must be one of {options}. Got {value!r} instead.")
    return value


def check_bool(owner, name, value):
    """Return ``value`` if it is a bool, else raise."""
    if not isinstance(value, bool):
        cls = type(owner).__name__
        raise HardwareModelError(
            f"The '{name}' parameter of {cls} must be a bool. Got {value!r} instead.")
    return value


def check_str(owner, name, value):
    """Return ``value`` if it is a string, else raise."""
    if not isinstance(value, str):
        cls = type(owner).__name__
        raise HardwareModelError(
            f"The '{name}' parameter of {cls} must be a str. Got {value!r} instead.")
    return value
