"""Shared argument validators: one per kind of argument, each with a clear error naming the
value and what is accepted.

Configs often arrive as strings (YAML, JSON, environment variables) or as numpy/torch
scalars. Strings are never read as booleans or numbers here (``"False"`` is truthy, so
``bool("False")`` would silently switch a method variant on); numpy and 0-d torch scalars
are accepted wherever a Python number is, and bools (Python, numpy, torch) are never
numbers. Every checker raises ``ValueError`` and returns the value as a plain Python object.

| kind | checker |
|---|---|
| a flag | [check_bool][sparsegrad._validate.check_bool] |
| a real number in an interval | [check_real][sparsegrad._validate.check_real] |
| a probability in [0, 1] | [check_probability][sparsegrad._validate.check_probability] |
| an integer in an interval | [check_int][sparsegrad._validate.check_int] |
| a positive integer (sizes, counts) | [check_positive_int][sparsegrad._validate.check_positive_int] |
| a number of timesteps ``T >= 1`` | [check_timesteps][sparsegrad._validate.check_timesteps] |
| one of a few names | [check_choice][sparsegrad._validate.check_choice] |
| an image or frame size | [check_size][sparsegrad._validate.check_size] |
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Collection

import numpy as np
import torch

__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_positive_int",
    "check_probability",
    "check_real",
    "check_size",
    "check_timesteps",
]


def _scalar(value):
    """A 0-d tensor as its Python scalar; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    return value


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _suffix(what: str) -> str:
    return f" {what}" if what else ""


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
        raise ValueError(
            f"{name} must be a finite number in {left}{lo:g}, {hi:g}{right}{_suffix(what)}, got {value!r}"
        )
    return number


def check_probability(name: str, value, *, what: str = "") -> float:
    """``value`` as a float in ``[0, 1]`` (see [check_real][sparsegrad._validate.check_real])."""
    return check_real(name, value, 0.0, 1.0, what=what)


def _int_range(lo: int | None, hi: int | None) -> str:
    if lo is None and hi is None:
        return "an integer"
    if hi is None:
        return f"an integer >= {lo}"
    if lo is None:
        return f"an integer <= {hi}"
    return f"an integer in [{lo}, {hi}]"


def check_int(name: str, value, lo: int | None = None, hi: int | None = None, *, what: str = "") -> int:
    """``value`` as an int in ``[lo, hi]``; numpy and 0-d tensor integers are accepted.

    Args:
        name: the argument's name, for the message.
        value: an integer (Python, numpy or 0-d tensor); not a bool, a float or a string.
        lo: smallest accepted value (``None``: no bound).
        hi: largest accepted value (``None``: no bound).
        what: extra words for the message, e.g. ``"(timesteps)"``.

    Raises:
        ValueError: a bool, a float (also ``4.0``), a string or an out-of-range value; the
            message names it and the accepted range.
    """
    scalar = _scalar(value)
    try:
        number = None if _is_bool(scalar) or isinstance(scalar, str) else operator.index(scalar)
    except TypeError:
        number = None
    if number is None or (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ValueError(f"{name} must be {_int_range(lo, hi)}{_suffix(what)}, got {value!r}")
    return number


def check_positive_int(name: str, value, *, what: str = "") -> int:
    """``value`` as an int ``>= 1`` (see [check_int][sparsegrad._validate.check_int])."""
    return check_int(name, value, 1, what=what)


def check_timesteps(name: str, value) -> int:
    """A number of timesteps ``T``: an int ``>= 1``; numpy and 0-d tensor integers accepted,
    bools, floats and strings refused. The one check of ``T`` for every module.

    Raises:
        ValueError: e.g. ``T must be an integer >= 1 (timesteps), got 0``.
    """
    return check_int(name, value, 1, what="(timesteps)")


def check_choice(name: str, value, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices`` (exact match, case included).

    Raises:
        ValueError: anything else; the message lists the choices.
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_size(name: str, value) -> tuple[int, int]:
    """An image or frame size: one positive int (a square) or ``(height, width)``.

    Returns:
        ``(height, width)`` as Python ints.

    Raises:
        ValueError: anything else (a bool, a float, a pair with a non-positive side, three
            values); the message names it.
    """
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    try:
        if len(pair) != 2:
            raise ValueError
        height, width = (check_positive_int(name, side) for side in pair)
    except ValueError:
        raise ValueError(
            f"{name} must be a positive integer or (height, width) of positive integers, got {value!r}"
        ) from None
    return height, width
