"""Plain spiking conv stacks: TET's VGGSNN and the paper's CIFARNet.

Every conv is 3x3 conv-BN-neuron; ``"A"`` is a 2x2 average pool (the paper replaces max
pooling by average pooling). The classifier is one Linear layer on the flattened
feature map, whose size follows from ``img_size``.
"""

from __future__ import annotations

import torch
from timm.models import generate_default_cfgs, register_model
from torch import nn

from .._normalize import CIFAR10_MEAN, CIFAR10_STD
from ..layers import ConvBNNeuron, SpikingConfig, SpikingEncoder, TimeAvgPool2d
from ._base import SpikingNet, build_spiking, default_cfg

__all__ = ["SpikingVGG", "LAYOUTS"]

LAYOUTS = {
    # TET (Deng et al. 2022), VGGSNN for 48x48 DVS frames: FC(512*3*3).
    "vggsnn": (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"),
    # The paper's CIFARNet (§5): 256C3-256C3-AP2-256C3-256C3-AP2-512C3-512C3-512C3-AP2-
    # 1024C3-1024C3-AP2-FC. (The released code has two 512C3 layers; the text is the spec.)
    "spiking_cifarnet": (256, 256, "A", 256, 256, "A", 512, 512, 512, "A", 1024, 1024, "A"),
}


def _split_stages(layout: tuple) -> list[tuple]:
    """``layout[1:]`` (after the stem's conv) cut after each pool: one tuple per stage."""
    stages, current = [], []
    for item in layout[1:]:
        current.append(item)
        if item == "A":
            stages.append(tuple(current))
            current = []
    return stages + ([tuple(current)] if current else [])


class SpikingVGG(SpikingNet):
    """A VGG-style spiking network: conv-BN-neuron layers and average pools, then a Linear.

    A stage ends at each pool. Feature maps (``features_only=True``): each stage's output,
    ``[T, B, C, H, W]`` spikes (pooled), reductions 2, 4, 8, ...; the last one is what the
    classifier flattens.

    Args:
        layout: conv widths (ints) and ``"A"`` (2x2 average pool), in order; starts with a conv.
        num_classes: classifier outputs; 0 for none. Default 10.
        in_chans: input channels (2 for DVS polarities, 3 for RGB).
        img_size: input height and width (int or ``(H, W)``); sets the classifier's size.
        drop_rate: dropout before the classifier.
        **kwargs: the fields of [SpikingConfig][sparsegrad.layers.SpikingConfig]: ``T``,
            ``neuron_layer``, ``tau``, ``v_threshold``, ``v_reset``, ``surrogate``,
            ``alpha``, ``detach_reset``, ``bn_mode``.

    Shape:
        - Input: ``[B, C, H, W]`` static images (presented at every timestep) or
          ``[B, T, C, H, W]`` event frames.
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: ``img_size`` too small to survive the pools, bad neuron settings, or an
            input whose rank, channels, ``T`` or size do not match (the shape is named).

    Reference: Deng et al., "Temporal efficient training of spiking neural network via
    gradient re-weighting", ICLR 2022 (VGGSNN); the paper §5 (CIFARNet); docs/design.md §4.
    """

    def __init__(
        self,
        layout: tuple,
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 32,
        drop_rate: float = 0.0,
        **kwargs: object,
    ):
        super().__init__()
        cfg = SpikingConfig(**kwargs)
        self.T, self.in_chans = cfg.T, in_chans
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        n_pools = layout.count("A")
        if min(self.img_size) < 2**n_pools:
            raise ValueError(
                f"img_size={img_size} does not survive {n_pools} 2x2 pools; use at least {2**n_pools}"
            )
        self.stem = SpikingEncoder(in_chans, layout[0], 3, 1, cfg)
        self.stem_pool = nn.Identity()
        stages, self.feature_info = [], []
        width, reduction = layout[0], 1
        for i, items in enumerate(_split_stages(layout)):
            layers = []
            for item in items:
                if item == "A":
                    layers.append(TimeAvgPool2d(2))
                    reduction *= 2
                else:
                    layers.append(ConvBNNeuron(width, item, 3, 1, cfg))
                    width = item
            stages.append(nn.Sequential(*layers))
            self.feature_info.append({"num_chs": width, "reduction": reduction, "module": f"stages.{i}"})
        self.stages = nn.Sequential(*stages)
        side_h, side_w = (s // reduction for s in self.img_size)
        self._init_interface(width * side_h * side_w, num_classes, drop_rate, global_pool="")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_size(x)
        return super().forward_features(x)

    def forward_intermediates(self, x: torch.Tensor, *args, **kwargs):
        self._check_size(x)
        return super().forward_intermediates(x, *args, **kwargs)

    def _check_size(self, x) -> None:
        if isinstance(x, torch.Tensor) and x.ndim in (4, 5) and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"input of shape {list(x.shape)} has spatial size {tuple(x.shape[-2:])}; this "
                f"model was built for img_size={self.img_size} (pass img_size= to create_model)"
            )


def _create_vgg(variant: str, pretrained: bool = False, **kwargs) -> SpikingVGG:
    kwargs = {"layout": LAYOUTS[variant], **kwargs}
    return build_spiking(SpikingVGG, variant, pretrained, len(_split_stages(kwargs["layout"])), **kwargs)


default_cfgs = generate_default_cfgs(
    {
        "vggsnn": default_cfg(
            num_classes=10, input_size=(2, 48, 48), fixed_input_size=True, mean=(0.0, 0.0), std=(1.0, 1.0)
        ),
        "spiking_cifarnet": default_cfg(
            num_classes=10,
            input_size=(3, 32, 32),
            fixed_input_size=True,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
        ),
    }
)


@register_model
def vggsnn(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """VGGSNN (TET) for 48x48 event frames: 2 input channels, T=10, FC(512*3*3)."""
    return _create_vgg("vggsnn", pretrained, **{"T": 10, **kwargs})


@register_model
def spiking_cifarnet(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """The paper's CIFARNet for 32x32 images, T=4."""
    return _create_vgg("spiking_cifarnet", pretrained, **{"T": 4, **kwargs})
