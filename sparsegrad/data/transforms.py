"""Augmentations no library provides as such: Cutout, and the event-frame train augmentation.

Everything else (crops, flips, AutoAugment, normalisation) is torchvision's own transform.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms import v2

from sparsegrad._validate import check_int, check_positive_int

__all__ = ["Cutout", "event_augmentation"]


class Cutout(nn.Module):
    """Sets ``holes`` square patches of ``size`` x ``size`` pixels of an image tensor to ``value``.

    As in DeVries & Taylor's reference code, each hole's centre is drawn uniformly over the whole
    image and the square is clipped at the border, so a hole near the edge covers less than
    ``size**2`` pixels; a hole whose centre lies at least ``size // 2`` pixels inside covers
    exactly ``size`` x ``size``. All channels get the same hole. Applied after ``Normalize`` (as
    in the reference code), the hole holds the dataset mean.

    torchvision's ``RandomErasing`` cannot express this: its area is a fraction of the image
    (a 16x16 hole needs ``scale=256/(H*W)``, a different value per image size) and it only places
    holes entirely inside the image, never clipped at the border.

    Draws use torch's global generator (or ``generator``), so DataLoader workers, which torch
    seeds differently, cut different holes.

    Args:
        size: side of the square in pixels (16 for CIFAR, docs/design.md §5).
        holes: number of squares per image.
        value: value written into the holes.
        generator: optional ``torch.Generator`` for reproducible holes.

    Shape:
        ``[..., H, W] -> [..., H, W]`` (a new tensor; the input is not modified).

    Reference:
        DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with
        Cutout", arXiv:1708.04552.
    """

    def __init__(
        self,
        size: int = 16,
        holes: int = 1,
        value: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        size = check_positive_int("Cutout: size", size, what="(pixels)")
        holes = check_int("Cutout: holes", holes, 0)
        self.size, self.holes, self.value, self.generator = size, holes, value, generator

    @staticmethod
    def get_params(
        height: int, width: int, size: int, generator: torch.Generator | None = None
    ) -> tuple[int, int, int, int]:
        """Draws one hole ``(top, left, bottom, right)``: rows top:bottom, columns left:right."""
        cy = int(torch.randint(height, (1,), generator=generator))
        cx = int(torch.randint(width, (1,), generator=generator))
        top, left = max(cy - size // 2, 0), max(cx - size // 2, 0)
        bottom, right = min(cy - size // 2 + size, height), min(cx - size // 2 + size, width)
        return top, left, bottom, right

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.dim() < 2:
            raise TypeError("Cutout expects an image tensor [..., H, W] (put it after ToTensor)")
        out = img.clone()
        height, width = img.shape[-2:]
        for _ in range(self.holes):
            top, left, bottom, right = self.get_params(height, width, self.size, self.generator)
            out[..., top:bottom, left:right] = self.value
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}, holes={self.holes}, value={self.value}"


def event_augmentation(
    size: int | tuple[int, int] = 48, padding: int = 4, degrees: float = 15.0
) -> v2.Compose:
    """Train augmentation of event frames: random crop with padding, horizontal flip, rotation.

    The torchvision v2 transforms treat a ``[T, 2, H, W]`` tensor as one image with leading batch
    dimensions, so each sample draws one crop, flip and angle, applied identically to all of its
    ``T`` frames (a per-frame draw would tear the motion apart).

    Args:
        size: output side, or ``(height, width)``: the frames' own size (48 for CIFAR10-DVS
            and N-Caltech101), so the crop only shifts.
        padding: zero padding before the random crop.
        degrees: rotation angle range ``[-degrees, degrees]``.

    Returns:
        A ``torchvision.transforms.v2.Compose``.

    Shape:
        ``[T, 2, H, W] -> [T, 2, H, W]`` with ``(H, W)`` the ``size``.

    Reference:
        docs/design.md §5 (RandomCrop(48, padding=4), RandomHorizontalFlip, RandomRotation(15)).
    """
    return v2.Compose(
        [
            v2.RandomCrop(size, padding=padding),
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(degrees),
        ]
    )
