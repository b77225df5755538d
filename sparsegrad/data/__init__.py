"""Datasets: static images through torchvision, event recordings through tonic, from local files.

Nothing is downloaded unless ``download=True`` is passed (then torchvision's or tonic's own
download code runs). Event datasets yield ``(frames float32 [T, 2, H, W], label)``, batched by a
DataLoader to ``[B, T, 2, H, W]``; static datasets yield ``(image [3, H, W], label)``.

Modules: :mod:`~sparsegrad.data.frames` (events -> frames, frame cache, base class),
:mod:`~sparsegrad.data.transforms` (Cutout, event augmentation), :mod:`~sparsegrad.data.splits`
(per-class 9:1 split, class-balanced sampler), :mod:`~sparsegrad.data.static`,
:mod:`~sparsegrad.data.cifar10dvs`, :mod:`~sparsegrad.data.ncaltech101`,
:mod:`~sparsegrad.data.dvsgesture`, :mod:`~sparsegrad.data.nmnist`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch.utils.data import Dataset

from sparsegrad.data.cifar10dvs import CIFAR10DVS
from sparsegrad.data.dvsgesture import DVSGesture
from sparsegrad.data.frames import EventFrameDataset, events_to_frames, resize_frames
from sparsegrad.data.ncaltech101 import NCaltech101
from sparsegrad.data.nmnist import NMNIST, default_root, read_events, read_labels
from sparsegrad.data.splits import class_balanced_sampler, split_per_class
from sparsegrad.data.static import STATIC_DATASETS, build_static, static_transform
from sparsegrad.data.transforms import Cutout, event_augmentation

__all__ = [
    "CIFAR10DVS",
    "DATASETS",
    "NMNIST",
    "Cutout",
    "DVSGesture",
    "EventFrameDataset",
    "NCaltech101",
    "build_dataset",
    "build_static",
    "class_balanced_sampler",
    "default_root",
    "event_augmentation",
    "events_to_frames",
    "read_events",
    "read_labels",
    "resize_frames",
    "split_per_class",
    "static_transform",
]

# name -> (class, default frame side, train augmentation on by default (DESIGN §5))
_EVENT_DATASETS: dict[str, tuple[type[EventFrameDataset], int | None, bool]] = {
    "cifar10dvs": (CIFAR10DVS, 48, True),
    "ncaltech101": (NCaltech101, 48, True),
    "dvsgesture": (DVSGesture, None, False),
    "nmnist": (NMNIST, None, False),
}
DATASETS = (*STATIC_DATASETS, *_EVENT_DATASETS)
"""Names :func:`build_dataset` accepts."""

_DEFAULT = object()


def build_dataset(
    name: str,
    root: str | os.PathLike | None,
    train: bool = True,
    T: int = 10,
    *,
    size: int | tuple[int, int] | None = _DEFAULT,  # type: ignore[assignment]
    augment: bool | None = None,
    transform: Callable | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Dataset:
    """Builds a dataset by name with the paper's preprocessing (DESIGN §5).

    Args:
        name: one of ``DATASETS``: ``cifar10``, ``cifar100``, ``imagenet`` (static) or
            ``cifar10dvs``, ``ncaltech101``, ``dvsgesture``, ``nmnist`` (events).
        root: the dataset's folder; for ``nmnist``, ``None`` is the embedded subset.
        train: training or test split.
        T: frames per recording (event datasets). Static datasets ignore it: the model repeats
            each image over its timesteps.
        size: event frame side after bilinear resizing; by default 48 for ``cifar10dvs`` and
            ``ncaltech101`` and the sensor's own for ``dvsgesture`` and ``nmnist``.
        augment: event datasets: add :func:`~sparsegrad.data.transforms.event_augmentation`
            (crop with padding 4, flip, rotation 15°). ``None`` means: for the training split
            of ``cifar10dvs`` and ``ncaltech101``. Static datasets always use
            :func:`~sparsegrad.data.static.static_transform` (augmented when ``train``).
        transform: replaces the default transform altogether.
        cache_dir: event datasets: parent folder of the on-disk frame cache.
        download: let torchvision / tonic download a missing dataset into ``root``.

    Returns:
        A ``torch.utils.data.Dataset`` of ``(x, label)`` pairs; ``x`` is ``[3, H, W]``
        (static) or float32 ``[T, 2, H, W]`` (events).

    Shape:
        A DataLoader batches static samples to ``[B, 3, H, W]`` and event samples to
        ``[B, T, 2, H, W]``.

    Raises:
        ValueError: unknown ``name``.
        FileNotFoundError: the dataset is not under ``root`` (the message gives the layout).

    Reference:
        DESIGN §5 (datasets, frame size, augmentation, splits).

    Example:
        >>> ds = build_dataset("nmnist", None, train=False, T=6)
        >>> frames, label = ds[0]
        >>> frames.shape, label
        (torch.Size([6, 2, 34, 34]), 7)
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if root is None and key != "nmnist":
        raise ValueError(f"{key} needs a root folder (only nmnist has an embedded default)")
    if key in STATIC_DATASETS:
        return build_static(key, root, train, download, transform=transform)
    cls, default_size, augment_default = _EVENT_DATASETS[key]
    size = default_size if size is _DEFAULT else size
    if transform is None and (augment if augment is not None else (train and augment_default)):
        width, height = cls.sensor_size[:2]
        transform = event_augmentation((height, width) if size is None else size)
    return cls(
        root,
        train=train,
        T=T,
        size=size,
        transform=transform,
        cache_dir=cache_dir,
        download=download,
    )
