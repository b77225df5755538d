"""Any folder of images, one sub-folder per class: bring your own data.

Two layouts are read (``<class>`` folders hold images in any format PIL opens):

    <root>/train/<class>/*  and  <root>/val/<class>/*    # (or test/ instead of val/)
    <root>/<class>/*                                      # one split: cut per class by the engine

Classes are the sorted folder names of the training split (the single split). The number of
channels (1 for grayscale, 3 otherwise) and the image size are read from the first training
image; every image is converted to that mode and resized to that size (or to ``size``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision import transforms as T

__all__ = ["ClassFolder", "folder_format", "folder_transform", "open_imagefolder"]

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_LAYOUT = ("<root>/train/<class>/* with <root>/val/<class>/* (or <root>/test/<class>/*), "
           "or <root>/<class>/* for a single split")


class ClassFolder(datasets.ImageFolder):
    """A torchvision ``ImageFolder`` whose class list is given, so two splits share indices.

    Args:
        root: a folder of ``<class>/`` folders.
        classes: the class names, in label order; a class missing from ``root`` is allowed.
        transform: applied to each PIL image (``None``: the image itself).
    """

    def __init__(self, root: str | os.PathLike, classes: list[str], transform=None):
        self._given = list(classes)
        super().__init__(str(root), transform=transform, allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._given, {name: i for i, name in enumerate(self._given)}


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def open_imagefolder(root: str | os.PathLike) -> tuple[Dataset, Dataset | None]:
    """The splits of an image folder, without transforms (samples are PIL images).

    Returns:
        ``(train, test)``; ``test`` is ``None`` for the single-split layout.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no class folder with images; the
            message names ``--data-root`` and the layouts.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} does not exist; an image folder is {_LAYOUT}")
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    split = (root / "train").is_dir() and test_dir is not None
    train_dir = root / "train" if split else root
    classes = _class_dirs(train_dir)
    if not classes:
        raise FileNotFoundError(f"--data-root {root} holds no class folders; an image folder is {_LAYOUT}")
    try:
        train = ClassFolder(train_dir, classes)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--data-root {root}: {err}; an image folder is {_LAYOUT}") from None
    if not len(train):
        raise FileNotFoundError(f"--data-root {root}: no images in {train_dir}/<class>/; expected {_LAYOUT}")
    return train, (ClassFolder(test_dir, classes) if split else None)


def folder_format(dataset: ClassFolder) -> tuple[int, tuple[int, int]]:
    """``(channels, (height, width))`` of the first image: 1 channel for grayscale modes, else 3."""
    with Image.open(dataset.samples[0][0]) as image:
        return (1 if image.mode in _GRAY_MODES else 3), (image.height, image.width)


def _rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def folder_transform(channels: int, size: tuple[int, int], train: bool, augment: bool = False) -> T.Compose:
    """Mode conversion, resize to ``size``, optional crop/flip, ``ToTensor``, ``Normalize(0.5, 0.5)``.

    Args:
        channels: 1 (grayscale) or 3 (RGB).
        size: ``(height, width)`` of the output.
        train: the training transform (augmented if ``augment``).
        augment: random crop with padding of an eighth of the side, and horizontal flip.

    Returns:
        A ``torchvision.transforms.Compose`` from a PIL image to ``[channels, H, W]`` in [-1, 1].
    """
    steps = [T.Grayscale(1) if channels == 1 else T.Lambda(_rgb), T.Resize(size)]
    if train and augment:
        steps += [T.RandomCrop(size, padding=max(1, min(size) // 8)), T.RandomHorizontalFlip()]
    return T.Compose([*steps, T.ToTensor(), T.Normalize([0.5] * channels, [0.5] * channels)])
