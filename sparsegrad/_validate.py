"""Shared argument validators: a clear error naming the value and what is accepted.

Configs often arrive as strings (YAML, JSON, environment variables) or as numpy/torch
scalars. Strings are never read as booleans or numbers here (``"False"`` is truthy, so
``bool("False")`` would silently switch a method variant on); numpy and 0-d torch scalars
are accepted wherever a Python number is.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np
import torch

__all__ = ["check_bool", "check_real", "check_int"]


def _scalar(value):
    """A 0-d tensor as its Python scalar; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    return value


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_bool(name: str, value) -> bool:
    """``value`` as a bool; only True/False (Python, numpy or a 0-d bool tensor).

    Raises:
        ValueError: anything else, strings such as ``"False"`` or ``"0"`` included.
    """
    value = _scalar(value)
    if not _is_bool(value):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_real(
    name: str,
    value,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    what: str = "",
) -> float:
    """``value`` as a finite float in the interval from ``lo`` to ``hi``.

    Args:
        name: the argument's name, for the message.
        value: a real number (Python, numpy or 0-d tensor); not a bool, not a string.
        lo: lower bound (inclusive unless ``lo_open``).
        hi: upper bound (inclusive unless ``hi_open``).
        lo_open: exclude ``lo``.
        hi_open: exclude ``hi``.
        what: extra words for the message, e.g. ``"(the drop probability)"``.

    Raises:
        ValueError: not a real number, not finite, or out of range; the message names it.
    """
    scalar = _scalar(value)
    ok = isinstance(scalar, numbers.Real) and not _is_bool(scalar)
    number = float(scalar) if ok else math.nan
    ok = ok and math.isfinite(number)
    ok = ok and (number > lo if lo_open else number >= lo) and (number < hi if hi_open else number <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        extra = f" {what}" if what else ""
        raise ValueError(
            f"{name} must be a finite number in {left}{lo:g}, {hi:g}{right}{extra}, got {value!r}"
        )
    return number


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]``; numpy and 0-d tensor integers are accepted.

    Raises:
        ValueError: a bool, a float, a string or an out-of-range value; the message names it.
    """
    scalar = _scalar(value)
    try:
        number = None if _is_bool(scalar) or isinstance(scalar, str) else operator.index(scalar)
    except TypeError:
        number = None
    if number is None or (lo is not None and number < lo) or (hi is not None and number > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name} must be an integer in {bounds}, got {value!r}")
    return number
