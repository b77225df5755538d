"""The dataset registry: name -> how to open it, classes, channels, default size, kind.

[load_splits][sparsegrad.data.registry.load_splits] is what the training engine calls: it opens
a dataset's splits without transforms, optionally pools them and cuts a per-class k-fold split
([kfold_split][sparsegrad.data.splits.kfold_split]), then adds the paper's transforms, so the
training part is augmented and the test part is not, whatever split a sample came from.
[build_dataset][sparsegrad.data.registry.build_dataset] opens one split with its transform, as
a plain dataset object.

Reference: docs/design.md §5 (datasets, frame size, augmentation, splits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch.utils.data import ConcatDataset, Dataset, Subset

from sparsegrad.data.cifar10dvs import CIFAR10DVS
from sparsegrad.data.dvsgesture import DVSGesture
from sparsegrad.data.events import EventFrameDataset
from sparsegrad.data.imagefolder import folder_format, folder_transform, open_imagefolder
from sparsegrad.data.ncaltech101 import NCaltech101
from sparsegrad.data.nmnist import NMNIST
from sparsegrad.data.splits import kfold_split
from sparsegrad.data.static import build_static, static_transform
from sparsegrad.data.transforms import event_augmentation

__all__ = ["DATASETS", "DatasetSpec", "Transformed", "build_dataset", "load_splits", "targets_of"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the engine needs to know of a dataset before opening it.

    Attributes:
        kind: ``"static"`` (images ``[C, H, W]``, repeated over T by the model), ``"event"``
            (frames ``[T, 2, H, W]``) or ``"folder"`` (any image folder, read from the data).
        num_classes: classes; ``None``: read from the data.
        in_chans: input channels; ``None``: read from the data.
        size: default input side (static: the image or crop side; event: the frame side,
            ``None`` for the sensor's own); ``None`` for folders (the images' own).
        augment: event data: training augmentation on by default.
        event_class: the event dataset class.
        needs_root: ``--data-root`` is required (only nmnist has embedded data).
    """

    kind: Literal["static", "event", "folder"]
    num_classes: int | None
    in_chans: int | None
    size: int | None = None
    augment: bool = False
    event_class: type[EventFrameDataset] | None = None
    needs_root: bool = True


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("static", 10, 3, 32),
    "cifar100": DatasetSpec("static", 100, 3, 32),
    "imagenet": DatasetSpec("static", 1000, 3, 224),
    "cifar10dvs": DatasetSpec("event", 10, 2, 48, augment=True, event_class=CIFAR10DVS),
    "ncaltech101": DatasetSpec("event", 101, 2, 48, augment=True, event_class=NCaltech101),
    "dvsgesture": DatasetSpec("event", 11, 2, event_class=DVSGesture),
    "nmnist": DatasetSpec("event", 10, 2, event_class=NMNIST, needs_root=False),
    "imagefolder": DatasetSpec("folder", None, None),
}
"""Every dataset by name (the engine's ``--dataset``)."""


class Transformed(Dataset):
    """``(transform(x), y)`` for every ``(x, y)`` of ``dataset``; ``targets`` passes through."""

    def __init__(self, dataset: Dataset, transform: Callable | None):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return (self.transform(x) if self.transform is not None else x), y

    @property
    def targets(self) -> list[int]:
        return targets_of(self.dataset)


def targets_of(dataset: Dataset) -> list[int]:
    """The label of every sample, without loading any: through ``Subset``, ``ConcatDataset``
    and [Transformed][sparsegrad.data.registry.Transformed] to a ``targets`` attribute.

    Raises:
        TypeError: the dataset has no ``targets`` (give ``--num-classes`` for such datasets).
    """
    if isinstance(dataset, Subset):
        base = targets_of(dataset.dataset)
        return [base[i] for i in dataset.indices]
    if isinstance(dataset, ConcatDataset):
        return [t for part in dataset.datasets for t in targets_of(part)]
    if isinstance(dataset, Transformed):
        return targets_of(dataset.dataset)
    if not hasattr(dataset, "targets"):
        raise TypeError(f"{type(dataset).__name__} has no 'targets' attribute listing each sample's class")
    return [int(t) for t in dataset.targets]


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset (--dataset) {name!r}; choose one of {tuple(DATASETS)}")
    return DATASETS[name]


def _identity(x):
    return x


def _open(name: str, spec: DatasetSpec, root, T: int, size, cache_dir, download) -> tuple[Dataset, Dataset | None]:
    if spec.kind == "folder":
        return open_imagefolder(root)
    if spec.kind == "static":
        return tuple(build_static(name, root, train, download, transform=_identity) for train in (True, False))
    frames = size if size is not None else spec.size
    make = partial(spec.event_class, root, T=T, size=frames, cache_dir=cache_dir, download=download)
    return make(train=True), make(train=False)


def _transforms(name: str, spec: DatasetSpec, raw: Dataset, size, augment, autoaugment) -> tuple[Callable, Callable]:
    if spec.kind == "static":
        cutout = 16 if autoaugment else None
        return (static_transform(name, True, cutout=cutout, autoaugment=autoaugment, size=size),
                static_transform(name, False, size=size))
    if spec.kind == "folder":
        channels, native = folder_format(raw)
        side = (size, size) if size is not None else native
        return folder_transform(channels, side, True, bool(augment)), folder_transform(channels, side, False)
    augment = spec.augment if augment is None else augment
    return (event_augmentation(tuple(raw.frame_shape[2:])) if augment else None), None


