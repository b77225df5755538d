"""A small plain spiking CNN: the N-MNIST demo's network, registered in timm."""

from __future__ import annotations

from timm.models import generate_default_cfgs, register_model

from .._validate import check_positive_int
from ._base import build_spiking, default_cfg
from .vgg import SpikingVGG

__all__ = ["SpikingConvNet"]


class SpikingConvNet(SpikingVGG):
    """conv3x3-BN-neuron-AvgPool2 per width in ``channels``, then one Linear at every timestep.

    The readout's output ``I_L[t]`` is neither leaked nor spiked (docs/design.md §2.1).
    Feature maps (``features_only=True``): the pooled spikes of each conv,
    ``[T, B, C, H, W]``, reductions 2, 4, 8, ...

    Args:
        channels: output channels of the convolutions, one conv (and pool) each.
            Default ``(32, 64)``.
        num_classes: classifier outputs; 0 for none. Default 10.
        in_chans: input channels. Default 2 (event polarities).
        img_size: input height and width (int or ``(H, W)``); sets the readout's size.
            Default 34 (N-MNIST).
        drop_rate: dropout before the readout.
        **kwargs: the fields of [SpikingConfig][sparsegrad.layers.SpikingConfig]: ``T``,
            ``neuron_layer``, ``tau``, ``v_threshold``, ``v_reset``, ``surrogate``,
            ``alpha``, ``detach_reset``, ``bn_mode``.

    Shape:
        - Input: event frames ``[B, T, C, H, W]`` or static images ``[B, C, H, W]``
          (presented at every timestep).
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: ``channels`` not a non-empty sequence of positive ints, an ``img_size``
            too small for the pools, or an input that does not match.

    Example:
        ```python
        model = timm.create_model("spiking_convnet_s", T=10)      # N-MNIST: 2 x 34 x 34
        model(torch.rand(8, 10, 2, 34, 34)).shape                  # [10, 8, 10]
        ```
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64),
        num_classes: int = 10,
        in_chans: int = 2,
        img_size: int | tuple[int, int] = 34,
        drop_rate: float = 0.0,
        **kwargs: object,
    ):
        try:
            if isinstance(channels, (str, bytes)) or not channels:
                raise ValueError
            channels = tuple(check_positive_int("channels", c) for c in channels)
        except (TypeError, ValueError):
            raise ValueError(f"channels must be a non-empty sequence of ints >= 1, got {channels!r}") from None
        layout = tuple(item for width in channels for item in (width, "A"))
        super().__init__(layout, num_classes, in_chans, img_size, drop_rate, **kwargs)


def _create_convnet(variant: str, pretrained: bool = False, **kwargs) -> SpikingConvNet:
    return build_spiking(SpikingConvNet, variant, pretrained, len(kwargs["channels"]), **kwargs)


default_cfgs = generate_default_cfgs(
    {
        name: default_cfg(num_classes=10, input_size=(2, 34, 34), fixed_input_size=True, mean=(0.0, 0.0), std=(1.0, 1.0))
        for name in ("spiking_convnet_s", "spiking_convnet_m")
    }
)


@register_model
def spiking_convnet_s(pretrained: bool = False, **kwargs) -> SpikingConvNet:
    """Two conv-BN-neuron-pool stages of 32 and 64 channels, T=10: the N-MNIST demo's network."""
    return _create_convnet("spiking_convnet_s", pretrained, **{"channels": (32, 64), "T": 10, **kwargs})


@register_model
def spiking_convnet_m(pretrained: bool = False, **kwargs) -> SpikingConvNet:
    """Three conv-BN-neuron-pool stages of 32, 64 and 128 channels, T=10."""
    return _create_convnet("spiking_convnet_m", pretrained, **{"channels": (32, 64, 128), "T": 10, **kwargs})
