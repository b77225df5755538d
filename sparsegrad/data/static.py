"""Static image datasets (CIFAR-10, CIFAR-100, ImageNet) through torchvision.

Samples are images ``[3, H, W]``; a loader batches them to ``[B, 3, H, W]`` and the model repeats
each image over its ``T`` timesteps (direct encoding, docs/design.md §3). Augmentation follows the paper
(docs/design.md §5) with torchvision's own transforms plus [Cutout][sparsegrad.data.transforms.Cutout].

Expected layouts:

    cifar10:  <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100: <root>/cifar-100-python/{train, test, meta}
    imagenet: <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (ImageFolder layout; the
              validation images sorted into one folder per class)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision import transforms as T

from sparsegrad._normalize import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD
from sparsegrad.data.transforms import Cutout

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STATIC_DATASETS",
    "build_static",
    "static_transform",
]

STATIC_DATASETS = ("cifar10", "cifar100", "imagenet")

_CIFAR = {
    "cifar10": (datasets.CIFAR10, "cifar-10-batches-py", CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (datasets.CIFAR100, "cifar-100-python", CIFAR100_MEAN, CIFAR100_STD),
}
_LAYOUT = {
    "cifar10": "<root>/cifar-10-batches-py/ with data_batch_1 ... data_batch_5, test_batch and "
    "batches.meta (the python version of CIFAR-10, as torchvision downloads it)",
    "cifar100": "<root>/cifar-100-python/ with train, test and meta (the python version of "
    "CIFAR-100, as torchvision downloads it)",
    "imagenet": "<root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG, one folder per "
    "class (torchvision ImageFolder layout; sort the validation images into class folders)",
}


def _check_name(name: str) -> str:
    key = name.lower()
    if key not in STATIC_DATASETS:
        raise ValueError(f"unknown static dataset {name!r}; choose one of {STATIC_DATASETS}")
    return key


def static_transform(
    name: str,
    train: bool,
    *,
    cutout: int | None = 16,
    autoaugment: bool = True,
    size: int | None = None,
) -> T.Compose:
    """The paper's preprocessing for a static dataset.

    - CIFAR-10/100, train: ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
      ``AutoAugment(CIFAR10 policy)``, ``ToTensor``, ``Normalize``, ``Cutout(16)``.
    - ImageNet, train: ``RandomResizedCrop(224)``, ``RandomHorizontalFlip``, ``ToTensor``,
      ``Normalize``, ``Cutout(16)``.
    - Evaluation: CIFAR ``ToTensor`` + ``Normalize``; ImageNet ``Resize(256)``,
      ``CenterCrop(224)``, ``ToTensor``, ``Normalize``.

    Cutout comes after ``Normalize`` as in DeVries & Taylor's code, so a hole holds the mean.

    Args:
        name: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        train: training (augmented) or evaluation transform.
        cutout: hole side in pixels; ``None`` or 0 leaves Cutout out.
        autoaugment: keep CIFAR's AutoAugment step (``False``: Table 1's 'w/o' rows).
        size: ImageNet crop side (default 224; the evaluation resize keeps the 256:224 ratio).
            CIFAR images are 32 x 32 and take no other size.

    Returns:
        A ``torchvision.transforms.Compose`` from a PIL image to a normalised float tensor.

    Shape:
        PIL image -> ``[3, 32, 32]`` (CIFAR) or ``[3, 224, 224]`` (ImageNet).

    Reference:
        docs/design.md §5; Cubuk et al. 2019 (AutoAugment); DeVries & Taylor 2017 (Cutout).
    """
    key = _check_name(name)
    if key == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        crop = size or 224
        geometry = (
            [T.RandomResizedCrop(crop), T.RandomHorizontalFlip()]
            if train
            else [T.Resize(round(crop * 256 / 224)), T.CenterCrop(crop)]
        )
    else:
        if size not in (None, 32):
            raise ValueError(f"CIFAR images are 32x32; size (--img-size) {size} is not supported")
        mean, std = _CIFAR[key][2:]
        geometry = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
        if train and autoaugment:
            geometry.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    steps = [*geometry, T.ToTensor(), T.Normalize(mean, std)]
    if train and cutout:
        steps.append(Cutout(size=cutout, holes=1))
    return T.Compose(steps)


def build_static(
    name: str,
    root: str | os.PathLike,
    train: bool,
    download: bool = False,
    *,
    transform: Callable | None = None,
    cutout: int | None = 16,
) -> Dataset:
    """A static image dataset with the paper's preprocessing.

    Args:
        name: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        root: folder holding the dataset (layouts in the module docstring).
        train: training split (augmented) or test/validation split.
        download: let torchvision download CIFAR into ``root`` if missing. ImageNet cannot be
            downloaded (its licence requires a manual download from image-net.org).
        transform: replaces [static_transform][sparsegrad.data.static.static_transform] if given.
        cutout: Cutout hole side for the default training transform.

    Returns:
        A torchvision dataset of ``(image, label)``: image float32 ``[3, H, W]``, label an int.

    Shape:
        ``dataset[i][0]``: ``[3, 32, 32]`` (CIFAR) or ``[3, 224, 224]`` (ImageNet); a DataLoader
        batches to ``[B, 3, H, W]``.

    Raises:
        ValueError: unknown ``name``, or ``download=True`` (``--download``) for ImageNet.
        FileNotFoundError: the dataset is not under ``root`` and ``download`` is False; the
            message gives the expected layout.
        RuntimeError: torchvision found the CIFAR files but they fail its MD5 check.

    Reference:
        Krizhevsky 2009 (CIFAR); Deng et al. 2009 (ImageNet); docs/design.md §5.
    """
    key = _check_name(name)
    root = Path(root).expanduser()
    transform = transform if transform is not None else static_transform(key, train, cutout=cutout)
    if key == "imagenet":
        if download:
            raise ValueError(
                "ImageNet cannot be downloaded automatically (drop --download); get ILSVRC2012 from "
                f"https://image-net.org and arrange it as {_LAYOUT['imagenet']}"
            )
        folder = root / ("train" if train else "val")
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise FileNotFoundError(
                f"ImageNet folder {folder} is missing or has no class folders; expected "
                f"{_LAYOUT['imagenet']}"
            )
        return datasets.ImageFolder(str(folder), transform=transform)

    cls, subdir = _CIFAR[key][:2]
    if not download and not (root / subdir).is_dir():
        raise FileNotFoundError(
            f"{key.upper()} not found: {root / subdir} does not exist; expected {_LAYOUT[key]}. "
            "Pass download=True (--download) to let torchvision download it."
        )
    return cls(str(root), train=train, transform=transform, download=download)
