"""Batch norm over time-first sequences, merged over time or per timestep."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_choice
from .checkpoint import is_recomputing
from .sequence import apply_merged

__all__ = ["BN_MODES", "TimeBatchNorm2d"]

BN_MODES = ("merged", "per_step")


class TimeBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` over ``[T, B, C, H, W]``, merged over time or per timestep.

    ``"merged"`` computes the statistics over the ``T*B`` frames together (spikingjelly,
    TET); ``"per_step"`` over the ``B`` frames of each timestep, with one update of the
    running statistics per timestep (the authors' released code, which runs one timestep
    at a time). A 4-D ``[B, C, H, W]`` input (a static image before direct encoding) is
    normalised as an ordinary batch.

    Under [checkpoint_seq][sparsegrad.layers.checkpoint_seq] the recomputed forward uses
    the same batch statistics but leaves the running statistics alone, so they are updated
    once per step, as without checkpointing.

    Args:
        num_features: channels ``C``.
        mode: ``"merged"`` (default) or ``"per_step"``.

    Shape:
        - Input: ``[T, B, C, H, W]`` or ``[B, C, H, W]``.
        - Output: the same shape.

    Raises:
        ValueError: an unknown ``mode``.

    Reference: docs/design.md §3 and §4.
    """

    def __init__(self, num_features: int, mode: str = "merged"):
        check_choice("bn_mode", mode, BN_MODES)
        super().__init__(num_features)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return self._normalise(x)
        if self.mode == "per_step":
            return torch.stack([self._normalise(x_t) for x_t in x])
        return apply_merged(self._normalise, x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and is_recomputing():
            # The first forward's graph and batch statistics, on throwaway running statistics.
            stats = self.running_mean.clone(), self.running_var.clone()
            return F.batch_norm(x, *stats, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"