def load_splits(
    name: str,
    root: str | os.PathLike | None,
    *,
    T: int = 10,
    size: int | None = None,
    augment: bool | None = None,
    autoaugment: bool = True,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    folds: int | None = None,
    fold: int = 0,
) -> tuple[Dataset, Dataset]:
    """The training and test sets of a registered dataset, with the paper's transforms.

    With ``folds = k`` the dataset's training and test samples are pooled (training first)
    and cut by [kfold_split][sparsegrad.data.splits.kfold_split]: chunk ``fold`` of every
    class tests, the rest trains. A single-split image folder without ``folds`` is cut as
    ``folds=10, fold=9`` (the last tenth of each class tests).

    Args:
        name: a key of [DATASETS][sparsegrad.data.registry.DATASETS].
        root: the dataset's folder (``None``: nmnist's embedded subset).
        T: frames per recording (event data).
        size: input side: ImageNet crop, event frame side (default: the registry's), or the
            side image-folder images are resized to (default: the first image's size).
        augment: event / folder training augmentation (default: the registry's; off for folders).
        autoaugment: static data: AutoAugment and Cutout on or off.
        cache_dir: event data: frame cache folder.
        download: let torchvision / tonic download a missing dataset.
        folds: number of per-class chunks for a k-fold split (``None``: the official split).
        fold: the chunk that tests.

    Returns:
        ``(train, test)`` datasets of ``(x, label)``; both have ``targets``.

    Raises:
        ValueError: unknown ``name``, a missing root, bad ``folds`` / ``fold``, or a class
            with fewer samples than ``folds``.
        FileNotFoundError: the data is not under ``root`` (the message gives the layout).

    Example:
        ```python
        train, test = load_splits("nmnist", None, T=4, folds=5, fold=0)
        len(train), len(test)  # (885, 215): 1,100 pooled recordings, a fifth of each class tests
        ```
    """
    spec = _spec(name)
    if root is None and spec.needs_root:
        raise ValueError(f"--data-root is required for {name} (only nmnist has embedded data)")
    train, test = _open(name, spec, root, T, size, cache_dir, download)
    train_tf, test_tf = _transforms(name, spec, train, size, augment, autoaugment)
    if test is None and folds is None:
        folds, fold = 10, 9
    if folds is not None:
        pool = ConcatDataset([train, test]) if test is not None else train
        train_idx, test_idx = kfold_split(targets_of(pool), folds, fold)
        train, test = Subset(pool, train_idx), Subset(pool, test_idx)
    return Transformed(train, train_tf), Transformed(test, test_tf)


def build_dataset(
    name: str,
    root: str | os.PathLike | None,
    train: bool = True,
    T: int = 10,
    *,
    size: int | Sequence[int] | None = None,
    augment: bool | None = None,
    transform: Callable | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Dataset:
    """One split of a static or event dataset by name, with the paper's preprocessing.

    Args:
        name: a static or event key of [DATASETS][sparsegrad.data.registry.DATASETS].
        root: the dataset's folder; for ``nmnist``, ``None`` is the embedded subset.
        train: training or test split.
        T: frames per recording (event datasets; static ones ignore it).
        size: event frame side (default: the registry's, e.g. 48 for ``cifar10dvs``).
        augment: event datasets: add [event_augmentation][sparsegrad.data.transforms.event_augmentation]
            (default: for the training split of ``cifar10dvs`` and ``ncaltech101``). Static
            datasets always use [static_transform][sparsegrad.data.static.static_transform].
        transform: replaces the default transform altogether.
        cache_dir: event datasets: parent folder of the on-disk frame cache.
        download: let torchvision / tonic download a missing dataset into ``root``.

    Returns:
        A dataset of ``(x, label)``: ``x`` is ``[3, H, W]`` (static) or float32 ``[T, 2, H, W]``.

    Raises:
        ValueError: unknown ``name`` or a missing root.
        FileNotFoundError: the dataset is not under ``root`` (the message gives the layout).

    Example:
        ```python
        frames, label = build_dataset("nmnist", None, train=False, T=6)[0]
        frames.shape, label  # (torch.Size([6, 2, 34, 34]), 7)
        ```
    """
    key = name.lower()
    spec = _spec(key)
    if spec.kind == "folder":
        raise ValueError("imagefolder has no fixed splits; use load_splits")
    if root is None and spec.needs_root:
        raise ValueError(f"{key} needs a root folder (only nmnist has an embedded default)")
    if spec.kind == "static":
        return build_static(key, root, train, download, transform=transform)
    size = spec.size if size is None else size
    if transform is None and (augment if augment is not None else (train and spec.augment)):
        width, height = spec.event_class.sensor_size[:2]
        transform = event_augmentation((height, width) if size is None else size)
    return spec.event_class(root, train=train, T=T, size=size, transform=transform,
                            cache_dir=cache_dir, download=download)
