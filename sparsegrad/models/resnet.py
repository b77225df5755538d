"""Spiking ResNets: ResNet18 (ImageNet- or CIFAR-style stem) and TET's ResNet19.

Blocks are conv-BN-LIF-conv-BN, the shortcut added to the membrane input, then LIF
(spike after the addition). :class:`SpikingResNet` also hosts the SEW blocks of
:mod:`sparsegrad.models.sew_resnet`.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._blocks import (
    Classifier,
    ConvBN,
    SpikingClassifierMixin,
    SpikingConfig,
    SpikingEncoder,
    avg_pool,
    check_no_pretrained,
)

__all__ = ["SpikingResNet", "BasicBlock"]

STEMS = ("imagenet", "cifar")


class BasicBlock(nn.Module):
    """Spiking basic block: ``LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))``.

    The shortcut is the identity, or conv1x1-BN when the shape changes.

    Reference: Zheng et al., "Going deeper with directly-trained larger spiking neural
    networks", AAAI 2021 (tdBN ResNets); TET's ResNet19.
    """

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, cfg: SpikingConfig, **_):
        super().__init__()
        self.conv1 = ConvBN(in_chans, planes, 3, stride, cfg)
        self.lif1 = cfg.lif()
        self.conv2 = ConvBN(planes, planes, 3, 1, cfg)
        self.downsample = ConvBN(in_chans, planes, 1, stride, cfg) if stride != 1 or in_chans != planes else None
        self.lif2 = cfg.lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.lif2(self.conv2(self.lif1(self.conv1(x))) + identity)


class SpikingResNet(SpikingClassifierMixin, nn.Module):
    """A spiking ResNet over time-first tensors, for any residual block.

    Args:
        block: block class with ``expansion`` and ``(in_chans, planes, stride, cfg, **block_kwargs)``.
        layers: blocks per stage.
        widths: planes per stage (the first stage has stride 1, the others 2).
        num_classes: classifier outputs. Default 1000.
        in_chans: input channels. Default 3.
        stem: ``"imagenet"`` (conv7x7/2-BN-LIF, then 3x3/2 average pool) or ``"cifar"``
            (conv3x3/1-BN-LIF). Default ``"imagenet"``.
        stem_width: stem channels. Default: ``widths[0]``.
        T: timesteps. Default 4.
        tau: LIF membrane time constant, in timesteps. Default 2.0 (paper).
        v_threshold: LIF threshold. Default 0.5 (paper).
        surrogate: surrogate name. Default ``"pl"``.
        alpha: surrogate sharpness; None for the surrogate's default.
        detach_reset: stop the gradient through the reset. Default False.
        bn_mode: ``"merged"`` or ``"per_step"``.
        drop_rate: dropout before the (last) classifier layer.
        **block_kwargs: passed to each block (e.g. SEW's ``cnf``).

    Shape:
        - Input: ``[B, C, H, W]`` static images or ``[B, T, C, H, W]`` event frames.
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: an unknown stem, or an input whose rank, channels or ``T`` do not match.
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, ...],
        widths: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        stem_width: int | None = None,
        T: int = 4,
        tau: float = 2.0,
        v_threshold: float = 0.5,
        surrogate: str = "pl",
        alpha: float | None = None,
        detach_reset: bool = False,
        bn_mode: str = "merged",
        drop_rate: float = 0.0,
        **block_kwargs: object,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        cfg = SpikingConfig(T, tau, v_threshold, surrogate, alpha, detach_reset, bn_mode)
        self.T, self.num_classes, self.in_chans, self.drop_rate = T, num_classes, in_chans, drop_rate
        self.grad_checkpointing = False
        stem_width = stem_width or widths[0]
        if stem == "imagenet":
            self.stem = SpikingEncoder(in_chans, stem_width, 7, 2, cfg)
            self.stem_pool = True
        else:
            self.stem = SpikingEncoder(in_chans, stem_width, 3, 1, cfg)
            self.stem_pool = False
        stages, width = [], stem_width
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(width, planes, stride, cfg, **block_kwargs))
                width = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = width
        self.global_pool = True
        self.head = Classifier(self.num_features, num_classes, drop_rate, global_pool=True)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in backward instead of storing its activations.

        Non-reentrant checkpointing; the neurons are stateless, so recomputation gives
        the same spikes.
        """
        self.grad_checkpointing = enable

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.stem_pool:
            x = avg_pool(x, 3, 2, 1)
        for stage in self.stages:
            for blk in stage:
                if self.grad_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(blk, x, use_reentrant=False)
                else:
                    x = blk(x)
        return x



def _cfg(**kwargs) -> dict:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "stem.conv_bn.conv",
        "classifier": "head.fc",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "spiking_resnet18": _cfg(),
        "spiking_resnet19": _cfg(
            num_classes=10,
            input_size=(3, 32, 32),
            pool_size=(8, 8),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
        ),
    }
)


def create_resnet(variant: str, block: type[nn.Module], pretrained: bool, **kwargs) -> SpikingResNet:
    """Build a registered spiking ResNet variant through timm (no pretrained weights)."""
    check_no_pretrained(variant, pretrained)
    return build_model_with_cfg(SpikingResNet, variant, pretrained=False, block=block, **kwargs)


@register_model
def spiking_resnet18(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """Spiking ResNet18, [2, 2, 2, 2] basic blocks at 64-512; ImageNet stem (``stem="cifar"`` for 32x32)."""
    kwargs = {"layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512), **kwargs}
    return create_resnet("spiking_resnet18", BasicBlock, pretrained, **kwargs)


@register_model
def spiking_resnet19(pretrained: bool = False, **kwargs) -> SpikingResNet:
    """TET's ResNet19: CIFAR stem of 128, [3, 3, 2] basic blocks at 128/256/512, global pool, FC."""
    kwargs = {"layers": (3, 3, 2), "widths": (128, 256, 512), "stem": "cifar", **kwargs}
    return create_resnet("spiking_resnet19", BasicBlock, pretrained, **kwargs)
