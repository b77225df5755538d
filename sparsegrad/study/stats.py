"""Paired statistics for ablations: the same seeds, folds and initial weights under each variant.

Every number the study publishes comes from here: accuracy as mean ± sample sd over seeds, and
each variant against the baseline as the mean of the per-seed paired differences with a
t-based 95 % confidence interval, an exact Wilcoxon signed-rank p-value and an exact sign-flip
permutation p-value (both two-sided, computed by ``scipy.stats``).

With n pairs the smallest two-sided p-value either exact test can give is ``2 / 2**n``
(0.0625 for five seeds): with few seeds the interval, not the p-value, carries the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from sparsegrad.train.report import mean_sd

__all__ = ["mean_sd", "paired_comparison"]  # mean_sd: the engine's, so that both report alike


def paired_comparison(variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> dict:
    """Compare two paired samples (``variant[i]`` and ``baseline[i]`` share seed ``i``).

    Args:
        variant: one value per pair, e.g. test accuracy in % per seed.
        baseline: the baseline's values, in the same pair order.
        confidence: level of the t-based interval of the mean difference.

    Returns:
        ``n``, ``mean_diff`` (variant - baseline), ``sd_diff``, ``ci_low``, ``ci_high``
        (Student t with n - 1 degrees of freedom), ``wilcoxon_p`` (exact signed-rank test; 1.0
        when every difference is 0) and ``permutation_p`` (exact sign-flip test of the mean
        difference over all ``2**n`` sign patterns).

    Raises:
        ValueError: the samples differ in length, hold fewer than 2 pairs, or ``confidence``
            is not in (0, 1).
    """
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and equally long, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired comparison needs at least 2 pairs, got {a.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    d = a - b
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * sd / math.sqrt(d.size)
    return {
        "n": int(d.size),
        "mean_diff": mean,
        "sd_diff": sd,
        "ci_low": float(mean - half),
        "ci_high": float(mean + half),
        "wilcoxon_p": _wilcoxon_p(d),
        "permutation_p": _sign_flip_p(d),
    }


def _wilcoxon_p(d: np.ndarray) -> float:
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", method="auto").pvalue)


def _sign_flip_p(d: np.ndarray) -> float:
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                    alternative="two-sided")
    return float(result.pvalue)
