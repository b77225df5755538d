"""Defaults that depend on the data at hand: seeds, batch size, augmentation fields, workers.

[RecipeConfig][sparsegrad.train.config.RecipeConfig]'s defaults are the paper's (three seeds,
batch 128), made for CIFAR-size data. On a folder of a few hundred images they give about four
optimizer steps per epoch, and a network learns nothing in a few epochs (issue 18).
[data_defaults][sparsegrad.train.defaults.data_defaults] therefore resolves, for ``imagefolder``:

- ``seeds``: one seed, ``(0,)``, where the field holds the class default ``(0, 1, 2)``;
- ``batch_size``: where it holds the class default (128), the largest power of two (at least
  [MIN_BATCH][sparsegrad.train.defaults.MIN_BATCH]) that gives at least
  [MIN_STEPS][sparsegrad.train.defaults.MIN_STEPS] optimizer steps per epoch on the training
  split; a batch the user chose that gives fewer steps is kept, with a warning naming the steps
  and a batch that would give enough ([steps_warning][sparsegrad.train.defaults.steps_warning]).

For every dataset it sets the augmentation fields that do nothing on it to ``None`` (so
``config.json`` records no ``autoaugment: true`` for an image folder) and caps ``num_workers``
at the cores this process may run on.

The defaults are recognised by value, so ``--seeds 0 1 2`` or ``--batch-size 128`` typed on the
command line for an image folder are read as "not asked" too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from pathlib import Path

from sparsegrad.data import DATASETS

# RecipeConfig (sparsegrad.train.config) is only named in annotations: config imports this
# module, so importing it back would make a circle.

__all__ = ["MIN_BATCH", "MIN_STEPS", "available_cores", "data_defaults", "steps_warning", "suggest_batch"]

MIN_STEPS = 50
"""Optimizer steps per epoch the default batch aims at."""
MIN_BATCH = 8
"""Smallest batch the default picks (batch norm over smaller batches is noisy)."""
_PAPER_SEEDS = (0, 1, 2)
_PAPER_BATCH = 128
_SINGLE_SPLIT_TEST = 10  # a single-split folder without --folds tests one tenth (sparsegrad.data.load_splits)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def suggest_batch(num_train: int, split: int = 1) -> int:
    """The largest power of two times ``split`` that gives at least ``MIN_STEPS`` steps per
    epoch on ``num_train`` samples; never below ``max(MIN_BATCH, split)`` rounded to ``split``.

    Args:
        num_train: training samples per epoch.
        split: processes x accumulation steps the batch must be a multiple of.
    """
    batch = max(MIN_BATCH, split)
    while 2 * batch * MIN_STEPS <= num_train:
        batch *= 2
    return max(split, batch // split * split)


def steps_warning(batch_size: int, num_train: int, split: int = 1) -> str | None:
    """A warning text when ``batch_size`` gives fewer than ``MIN_STEPS`` steps on ``num_train``
    samples (naming the steps and a batch that gives more), else ``None``."""
    steps = math.ceil(num_train / batch_size)
    if steps >= MIN_STEPS:
        return None
    better = suggest_batch(num_train, split)
    advice = (f"; --batch-size {better} gives {math.ceil(num_train / better)}" if better < batch_size else
              "; more data or more epochs will help more than a smaller batch")
    return (f"--batch-size {batch_size} gives {steps} optimizer step(s) per epoch on {num_train} training "
            f"samples, too few to learn in a few epochs{advice}")


@functools.lru_cache(maxsize=8)
def _folder_size(root: str) -> tuple[int, bool]:
    """Images of an image folder's training split, and whether it is a single split."""
    from sparsegrad.data.imagefolder import open_imagefolder

    train, test = open_imagefolder(root)
    return len(train), test is None


def _train_samples(cfg: RecipeConfig) -> int | None:
    if cfg.dataset != "imagefolder" or cfg.data_root is None or not Path(cfg.data_root).expanduser().is_dir():
        return None
    try:
        total, single = _folder_size(str(Path(cfg.data_root).expanduser().resolve()))
    except (OSError, ValueError):
        return None  # the data check reports the folder's problem, naming it
    folds = cfg.folds or (_SINGLE_SPLIT_TEST if single else None)
    num = total - total // folds if folds else total
    return min(num, cfg.train_limit) if cfg.train_limit else num


def _augmentation(cfg: RecipeConfig) -> dict:
    kind = DATASETS[cfg.dataset].kind if cfg.dataset in DATASETS else None
    fields = {}
    if kind != "static":
        fields["autoaugment"] = None  # AutoAugment and Cutout exist for CIFAR / ImageNet only
    if kind == "static":
        fields["augment"] = None  # crop / flip of event data and image folders
    return fields


def data_defaults(cfg: RecipeConfig, num_processes: int = 1) -> RecipeConfig:
    """``cfg`` with the data-dependent defaults of this module resolved (module docstring).

    Args:
        cfg: the configuration as given.
        num_processes: processes the global batch is split over.

    Returns:
        A copy of ``cfg``; ``cfg`` itself is unchanged.

    Warns:
        UserWarning: a chosen ``batch_size`` gives fewer than ``MIN_STEPS`` steps per epoch.
    """
    fields = _augmentation(cfg)
    if cfg.num_workers > available_cores():
        fields["num_workers"] = available_cores()
    num_train = _train_samples(cfg)
    if num_train is not None:
        if tuple(cfg.seeds) == _PAPER_SEEDS:
            fields["seeds"] = (0,)
        split = num_processes * cfg.grad_accum
        if cfg.batch_size == _PAPER_BATCH:
            fields["batch_size"] = min(_PAPER_BATCH, suggest_batch(num_train, split))
        elif (text := steps_warning(cfg.batch_size, num_train, split)) is not None:
            warnings.warn(text, stacklevel=3)
    return dataclasses.replace(cfg, **fields)
