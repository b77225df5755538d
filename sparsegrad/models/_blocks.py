"""Spiking building blocks shared by the model zoo: conv-BN(-LIF) on time-first tensors.

Convolutions run on the merged ``[T*B, ...]`` tensor (einops); batch norm either on the
merged tensor (``bn_mode="merged"``: statistics over time and batch, as spikingjelly and
TET) or once per timestep (``"per_step"``: the authors' released code, which runs one
timestep at a time). DESIGN §3-4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from ..neuron import LIF

BN_MODES = ("merged", "per_step")


@dataclass(frozen=True)
class SpikingConfig:
    """Neuron and normalisation settings shared by every layer of a network.

    Args:
        T: timesteps (``>= 1``).
        tau: as :class:`~sparsegrad.neuron.LIF`.
        v_threshold: as :class:`~sparsegrad.neuron.LIF`.
        surrogate: as :class:`~sparsegrad.neuron.LIF`.
        alpha: as :class:`~sparsegrad.neuron.LIF`.
        detach_reset: as :class:`~sparsegrad.neuron.LIF`.
        bn_mode: ``"merged"`` (default) or ``"per_step"``.

    Raises:
        ValueError: ``T < 1`` or an unknown ``bn_mode``; LIF arguments are checked by LIF.
    """

    T: int = 4
    tau: float = 2.0
    v_threshold: float = 0.5
    surrogate: str = "pl"
    alpha: float | None = None
    detach_reset: bool = False
    bn_mode: str = "merged"

    def __post_init__(self):
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 1:
            raise ValueError(f"T must be an int >= 1 (timesteps), got {self.T!r}")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {self.bn_mode!r}")
        self.lif()  # validate the neuron arguments now, not at the first layer

    def lif(self) -> LIF:
        return LIF(
            tau=self.tau,
            v_threshold=self.v_threshold,
            surrogate=self.surrogate,
            alpha=self.alpha,
            detach_reset=self.detach_reset,
        )


def merged(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame ``module`` to ``[T, B, ...]`` on the merged ``[T*B, ...]`` tensor."""
    T = x.shape[0]
    return rearrange(module(rearrange(x, "t b ... -> (t b) ...")), "(t b) ... -> t b ...", t=T)


class TimeBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` over ``[T, B, C, H, W]``, merged over time or per timestep.

    A 4-D ``[B, C, H, W]`` input (a static image before direct encoding) is normalised as
    an ordinary batch.

    Args:
        num_features: channels ``C``.
        mode: ``"merged"`` (statistics over ``T*B``) or ``"per_step"`` (over ``B``, one
            update of the running statistics per timestep).
    """

    def __init__(self, num_features: int, mode: str = "merged"):
        super().__init__(num_features)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return super().forward(x)
        if self.mode == "per_step":
            return torch.stack([super(TimeBatchNorm2d, self).forward(x_t) for x_t in x])
        return merged(super().forward, x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}"


class ConvBN(nn.Module):
    """Conv2d (no bias) then :class:`TimeBatchNorm2d`, on ``[T, B, C, H, W]`` or ``[B, C, H, W]``."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, cfg: SpikingConfig):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = TimeBatchNorm2d(out_chans, cfg.bn_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) if x.ndim == 4 else merged(self.conv, x))


class ConvBNLIF(nn.Sequential):
    """Conv-BN-LIF: ``[T, B, C, H, W]`` currents in, spikes out."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, cfg: SpikingConfig):
        super().__init__(ConvBN(in_chans, out_chans, kernel_size, stride, cfg), cfg.lif())


class SpikingEncoder(nn.Module):
    """First conv-BN-LIF of a network; takes static images or event frames.

    Static images ``[B, C, H, W]`` are direct-encoded: the image is presented at every
    timestep, so its conv-BN is computed once and repeated ``T`` times (identical frames
    give identical results, T times cheaper). Event frames ``[B, T, C, H, W]`` are
    moved to time-first.

    Raises:
        ValueError: an input of another rank, with other than ``in_chans`` channels, or with
            a time dimension other than ``T``; the message names the shape.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, cfg: SpikingConfig):
        super().__init__()
        self.T = cfg.T
        self.in_chans = in_chans
        self.conv_bn = ConvBN(in_chans, out_chans, kernel_size, stride, cfg)
        self.lif = cfg.lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        if x.ndim == 4:
            y = self.conv_bn(x)
            y = y.unsqueeze(0).expand(self.T, *y.shape)
        else:
            y = self.conv_bn(rearrange(x, "b t ... -> t b ..."))
        return self.lif(y)


class Classifier(nn.Module):
    """Per-timestep classifier: flatten (or global average pool), dropout, Linear.

    Its output is the network's output ``[T, B, num_classes]``: neither leaked nor spiked
    (DESIGN §2.1).
    """

    def __init__(self, in_features: int, num_classes: int, drop_rate: float, global_pool: bool):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return merged(lambda z: self.fc(self.drop(self.pool(z).flatten(1))), x)


class SpikingClassifierMixin:
    """timm's classifier interface for a network with ``head``, ``num_features``,
    ``drop_rate`` and ``global_pool`` (average the feature map before the Linear)."""

    global_pool: bool

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = Classifier(self.num_features, num_classes, self.drop_rate, self.global_pool)


def avg_pool(x: torch.Tensor, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> torch.Tensor:
    """Average pooling of ``[T, B, C, H, W]`` spikes on the merged tensor."""
    return merged(lambda z: nn.functional.avg_pool2d(z, kernel_size, stride, padding), x)


def check_no_pretrained(variant: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"{variant}: sparsegrad ships no pretrained weights; use pretrained=False and "
            "load a checkpoint with checkpoint_path= or load_state_dict"
        )
