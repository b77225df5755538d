"""Plain spiking conv nets of 2, 6 and 10 LIF layers at one width, for the depth study.

No shortcut: every path from the loss to the first conv crosses every LIF layer, which is
what MSG's paths-kept argument ``(1 - p)^(L - l)`` is about (issue 19, docs/results.md).
"""

from __future__ import annotations

from timm.models import generate_default_cfgs, register_model

from ._base import build_spiking, default_cfg
from .vgg import SpikingVGG

__all__ = ["plain_layout"]

_WIDTH = 32
_POOLS = 3


def plain_layout(depth: int, width: int = _WIDTH, pools: int = _POOLS) -> tuple:
    """``depth`` convs of ``width`` channels with ``min(depth, pools)`` 2x2 average pools, the
    i-th pool after conv ``ceil(i * depth / n_pools)``, in
    [SpikingVGG][sparsegrad.models.SpikingVGG]'s layout form: 2 -> ``(32, "A", 32, "A")``,
    6 -> ``(32, 32, "A") * 3``, 10 -> four convs, a pool, three, a pool, three, a pool.

    Raises:
        ValueError: ``depth``, ``width`` or ``pools`` not an int >= 1.
    """
    for name, value in (("depth", depth), ("width", width), ("pools", pools)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"plain_layout: {name} must be an int >= 1, got {value!r}")
    n_pools = min(depth, pools)
    after = {-(-i * depth // n_pools) for i in range(1, n_pools + 1)}  # ceil division
    layout: list = []
    for conv in range(1, depth + 1):
        layout.append(width)
        if conv in after:
            layout.append("A")
    return tuple(layout)


def _create_plain(variant: str, depth: int, pretrained: bool, **kwargs) -> SpikingVGG:
    kwargs = {"layout": plain_layout(depth), "T": 4, **kwargs}
    # A stage ends at each pool and every layout ends with one: one feature map per pool.
    return build_spiking(SpikingVGG, variant, pretrained, kwargs["layout"].count("A"), **kwargs)


default_cfgs = generate_default_cfgs(
    {
        f"spiking_plain{depth}": default_cfg(
            num_classes=10, input_size=(3, 32, 32), fixed_input_size=True,
            mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        )
        for depth in (2, 6, 10)
    }
)


@register_model
def spiking_plain2(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """2 conv-BN-LIF layers of 32 channels, 2 average pools, a Linear readout; T=4."""
    return _create_plain("spiking_plain2", 2, pretrained, **kwargs)


@register_model
def spiking_plain6(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """6 conv-BN-LIF layers of 32 channels, 3 average pools, a Linear readout; T=4."""
    return _create_plain("spiking_plain6", 6, pretrained, **kwargs)


@register_model
def spiking_plain10(pretrained: bool = False, **kwargs) -> SpikingVGG:
    """10 conv-BN-LIF layers of 32 channels, 3 average pools, a Linear readout; T=4."""
    return _create_plain("spiking_plain10", 10, pretrained, **kwargs)
