"""Per-channel normalisation statistics, one owner for the models' ``pretrained_cfg`` and the
data transforms' ``Normalize``.

ImageNet's come from timm (``timm.data.IMAGENET_DEFAULT_MEAN`` / ``_STD``); timm has none
for CIFAR, so these are the training sets' own statistics for pixel values in [0, 1]. The
CIFAR std is the true per-pixel standard deviation, not the (0.2023, 0.1994, 0.2010) often
copied around.
"""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "IMAGENET_MEAN", "IMAGENET_STD"]

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
