"""SEW-ResNet (spike-element-wise residual networks), Fang et al. 2021.

Each block ends in a spike; the shortcut joins *after* it through a connect function
``g(A, S)`` of the block's spikes ``A`` and the shortcut's spikes ``S``: ``ADD`` (A + S,
default), ``AND`` (A * S) or ``IAND`` ((1 - A) * S). The downsampling shortcut is
conv1x1-BN-neuron, and no neuron follows the connection. The neuron is the model's
``neuron_layer`` ([LIF][sparsegrad.neuron.LIF] by default).
"""

from __future__ import annotations

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from ..layers import ConvBN, ConvBNNeuron, SpikingConfig
from .resnet import SpikingResNet, _cfg, _create_resnet

__all__ = ["SEWBasicBlock", "SEWBottleneck", "CONNECT_FUNCTIONS"]

CONNECT_FUNCTIONS = ("ADD", "AND", "IAND")


def connect(out: torch.Tensor, identity: torch.Tensor, cnf: str) -> torch.Tensor:
    """SEW connect function ``g(A=out, S=identity)``; ``ADD`` is in place on ``out``."""
    if cnf == "ADD":
        out += identity
        return out
    if cnf == "AND":
        return out * identity
    return identity * (1 - out)


def _check_cnf(cnf: str) -> str:
    if cnf not in CONNECT_FUNCTIONS:
        raise ValueError(f"cnf must be one of {CONNECT_FUNCTIONS}, got {cnf!r}")
    return cnf


class SEWBasicBlock(nn.Module):
    """conv3x3-BN-neuron-conv3x3-BN-neuron, then ``g(out, shortcut)``.

    Args:
        in_chans: input channels.
        planes: output channels.
        stride: stride of the first conv and the shortcut.
        cfg: neuron and BN settings.
        cnf: connect function, ``"ADD"`` (default), ``"AND"`` or ``"IAND"``.

    Shape:
        - Input: spikes ``[T, B, in_chans, H, W]``.
        - Output: ``[T, B, planes, H / stride, W / stride]`` (spike counts up to 2 with ADD).

    Reference: Fang et al., "Deep residual learning in spiking neural networks", NeurIPS 2021.
    """

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: SpikingConfig, cnf: str = "ADD"):
        super().__init__()
        self.cnf = _check_cnf(cnf)
        self.conv1 = ConvBN(in_chans, planes, 3, stride, cfg.bn_mode)
        self.neuron1 = cfg.neuron()
        self.conv2 = ConvBN(planes, planes, 3, 1, cfg.bn_mode)
        self.neuron2 = cfg.neuron()
        reshape = stride != 1 or in_chans != planes
        self.downsample = ConvBNNeuron(in_chans, planes, 1, stride, cfg) if reshape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return connect(self.neuron2(self.conv2(self.neuron1(self.conv1(x)))), identity, self.cnf)


class SEWBottleneck(nn.Module):
    """conv1x1-BN-neuron-conv3x3-BN-neuron-conv1x1-BN-neuron (x4 channels), then ``g(out, shortcut)``.

    Args:
        in_chans: input channels.
        planes: width of the 3x3 conv; the output has ``4 * planes`` channels.
        stride: stride of the 3x3 conv and the shortcut.
        cfg: neuron and BN settings.
        cnf: connect function, ``"ADD"`` (default), ``"AND"`` or ``"IAND"``.

    Shape:
        - Input: spikes ``[T, B, in_chans, H, W]``.
        - Output: ``[T, B, 4 * planes, H / stride, W / stride]``.

    Reference: Fang et al., "Deep residual learning in spiking neural networks", NeurIPS 2021.
    """

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: SpikingConfig, cnf: str = "ADD"):
        super().__init__()
        self.cnf = _check_cnf(cnf)
        out_chans = planes * self.expansion
        self.conv1 = ConvBN(in_chans, planes, 1, 1, cfg.bn_mode)
        self.neuron1 = cfg.neuron()
        self.conv2 = ConvBN(planes, planes, 3, stride, cfg.bn_mode)
        self.neuron2 = cfg.neuron()
        self.conv3 = ConvBN(planes, out_chans, 1, 1, cfg.bn_mode)
        self.neuron3 = cfg.neuron()
        reshape = stride != 1 or in_chans != out_chans
        self.downsample = ConvBNNeuron(in_chans, out_chans, 1, stride, cfg) if reshape else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.neuron3(self.conv3(self.neuron2(self.conv2(self.neuron1(self.conv1(x))))))
        return connect(out, identity, self.cnf)


default_cfgs = generate_default_cfgs(
    {"sew_resnet18": _cfg(), "sew_resnet34": _cfg(), "sew_resnet50": _cfg(pool_size=(7, 7))}
)

_WIDTHS = (64, 128, 256, 512)


@register_model
def sew_resnet18(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """SEW-ResNet18: [2, 2, 2, 2] SEW basic blocks; ``cnf`` = "ADD" | "AND" | "IAND"."""
    kwargs = {"layers": (2, 2, 2, 2), "widths": _WIDTHS, **kwargs}
    return _create_resnet("sew_resnet18", SEWBasicBlock, pretrained, **kwargs)


@register_model
def sew_resnet34(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """SEW-ResNet34: [3, 4, 6, 3] SEW basic blocks (about 21.8 M parameters at 1000 classes)."""
    kwargs = {"layers": (3, 4, 6, 3), "widths": _WIDTHS, **kwargs}
    return _create_resnet("sew_resnet34", SEWBasicBlock, pretrained, **kwargs)


@register_model
def sew_resnet50(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """SEW-ResNet50: [3, 4, 6, 3] SEW bottlenecks (x4 expansion)."""
    kwargs = {"layers": (3, 4, 6, 3), "widths": _WIDTHS, **kwargs}
    return _create_resnet("sew_resnet50", SEWBottleneck, pretrained, **kwargs)
