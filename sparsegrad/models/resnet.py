"""Spiking ResNets: ResNet18 (ImageNet- or CIFAR-style stem) and TET's ResNet19.

Blocks are conv-BN-neuron-conv-BN, the shortcut added to the membrane input, then a
neuron (spike after the addition). [SpikingResNet][sparsegrad.models.resnet.SpikingResNet]
also hosts the SEW blocks of [sew_resnet][sparsegrad.models.sew_resnet].
"""

from __future__ import annotations

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from .._normalize import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from ..layers import ConvBN, SpikingConfig, SpikingEncoder, TimeAvgPool2d
from ._base import SpikingNet, build_spiking, default_cfg

__all__ = ["SpikingResNet", "BasicBlock"]

STEMS = ("imagenet", "cifar")


class BasicBlock(nn.Module):
    """Spiking basic block: ``SN(BN(conv(SN(BN(conv(x))))) + shortcut(x))``, SN a neuron.

    The shortcut is the identity, or conv1x1-BN when the shape changes.

    Args:
        in_chans: input channels.
        planes: output channels.
        stride: stride of the first conv and the shortcut.
        cfg: neuron and BN settings.

    Shape:
        - Input: spikes ``[T, B, in_chans, H, W]``.
        - Output: spikes ``[T, B, planes, H / stride, W / stride]``.

    Reference: Zheng et al., "Going deeper with directly-trained larger spiking neural
    networks", AAAI 2021 (tdBN ResNets); TET's ResNet19.
    """

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: SpikingConfig):
        super().__init__()
        self.conv1 = ConvBN(in_chans, planes, 3, stride, cfg.bn_mode)
        self.neuron1 = cfg.neuron()
        self.conv2 = ConvBN(planes, planes, 3, 1, cfg.bn_mode)
        reshape = stride != 1 or in_chans != planes
        self.downsample = ConvBN(in_chans, planes, 1, stride, cfg.bn_mode) if reshape else None
        self.neuron2 = cfg.neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.neuron2(self.conv2(self.neuron1(self.conv1(x))) + identity)


class SpikingResNet(SpikingNet):
    """A spiking ResNet over time-first tensors, for any residual block.

    Feature maps (``features_only=True``): the stem's spikes, then each stage's output,
    all ``[T, B, C, H, W]``; reductions 2, 4, 8, 16, 32 with the ImageNet stem, 1, 1, 2,
    4, ... with the CIFAR stem.

    Args:
        block: block class with ``expansion`` and ``(in_chans, planes, stride, cfg, **block_kwargs)``.
        layers: blocks per stage.
        widths: planes per stage (the first stage has stride 1, the others 2).
        num_classes: classifier outputs; 0 for none. Default 1000.
        in_chans: input channels. Default 3.
        stem: ``"imagenet"`` (conv7x7/2-BN-neuron, then a 3x3/2 average pool) or
            ``"cifar"`` (conv3x3/1-BN-neuron). Default ``"imagenet"``.
        stem_width: stem channels. Default: ``widths[0]``.
        drop_rate: dropout before the classifier.
        **kwargs: the fields of [SpikingConfig][sparsegrad.layers.SpikingConfig] (``T``,
            ``neuron_layer``, ``tau``, ``v_threshold``, ``v_reset``, ``surrogate``,
            ``alpha``, ``detach_reset``, ``bn_mode``); the rest go to every block (e.g.
            SEW's ``cnf``).

    Shape:
        - Input: ``[B, C, H, W]`` static images or ``[B, T, C, H, W]`` event frames.
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: an unknown stem, bad neuron settings, or an input whose rank,
            channels or ``T`` do not match.

    Reference: docs/design.md §4.
    """

    stem_is_feature = True

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, ...],
        widths: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        stem_width: int | None = None,
        drop_rate: float = 0.0,
        **kwargs: object,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        cfg = SpikingConfig(**{k: kwargs.pop(k) for k in SpikingConfig.field_names() if k in kwargs})
        self.T, self.in_chans = cfg.T, in_chans
        width = stem_width or widths[0]
        kernel, stride, pool = (7, 2, TimeAvgPool2d(3, 2, 1)) if stem == "imagenet" else (3, 1, nn.Identity())
        self.stem = SpikingEncoder(in_chans, width, kernel, stride, cfg)
        self.stem_pool = pool
        self.feature_info = [{"num_chs": width, "reduction": stride, "module": "stem"}]
        width = self._build_stages(block, layers, widths, width, stride * stride, cfg, kwargs)
        self._init_interface(width, num_classes, drop_rate, global_pool="avg")

    def _build_stages(self, block, layers, widths, width, reduction, cfg, block_kwargs) -> int:
        """``self.stages`` and their ``feature_info`` after the stem (``width`` channels,
        ``reduction`` after the stem's pool); returns the last stage's width."""
        stages = []
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            stride = 2 if i > 0 else 1
            blocks = []
            for j in range(depth):
                blocks.append(block(width, planes, stride if j == 0 else 1, cfg, **block_kwargs))
                width = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
            reduction *= stride
            self.feature_info.append({"num_chs": width, "reduction": reduction, "module": f"stages.{i}"})
        self.stages = nn.Sequential(*stages)
        return width


def _cfg(**kwargs) -> dict:
    imagenet = {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    }
    return default_cfg(**{**imagenet, **kwargs})


default_cfgs = generate_default_cfgs(
    {
        "spiking_resnet18": _cfg(),
        "spiking_resnet19": _cfg(
            num_classes=10,
            input_size=(3, 32, 32),
            pool_size=(8, 8),
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
        ),
    }
)


def _create_resnet(variant: str, block: type[nn.Module], pretrained: bool = False, **kwargs) -> SpikingResNet:
    """Build a registered spiking ResNet variant through timm (no pretrained weights)."""
    return build_spiking(SpikingResNet, variant, pretrained, len(kwargs["layers"]) + 1, block=block, **kwargs)


@register_model
def spiking_resnet18(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """Spiking ResNet18, [2, 2, 2, 2] basic blocks at 64-512; ImageNet stem (``stem="cifar"`` for 32x32)."""
    kwargs = {"layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512), **kwargs}
    return _create_resnet("spiking_resnet18", BasicBlock, pretrained, **kwargs)


@register_model
def spiking_resnet19(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """TET's ResNet19: CIFAR stem of 128, [3, 3, 2] basic blocks at 128/256/512, global pool, FC."""
    kwargs = {"layers": (3, 3, 2), "widths": (128, 256, 512), "stem": "cifar", **kwargs}
    return _create_resnet("spiking_resnet19", BasicBlock, pretrained, **kwargs)
