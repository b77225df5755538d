"""Spiking networks of the paper, registered in timm's model registry on import.

``timm.create_model(name, num_classes=..., in_chans=..., T=..., surrogate="pl", alpha=2.0,
tau=2.0, v_threshold=0.5, bn_mode="merged", drop_rate=0.0)`` for ``name`` in
``spiking_cifarnet``, ``vggsnn``, ``spiking_resnet18``, ``spiking_resnet19``,
``sew_resnet18``, ``sew_resnet34``, ``sew_resnet50``. Every model maps ``[B, C, H, W]``
images or ``[B, T, C, H, W]`` event frames to per-timestep logits ``[T, B, num_classes]``.
"""

from .resnet import SpikingResNet
from .sew_resnet import sew_resnet18, sew_resnet34, sew_resnet50
from .resnet import spiking_resnet18, spiking_resnet19
from .vgg import SpikingVGG, spiking_cifarnet, vggsnn

MODEL_NAMES = (
    "spiking_cifarnet",
    "vggsnn",
    "spiking_resnet18",
    "spiking_resnet19",
    "sew_resnet18",
    "sew_resnet34",
    "sew_resnet50",
)

__all__ = ["SpikingResNet", "SpikingVGG", "MODEL_NAMES", *MODEL_NAMES]
