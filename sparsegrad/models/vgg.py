"""Plain spiking conv stacks: TET's VGGSNN and the paper's CIFARNet.

Every conv is 3x3 conv-BN-LIF; ``"A"`` is a 2x2 average pool (the paper replaces max
pooling by average pooling). The classifier is one Linear layer on the flattened
feature map, whose size follows from ``img_size``.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from timm.models._registry import generate_default_cfgs
from torch import nn

from ._blocks import (
    Classifier,
    ConvBNLIF,
    SpikingClassifierMixin,
    SpikingConfig,
    SpikingEncoder,
    avg_pool,
    check_no_pretrained,
)

__all__ = ["SpikingVGG"]

LAYOUTS = {
    # TET (Deng et al. 2022), VGGSNN for 48x48 DVS frames: FC(512*3*3).
    "vggsnn": (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"),
    # The paper's CIFARNet (§5): 256C3-256C3-AP2-256C3-256C3-AP2-512C3-512C3-512C3-AP2-
    # 1024C3-1024C3-AP2-FC. (The released code has two 512C3 layers; the text is the spec.)
    "spiking_cifarnet": (256, 256, "A", 256, 256, "A", 512, 512, 512, "A", 1024, 1024, "A"),
}


class SpikingVGG(SpikingClassifierMixin, nn.Module):
    """A VGG-style spiking network: conv-BN-LIF layers and average pools, then a Linear.

    Args:
        layout: conv widths (ints) and ``"A"`` (2x2 average pool), in order; starts with a conv.
        num_classes: classifier outputs. Default 10.
        in_chans: input channels (2 for DVS polarities, 3 for RGB).
        img_size: input height and width (int or ``(H, W)``); sets the classifier's size.
        T: timesteps. Static images are presented at every step (direct encoding).
        tau: LIF membrane time constant, in timesteps. Default 2.0 (paper).
        v_threshold: LIF threshold. Default 0.5 (paper).
        surrogate: surrogate name. Default ``"pl"``.
        alpha: surrogate sharpness; None for the surrogate's default.
        detach_reset: stop the gradient through the reset. Default False.
        bn_mode: ``"merged"`` or ``"per_step"`` (see :class:`~sparsegrad.models._blocks.TimeBatchNorm2d`).
        drop_rate: dropout before the classifier.

    Shape:
        - Input: ``[B, C, H, W]`` static images or ``[B, T, C, H, W]`` event frames.
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: ``img_size`` too small to survive the pools, or an input whose rank,
            channels, ``T`` or size do not match (the shape is named).

    Reference: Deng et al., "Temporal efficient training of spiking neural network via
    gradient re-weighting", ICLR 2022 (VGGSNN); the paper §5 (CIFARNet); DESIGN §4.
    """

    def __init__(
        self,
        layout: tuple,
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 32,
        T: int = 4,
        tau: float = 2.0,
        v_threshold: float = 0.5,
        surrogate: str = "pl",
        alpha: float | None = None,
        detach_reset: bool = False,
        bn_mode: str = "merged",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        cfg = SpikingConfig(T, tau, v_threshold, surrogate, alpha, detach_reset, bn_mode)
        self.T, self.num_classes, self.in_chans = T, num_classes, in_chans
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        n_pools = layout.count("A")
        if min(self.img_size) < 2**n_pools:
            raise ValueError(
                f"img_size={img_size} does not survive {n_pools} 2x2 pools; use at least {2**n_pools}"
            )
        self.stem = SpikingEncoder(in_chans, layout[0], 3, 1, cfg)
        layers, width, size = [], layout[0], list(self.img_size)
        for item in layout[1:]:
            if item == "A":
                layers.append(_AvgPool())
                size = [s // 2 for s in size]
            else:
                layers.append(ConvBNLIF(width, item, 3, 1, cfg))
                width = item
        self.features = nn.Sequential(*layers)
        self.num_features = width * size[0] * size[1]
        self.drop_rate, self.global_pool = drop_rate, False
        self.head = Classifier(self.num_features, num_classes, drop_rate, global_pool=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.ndim in (4, 5) and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"input of shape {list(x.shape)} has spatial size {tuple(x.shape[-2:])}; this "
                f"model was built for img_size={self.img_size} (pass img_size= to create_model)"
            )
        return self.features(self.stem(x))



class _AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool(x, 2)


def _cfg(**kwargs) -> dict:
    return {
        "url": "",
        "num_classes": 10,
        "pool_size": None,
        "first_conv": "stem.conv_bn.conv",
        "classifier": "head.fc",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "vggsnn": _cfg(input_size=(2, 48, 48), mean=(0.0, 0.0), std=(1.0, 1.0)),
        "spiking_cifarnet": _cfg(
            input_size=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)
        ),
    }
)


def _create(variant: str, pretrained: bool = False, **kwargs) -> SpikingVGG:
    check_no_pretrained(variant, pretrained)
    return build_model_with_cfg(SpikingVGG, variant, pretrained=False, layout=LAYOUTS[variant], **kwargs)


@register_model
def vggsnn(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """VGGSNN (TET) for 48x48 event frames: 2 input channels, T=10, FC(512*3*3)."""
    kwargs = {"in_chans": 2, "img_size": 48, "T": 10, **kwargs}
    return _create("vggsnn", pretrained, **kwargs)


@register_model
def spiking_cifarnet(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """The paper's CIFARNet for 32x32 images, T=4."""
    kwargs = {"in_chans": 3, "img_size": 32, "T": 4, **kwargs}
    return _create("spiking_cifarnet", pretrained, **kwargs)
