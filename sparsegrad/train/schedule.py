"""The paper's cosine decay per epoch, as a ``LambdaLR`` whose length can be re-planned.

Epoch ``e`` (from 1) trains at ``lr * (1 + cos(pi * (e - 1) / epochs)) / 2``: the closed form of
``CosineAnnealingLR`` with ``eta_min = 0``. The factor is a small object whose ``epochs`` the
scheduler's ``state_dict`` saves (``LambdaLR`` keeps the ``__dict__`` of callable objects), so a
run resumed with more epochs changes ``epochs`` and re-sets the current rate through public
attributes only (``base_lrs``, ``last_epoch``).

Reference: docs/design.md §5 (optimiser) and §6 (exact resume).
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["CosineFactor", "cosine_schedule", "replan"]


class CosineFactor:
    """``(1 + cos(pi * step / epochs)) / 2``, the multiplier of the base learning rate."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def __call__(self, step: int) -> float:
        return (1 + math.cos(math.pi * step / self.epochs)) / 2


def cosine_schedule(optimizer: torch.optim.Optimizer, epochs: int) -> LambdaLR:
    """A per-epoch cosine decay of every parameter group over ``epochs`` (stepped once per epoch)."""
    return LambdaLR(optimizer, CosineFactor(epochs))


def replan(scheduler, epochs: int) -> None:
    """Makes a restored [cosine_schedule][sparsegrad.train.schedule.cosine_schedule] run to
    ``epochs`` from where it is: the next epoch trains at the cosine over the new total.

    Args:
        scheduler: the schedule, or an Accelerate wrapper of it (``.scheduler``).
        epochs: the new total.

    Raises:
        TypeError: ``scheduler`` is not a cosine schedule.
    """
    inner = getattr(scheduler, "scheduler", scheduler)
    factors = getattr(inner, "lr_lambdas", None)
    if not isinstance(inner, LambdaLR) or not all(isinstance(f, CosineFactor) for f in factors):
        raise TypeError(f"replan needs a cosine_schedule, got {type(inner).__name__}")
    if all(f.epochs == epochs for f in factors):
        return
    for factor, group, base in zip(factors, inner.optimizer.param_groups, inner.base_lrs):
        factor.epochs = epochs
        group["lr"] = base * factor(inner.last_epoch)
