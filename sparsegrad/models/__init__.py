"""Spiking networks of the paper, registered in timm's model registry on import.

``timm.create_model(name, num_classes=..., in_chans=..., T=..., neuron_layer=..., tau=...,
v_threshold=..., v_reset=..., surrogate=..., alpha=..., detach_reset=..., bn_mode=...,
drop_rate=...)`` for ``name`` in [MODEL_NAMES][sparsegrad.models.MODEL_NAMES]. Every model
maps ``[B, C, H, W]`` images or ``[B, T, C, H, W]`` event frames to per-timestep logits
``[T, B, num_classes]``, and follows timm's model interface: ``features_only=True``
(time-first ``[T, B, C, H, W]`` feature maps), ``forward_features``,
``forward_head(pre_logits=True)``, ``reset_classifier``, ``set_grad_checkpointing`` and a
``pretrained_cfg`` with ``input_size``, ``first_conv``, ``classifier`` and, where the
classifier depends on the input size, ``fixed_input_size=True`` (pass ``img_size=``).
The neuron is injectable: ``neuron_layer=`` takes a class or a ``functools.partial``
(default [LIF][sparsegrad.neuron.LIF]), see [SpikingConfig][sparsegrad.layers.SpikingConfig].
See docs/design.md §4.

Example:
    ```python
    import timm
    import sparsegrad  # registers the models

    model = timm.create_model("spiking_resnet19", num_classes=10, T=4, surrogate="atan")
    logits = model(torch.rand(8, 3, 32, 32))            # [T=4, B=8, 10]
    backbone = timm.create_model("spiking_resnet19", features_only=True, T=4)
    maps = backbone(torch.rand(8, 3, 32, 32))           # 4 maps [T, B, C, H, W]
    backbone.feature_info.channels()                    # [128, 128, 256, 512]
    ```
"""

import timm

from .convnet import SpikingConvNet, spiking_convnet_m, spiking_convnet_s
from .plain import spiking_plain2, spiking_plain6, spiking_plain10
from .resnet import SpikingResNet, spiking_resnet18, spiking_resnet19
from .sew_resnet import sew_resnet18, sew_resnet34, sew_resnet50
from .vgg import SpikingVGG, spiking_cifarnet, vggsnn

MODEL_NAMES: tuple[str, ...] = tuple(
    name for name in timm.list_models() if timm.models.model_entrypoint(name).__module__.startswith(f"{__name__}.")
)
"""The names sparsegrad registers in timm's registry, in timm's order."""

__all__ = ["SpikingConvNet", "SpikingResNet", "SpikingVGG", "MODEL_NAMES", *MODEL_NAMES]
