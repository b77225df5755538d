"""The shared argument checkers of sparsegrad/_validate.py: one answer per kind of argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsegrad._validate import (
    check_choice,
    check_int,
    check_positive_int,
    check_probability,
    check_real,
    check_size,
    check_timesteps,
)

INTEGERS = [4, np.int64(4), np.int32(4), np.uint8(4), torch.tensor(4)]
NOT_INTEGERS = [True, np.True_, torch.tensor(True), 4.0, np.float64(4.0), torch.tensor(4.0), "4", None, [4]]


@pytest.mark.parametrize("value", INTEGERS, ids=repr)
def test_integer_scalars_of_every_library_are_timesteps(value):
    assert check_timesteps("T", value) == 4 and type(check_timesteps("T", value)) is int


@pytest.mark.parametrize("value", [*NOT_INTEGERS, 0, -3, np.int64(0)], ids=repr)
def test_timesteps_refuse_bools_floats_strings_and_zero_naming_the_value(value):
    with pytest.raises(ValueError, match=r"^T must be an integer >= 1 \(timesteps\), got ") as info:
        check_timesteps("T", value)
    assert str(info.value).endswith(repr(value))


def test_int_ranges_are_stated_in_the_message():
    assert check_int("seed", 0, 0, 9) == 0 and check_int("n", -5) == -5
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 9\], got 10"):
        check_int("seed", 10, 0, 9)
    with pytest.raises(ValueError, match=r"k must be an integer <= 2, got 3"):
        check_int("k", 3, hi=2)
    with pytest.raises(ValueError, match=r"n must be an integer, got 1.5"):
        check_int("n", 1.5)
    with pytest.raises(ValueError, match=r"batch must be an integer >= 1 \(samples\), got 0"):
        check_positive_int("batch", 0, what="(samples)")


@pytest.mark.parametrize("value", [0, 1, 0.25, np.float32(0.5), torch.tensor(1.0), np.int64(1)], ids=repr)
def test_probabilities_accept_reals_in_the_closed_unit_interval(value):
    assert check_probability("p", value) == float(_item(value))


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), float("inf"), True, np.True_, "0.5", None], ids=repr)
def test_probabilities_refuse_the_rest(value):
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\], got "):
        check_probability("p", value)


def test_open_intervals():
    assert check_real("beta", 0.0, 0.0, 1.0, hi_open=True) == 0.0
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0, 1\), got 1.0"):
        check_real("beta", 1.0, 0.0, 1.0, hi_open=True)


def test_choices_are_exact_and_listed():
    assert check_choice("mode", "step", ("epoch", "step")) == "step"
    for bad in ("Step", None, 1):
        with pytest.raises(ValueError, match=r"mode must be one of \('epoch', 'step'\), got "):
            check_choice("mode", bad, ("epoch", "step"))


@pytest.mark.parametrize(("value", "want"), [(48, (48, 48)), ((32, 40), (32, 40)), ([np.int64(3), 5], (3, 5))])
def test_sizes_are_a_side_or_a_pair(value, want):
    assert check_size("size", value) == want


@pytest.mark.parametrize("value", [0, True, 4.5, (3,), (3, 4, 5), (0, 4), (4, "4"), "48"], ids=repr)
def test_bad_sizes_are_refused(value):
    with pytest.raises(ValueError, match=r"size must be a positive integer or \(height, width\)"):
        check_size("size", value)


def _item(value):
    return value.item() if isinstance(value, torch.Tensor) else value
