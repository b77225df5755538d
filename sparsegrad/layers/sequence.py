"""Per-frame modules on time-first sequences: the one time x batch merge of the library."""

from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange
from torch import nn

__all__ = ["apply_merged", "SeqToANN", "TimeAvgPool2d"]


def apply_merged(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame ``fn`` to a ``[T, B, ...]`` sequence in one call on ``[T*B, ...]``.

    Time and batch are merged, ``fn`` runs on the merged tensor as on an ordinary batch,
    and its output is split back. A batch norm inside ``fn`` therefore sees time and batch
    together (docs/design.md §3).

    Args:
        fn: a function or module that treats the frames of a batch independently.
        x: the sequence, time first.

    Shape:
        - Input: ``[T, B, *]``, at least 3 dimensions.
        - Output: ``[T, B, *']``, where ``*'`` is what ``fn`` makes of a ``[T*B, *]`` batch.

    Raises:
        ValueError: ``x`` is not a tensor with at least 3 dimensions, or ``fn`` changes
            the size of the merged ``T*B`` dimension.

    Example:
        ```python
        x = torch.rand(10, 4, 2, 34, 34)                      # T=10, B=4
        apply_merged(nn.Conv2d(2, 8, 3, padding=1), x).shape   # [10, 4, 8, 34, 34]
        ```
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 3:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            "expected a time-first sequence [T, B, ...] with at least 3 dimensions "
            f"(e.g. [T, B, C, H, W] or [T, B, features]), got {got}"
        )
    T, B = x.shape[:2]
    y = fn(rearrange(x, "t b ... -> (t b) ..."))
    if not isinstance(y, torch.Tensor) or y.ndim < 1 or y.shape[0] != T * B:
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"a per-frame module must keep the merged batch of T*B = {T}*{B} = {T * B} "
            f"frames in front, got an output of shape {got}"
        )
    return rearrange(y, "(t b) ... -> t b ...", t=T)


class SeqToANN(nn.Sequential):
    """Stateless per-frame modules applied to a whole ``[T, B, ...]`` sequence at once.

    The modules run in order on the merged ``[T*B, ...]`` tensor
    ([apply_merged][sparsegrad.layers.apply_merged]): one call replaces ``T`` calls, and a
    ``BatchNorm`` inside computes its statistics over ``T*B`` frames, as spikingjelly's
    ``SeqToANNContainer`` and TET do.

    Only modules that treat the frames of a batch independently belong here: ``Conv2d``,
    ``BatchNorm2d``, ``AvgPool2d``, ``Flatten``, ``Linear``, ``Dropout`` (an independent
    mask per frame and timestep). Spiking neurons, which carry state from one timestep to
    the next, go between ``SeqToANN`` blocks.

    Args:
        *modules: the modules, applied in order (as ``torch.nn.Sequential``).

    Shape:
        - Input: ``[T, B, *]``, time first, at least 3 dimensions.
        - Output: ``[T, B, *']``, where ``*'`` is what the modules make of a ``[T*B, *]``
          batch.

    Raises:
        ValueError: the input is not a tensor with at least 3 dimensions ``[T, B, ...]``,
            or the modules change the size of the merged ``T*B`` dimension.

    Reference: docs/design.md §3; spikingjelly ``activation_based.layer.SeqToANNContainer``.

    Example:
        ```python
        block = SeqToANN(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8))
        block(torch.rand(10, 4, 2, 34, 34)).shape      # T=10, B=4: [10, 4, 8, 34, 34]
        ```
    """

    def __init__(self, *modules: nn.Module):  # spelled out so the API page shows this signature
        super().__init__(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_merged(super().forward, x)


class TimeAvgPool2d(nn.AvgPool2d):
    """``AvgPool2d`` on every frame of ``[T, B, C, H, W]`` spikes (the paper's pooling, §5).

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: ``[T, B, C, H', W']``, as ``torch.nn.AvgPool2d`` gives per frame.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_merged(super().forward, x)
