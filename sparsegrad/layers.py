"""Layers that lift stateless per-frame modules to time-first sequences."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["SeqToANN"]


class SeqToANN(nn.Sequential):
    """Applies stateless per-frame modules to a whole ``[T, B, ...]`` sequence at once.

    Time and batch are merged (``[T, B, ...] -> [T*B, ...]``), the modules run in order on
    the merged tensor as on an ordinary batch, and the result is split back to
    ``[T, B, ...]``. One call replaces ``T`` calls of the modules, and a ``BatchNorm``
    inside sees time and batch together (its statistics are over ``T*B`` frames, as in
    spikingjelly's ``SeqToANNContainer`` and TET; DESIGN §3).

    Only modules that treat the frames of a batch independently belong here:
    ``Conv2d``, ``BatchNorm2d``, ``AvgPool2d``, ``Flatten``, ``Linear``, ``Dropout``, ... .
    Spiking neurons, which carry state from one timestep to the next, go between
    ``SeqToANN`` blocks. (``Dropout`` draws an independent mask per frame and timestep.)

    Args:
        *modules: the modules, applied in order (as :class:`torch.nn.Sequential`).

    Shape:
        - Input: ``[T, B, *]``, time first, at least 3 dimensions.
        - Output: ``[T, B, *']``, where ``*'`` is what the modules make of a ``[T*B, *]``
          batch.

    Raises:
        ValueError: the input is not a tensor with at least 3 dimensions ``[T, B, ...]``,
            or the modules change the size of the merged ``T*B`` dimension.

    Reference: DESIGN §3 (conv/BN/pool on the merged ``[T*B, ...]`` tensor);
    spikingjelly ``activation_based.layer.SeqToANNContainer``.

    Example::

        >>> block = SeqToANN(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8))
        >>> block(torch.rand(10, 4, 2, 34, 34)).shape      # T=10, B=4
        torch.Size([10, 4, 8, 34, 34])
    """

    def __init__(self, *modules: nn.Module):
        super().__init__(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 3:
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__} expects a time-first sequence [T, B, ...] with at least "
                f"3 dimensions (e.g. [T, B, C, H, W] or [T, B, features]), got {got}"
            )
        T, B = x.shape[:2]
        y = super().forward(rearrange(x, "t b ... -> (t b) ..."))
        if not isinstance(y, torch.Tensor) or y.ndim < 1 or y.shape[0] != T * B:
            got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"{type(self).__name__}: the modules must keep the merged batch of T*B = "
                f"{T}*{B} = {T * B} frames in front, got an output of shape {got}"
            )
        return rearrange(y, "(t b) ... -> t b ...", t=T)
