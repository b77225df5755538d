"""Spiking building blocks on time-first tensors: conv-BN, conv-BN-neuron, encoder, readout."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .config import SpikingConfig
from .norm import TimeBatchNorm2d
from .sequence import apply_merged

__all__ = ["ConvBN", "ConvBNNeuron", "SpikingEncoder", "Classifier"]


class ConvBN(nn.Module):
    """Conv2d (no bias, "same" padding) then [TimeBatchNorm2d][sparsegrad.layers.TimeBatchNorm2d].

    Args:
        in_chans: input channels.
        out_chans: output channels.
        kernel_size: square kernel, padded by ``kernel_size // 2``.
        stride: convolution stride. Default 1.
        bn_mode: ``"merged"`` (default) or ``"per_step"``.

    Shape:
        - Input: ``[T, B, C, H, W]`` (convolved on the merged ``[T*B, ...]`` tensor) or
          ``[B, C, H, W]``.
        - Output: the same layout with ``out_chans`` channels.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, bn_mode: str = "merged"):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = TimeBatchNorm2d(out_chans, bn_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) if x.ndim == 4 else apply_merged(self.conv, x))


class ConvBNNeuron(nn.Sequential):
    """[ConvBN][sparsegrad.layers.ConvBN] then a neuron from ``cfg``: currents in, spikes out.

    Args:
        in_chans: input channels.
        out_chans: output channels.
        kernel_size: square kernel.
        stride: convolution stride.
        cfg: neuron and BN settings. Default: [LIF][sparsegrad.neuron.LIF], merged BN.

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: spikes ``[T, B, out_chans, H', W']``.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1,
                 cfg: SpikingConfig | None = None):
        cfg = cfg or SpikingConfig()
        super().__init__(ConvBN(in_chans, out_chans, kernel_size, stride, cfg.bn_mode), cfg.neuron())


class SpikingEncoder(nn.Module):
    """First conv-BN-neuron of a network; takes static images or event frames.

    Static images ``[B, C, H, W]`` are direct-encoded: the image is presented at every
    timestep, so its conv-BN is computed once and repeated ``T`` times (identical frames
    give identical currents, T times cheaper). Event frames ``[B, T, C, H, W]`` (batch
    first, as loaders give them) are moved to time-first.

    Args:
        in_chans: input channels.
        out_chans: output channels.
        kernel_size: square kernel.
        stride: convolution stride.
        cfg: ``T``, neuron and BN settings.

    Shape:
        - Input: ``[B, C, H, W]`` or ``[B, T, C, H, W]``.
        - Output: spikes ``[T, B, out_chans, H', W']``.

    Raises:
        ValueError: an input of another rank or dtype, with other than ``in_chans``
            channels, or with a time dimension other than ``T``; the message names the shape.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, cfg: SpikingConfig):
        super().__init__()
        self.T = cfg.T
        self.in_chans = in_chans
        self.conv_bn = ConvBN(in_chans, out_chans, kernel_size, stride, cfg.bn_mode)
        self.neuron = cfg.neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if x.ndim == 4:
            y = self.conv_bn(x)
            y = y.unsqueeze(0).expand(self.T, *y.shape)
        else:
            y = self.conv_bn(rearrange(x, "b t ... -> t b ..."))
        return self.neuron(y)

    def _check(self, x) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim not in (4, 5) or not x.is_floating_point():
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"expected floating-point static images [B, C={self.in_chans}, H, W] or event "
                f"frames [B, T={self.T}, C={self.in_chans}, H, W], got {got}"
            )
        if x.shape[-3] != self.in_chans or (x.ndim == 5 and x.shape[1] != self.T):
            layout = "[B, C, H, W]" if x.ndim == 4 else "[B, T, C, H, W]"
            raise ValueError(
                f"input of shape {list(x.shape)} read as {layout} does not match the model's "
                f"in_chans={self.in_chans}, T={self.T}"
            )


class Classifier(nn.Module):
    """Per-timestep readout: global average pool (or flatten), dropout, Linear.

    Its output ``I_L[t]`` is the network's output: neither leaked nor spiked
    (docs/design.md §2.1).

    Args:
        in_features: features after pooling and flattening.
        num_classes: outputs; 0 leaves the Linear out (the pre-logits are returned).
        drop_rate: dropout before the Linear.
        global_pool: ``"avg"`` (average the feature map first) or ``""`` (flatten it).

    Shape:
        - Input: ``[T, B, C, H, W]``.
        - Output: ``[T, B, num_classes]``, or ``[T, B, in_features]`` with
          ``pre_logits=True`` or ``num_classes=0``.
    """

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '' (flatten), got {global_pool!r}")
        self.global_pool = global_pool
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool == "avg" else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = apply_merged(lambda z: self.drop(self.pool(z).flatten(1)), x)
        return x if pre_logits else apply_merged(self.fc, x)
