"""Paired statistics of the study against closed forms and symmetry properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsegrad.study.stats import mean_sd, paired_comparison

T_975_DF4 = 2.7764451051977987  # Student t quantile, 0.975, 4 degrees of freedom


def test_interval_is_the_t_interval_of_the_differences():
    r = paired_comparison([11, 12, 13, 14, 15], [10, 10, 10, 10, 10])
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)
    assert r["n"] == 5 and r["mean_diff"] == pytest.approx(3.0)
    assert r["sd_diff"] == pytest.approx(math.sqrt(2.5))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((3 - half, 3 + half))


def test_exact_p_values_bottom_out_at_two_over_two_to_the_n():
    r = paired_comparison([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert r["wilcoxon_p"] == pytest.approx(2 / 2**5)
    assert r["permutation_p"] == pytest.approx(2 / 2**5)


def test_sign_flip_p_counts_patterns_at_least_as_extreme():
    # d = (1, 1, 1, -1): |mean| >= 0.5 for the patterns with 3 or 4 equal signs: 2 * (1 + 4) of 16.
    r = paired_comparison([1, 1, 1, -1], [0, 0, 0, 0])
    assert r["permutation_p"] == pytest.approx(10 / 16)


def test_identical_samples_show_no_difference():
    r = paired_comparison([0.5, 0.7, 0.6], [0.5, 0.7, 0.6])
    assert r["mean_diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
    assert r["wilcoxon_p"] == 1.0 and r["permutation_p"] == 1.0


pairs = st.integers(3, 8).flatmap(
    lambda n: st.tuples(*[st.lists(st.floats(0, 100, allow_nan=False), min_size=n, max_size=n)] * 2)
)


@settings(max_examples=40, deadline=None)
@given(pairs)
def test_swapping_the_samples_mirrors_the_result(ab):
    a, b = ab
    fwd, back = paired_comparison(a, b), paired_comparison(b, a)
    assert back["mean_diff"] == pytest.approx(-fwd["mean_diff"], abs=1e-9)
    assert (back["ci_low"], back["ci_high"]) == pytest.approx((-fwd["ci_high"], -fwd["ci_low"]), abs=1e-9)
    assert back["wilcoxon_p"] == pytest.approx(fwd["wilcoxon_p"])
    assert back["permutation_p"] == pytest.approx(fwd["permutation_p"])


@settings(max_examples=40, deadline=None)
@given(pairs)
def test_interval_holds_the_mean_difference(ab):
    r = paired_comparison(*ab)
    assert r["ci_low"] - 1e-9 <= r["mean_diff"] <= r["ci_high"] + 1e-9
    assert 0 < r["permutation_p"] <= 1 and 0 < r["wilcoxon_p"] <= 1


def test_mean_sd_uses_the_sample_sd():
    assert mean_sd([1, 2, 3, 4]) == pytest.approx((2.5, np.std([1, 2, 3, 4], ddof=1)))
    assert math.isnan(mean_sd([7.0])[1])


@pytest.mark.parametrize(("a", "b", "confidence", "match"), [
    ([1, 2], [1, 2, 3], 0.95, "equally long"),
    ([1], [2], 0.95, "at least 2 pairs"),
    ([1, 2], [3, 4], 1.5, "confidence"),
])
def test_bad_input_is_named(a, b, confidence, match):
    with pytest.raises(ValueError, match=match):
        paired_comparison(a, b, confidence)
    with pytest.raises(ValueError, match="at least one"):
        mean_sd([])
