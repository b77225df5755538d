"""Train/test splits for datasets without an official one, and a class-balanced sampler.

CIFAR10-DVS and N-Caltech101 ship no train/test split. Following the paper (docs/design.md §5) and the
code it builds on, the split is 9:1 **by index within each class**: a class's recordings are put
in sorted file order ([natural_key][sparsegrad.data.splits.natural_key], so ``cifar10_cat_2`` comes before ``cifar10_cat_10``)
and the first 90 % of them train, the rest test. The split is a pure function of the file names:
no random draw, so every run, machine and process sees the same one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import torch
from torch.utils.data import WeightedRandomSampler

from sparsegrad._validate import check_int, check_real

__all__ = ["class_balanced_sampler", "kfold_split", "natural_key", "split_part", "split_per_class"]

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key comparing runs of digits as numbers: ``x_2 < x_10`` (plain sorting: ``x_10 < x_2``).

    Args:
        name: a file name or relative path.

    Returns:
        A tuple usable as ``sorted(names, key=natural_key)``; ties between ``x_02`` and ``x_2``
        are broken by the plain string, so the order is total and deterministic.
    """
    parts = _DIGITS.split(name)
    return (*((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p), name)


def split_per_class(
    targets: Sequence[int], train_fraction: float = 0.9
) -> tuple[list[int], list[int]]:
    """Splits sample indices 9:1 (by default) by index within each class.

    For every class, its samples are taken in index order (the caller lists them in sorted file
    order); the first ``floor(n_c * train_fraction)`` of them train, the remaining ones test.
    With 1,000 recordings per class (CIFAR10-DVS) that is 900 + 100 per class.

    Args:
        targets: the class of each sample, in the dataset's (sorted file) order.
        train_fraction: fraction of each class that trains, in (0, 1). It is read as an exact
            fraction (0.9 is 9/10), so no floating-point rounding moves a sample across the split.

    Returns:
        ``(train_indices, test_indices)``: disjoint, together all indices, each in increasing
        order. A class with a single sample lands entirely in the test part.

    Raises:
        ValueError: ``train_fraction`` is outside (0, 1).

    Reference:
        docs/design.md §5; spikingjelly ``datasets.split_to_train_test_set`` (same per-class rule, floor).
    """
    train_fraction = check_real("train_fraction", train_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    fraction = Fraction(train_fraction).limit_denominator(10**6)
    per_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        per_class.setdefault(int(target), []).append(index)
    train: list[int] = []
    test: list[int] = []
    for indices in per_class.values():
        n_train = len(indices) * fraction.numerator // fraction.denominator
        train += indices[:n_train]
        test += indices[n_train:]
    return sorted(train), sorted(test)


def split_part(files: Sequence, targets: Sequence[int], train: bool, train_fraction: float) -> tuple[list, list[int]]:
    """The training (``train``) or test part of ``(files, targets)`` under
    [split_per_class][sparsegrad.data.splits.split_per_class]."""
    train_idx, test_idx = split_per_class(targets, train_fraction)
    keep = train_idx if train else test_idx
    return [files[i] for i in keep], [targets[i] for i in keep]


def kfold_split(targets: Sequence[int], folds: int, fold: int) -> tuple[list[int], list[int]]:
    """Fold ``fold`` of a per-class k-fold split: deterministic, no random draw.

    The samples of each class, in index order, are cut into ``folds`` contiguous chunks, chunk
    ``j`` holding positions ``[j * n_c // folds, (j + 1) * n_c // folds)`` of the class's
    ``n_c`` samples. Chunk ``fold`` of every class is the test set, the other chunks train.
    ``kfold_split(t, 10, 9)`` is [split_per_class][sparsegrad.data.splits.split_per_class]
    ``(t, 0.9)``: the last tenth of each class tests.

    Args:
        targets: the class of each sample, in the dataset's order.
        folds: number of chunks per class, ``>= 2`` (``--folds``).
        fold: the chunk that tests, in ``[0, folds)`` (``--fold``).

    Returns:
        ``(train_indices, test_indices)``: disjoint, together all indices, increasing. Over
        ``fold = 0 .. folds - 1`` every sample tests exactly once.

    Raises:
        ValueError: ``folds < 2``, ``fold`` outside ``[0, folds)``, or a class with fewer than
            ``folds`` samples (the message names the class and its count).

    Example:
        ```python
        kfold_split([0, 0, 0, 1, 1, 1], folds=3, fold=1)  # ([0, 2, 3, 5], [1, 4])
        ```
    """
    folds = check_int("--folds", folds, 2)
    fold = check_int("--fold", fold, 0, folds - 1, what=f"(one of the {folds} folds)")
    per_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        per_class.setdefault(int(target), []).append(index)
    small = {c: len(i) for c, i in sorted(per_class.items()) if len(i) < folds}
    if small:
        raise ValueError(f"--folds {folds} needs at least {folds} samples per class; "
                         f"class(es) {small} (class: samples) have fewer")
    train: list[int] = []
    test: list[int] = []
    for indices in per_class.values():
        n = len(indices)
        lo, hi = fold * n // folds, (fold + 1) * n // folds
        train += indices[:lo] + indices[hi:]
        test += indices[lo:hi]
    return sorted(train), sorted(test)


def class_balanced_sampler(
    targets: Sequence[int],
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> WeightedRandomSampler:
    """A sampler that draws every class equally often (N-Caltech101's training sampler).

    Each sample gets weight ``1 / count(its class)``, so every class has the same total weight;
    samples are drawn with replacement.

    Args:
        targets: the class of each sample of the dataset the sampler will index.
        num_samples: draws per epoch; ``None`` means ``len(targets)``.
        generator: optional ``torch.Generator`` for reproducible draws.

    Returns:
        A ``torch.utils.data.WeightedRandomSampler``; pass it as ``DataLoader(sampler=...)``
        (without ``shuffle``).

    Raises:
        ValueError: ``targets`` is empty.

    Reference:
        docs/design.md §5 (N-Caltech101 uses a class-balanced sampler).
    """
    if len(targets) == 0:
        raise ValueError("class_balanced_sampler needs at least one target")
    counts = Counter(int(t) for t in targets)
    weights = torch.tensor([1.0 / counts[int(t)] for t in targets], dtype=torch.double)
    return WeightedRandomSampler(
        weights,
        num_samples=len(targets) if num_samples is None else num_samples,
        replacement=True,
        generator=generator,
    )
