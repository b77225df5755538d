"""The base of the event datasets: find the recordings under a root, frame and cache them.

A dataset module subclasses [EventFrameDataset][sparsegrad.data.events.EventFrameDataset]
(or [PerClassSplitDataset][sparsegrad.data.events.PerClassSplitDataset] when the dataset has
no official split), sets its name, sensor, classes and folder layout, and implements three
methods: ``holds_data`` (does a folder hold the dataset), ``list_recordings`` (the files and
labels of the split) and ``read_events`` (one recording). The constructor, the search of the
root and tonic's download folder, the framing and the caches live here once.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import tonic
import torch
from torch.utils.data import Dataset

from sparsegrad._validate import check_real, check_size, check_timesteps
from sparsegrad.data._layout import check_train_flag, locate_root
from sparsegrad.data.frame_cache import FrameCache, frame_cache_path
from sparsegrad.data.frames import FRAMING, events_to_frames, resize_frames
from sparsegrad.data.splits import split_part

__all__ = ["EventFrameDataset", "PerClassSplitDataset"]


class _Framer:
    """The uncached frame source: index -> (frames float32 tensor, label)."""

    def __init__(self, owner: EventFrameDataset):
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.owner.load_frames(index)), self.owner.targets[index]


class EventFrameDataset(Dataset, metaclass=ABCMeta):
    """Base class: recordings under a root folder as ``(frames float32 [T, 2, H, W], label)``.

    Frames are made on first access. With ``cache_dir`` they are stored in
    [frame_cache_path][sparsegrad.data.frame_cache.frame_cache_path] by a
    [FrameCache][sparsegrad.data.frame_cache.FrameCache] (one tonic HDF5 file per sample,
    safe for several processes), so later epochs and runs read them back; without it, a
    dataset with ``keep_in_memory`` keeps them in a ``tonic.MemoryCachedDataset``. The
    ``transform`` runs after the cache, on every access, so random augmentation stays random.

    Args:
        root: the folder holding the dataset (``None``: the dataset's embedded copy, N-MNIST
            only); the dataset may also lie in one of ``root_folders`` below it, as tonic's
            download leaves it.
        train: the training split (True) or the test split (False).
        T: number of equal-time frames per recording.
        size: resize the frames bilinearly to ``(height, width)`` (one int: a square); ``None``
            keeps the sensor's resolution.
        transform: callable applied to each float32 ``[T, 2, H, W]`` tensor after the cache.
        cache_dir: parent folder of the frame caches; ``None`` disables the disk cache.
        download: let tonic download the dataset into ``root`` if it is not there.

    Raises:
        FileNotFoundError: the dataset is not under ``root``; the message gives the layout.
        ValueError: a bad ``train``, ``T`` or ``size`` (the message names it).
    """

    dataset_name: ClassVar[str] = "events"
    title: ClassVar[str] = "event dataset"  # the dataset's name in messages
    sensor_size: ClassVar[tuple[int, int, int]] = (0, 0, 2)
    classes: ClassVar[Sequence] = ()
    layout: ClassVar[str] = ""  # the expected folder layout, for messages
    root_folders: ClassVar[tuple[str, ...]] = ("",)  # where below root the data may lie
    keep_in_memory: ClassVar[bool] = False  # without cache_dir, keep frames in RAM (small sets)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        T: int = 10,
        *,
        size: int | tuple[int, int] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_dir: str | os.PathLike | None = None,
        download: bool = False,
    ):
        self.train = check_train_flag(train)
        self.split = "train" if train else "test"
        self.T = check_timesteps("T", T)
        self.size = None if size is None else check_size("size", size)
        self.transform = transform
        self.root = self.find_root(self.default_root() if root is None else Path(root).expanduser(), download)
        files, targets = self.list_recordings(self.root)
        self.files = [Path(f) for f in files]
        self.targets = [int(t) for t in targets]
        self.cache_path: Path | None = None
        self._disk: FrameCache | None = None
        self._memory: tonic.MemoryCachedDataset | None = None
        if cache_dir is not None:
            self.cache_path = frame_cache_path(cache_dir, self.cache_params())
            self._disk = FrameCache(self.cache_path, self.cache_params())
        elif self.keep_in_memory:
            self._memory = tonic.MemoryCachedDataset(_Framer(self))

    # ------------------------------------------------------------------ what a subclass says
    @classmethod
    def default_root(cls) -> Path:
        """The embedded copy's folder, for ``root=None``.

        Raises:
            ValueError: the dataset has none (only N-MNIST does).
        """
        raise ValueError(f"{cls.title} has no embedded copy: pass root, a folder holding\n{cls.layout}")

    @abstractmethod
    def holds_data(self, folder: Path) -> bool:
        """Whether ``folder`` (an existing directory) holds this split of the dataset."""

    @abstractmethod
    def list_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        """The recordings of this split (``self.train``) under ``folder`` and their labels.

        Raises:
            FileNotFoundError: a file the layout lists is missing (named).
            ValueError: a label cannot be read (the file named).
        """

    @abstractmethod
    def read_events(self, path: Path) -> np.ndarray:
        """Reads one recording as a structured array with fields x, y, t (µs), p.

        Raises:
            ValueError: the file is truncated or corrupt; the message names it.
        """

    def download(self, root: Path) -> None:
        """Fetches the dataset into ``root`` with tonic's download code."""
        raise NotImplementedError(f"{self.title} cannot be downloaded; put the files in {root}")

    # ------------------------------------------------------------------ the shared skeleton
    def find_root(self, root: Path, download: bool) -> Path:
        """The first of ``root/<root_folders>`` holding the data; downloads first if asked
        and none does.

        Raises:
            FileNotFoundError: none holds the data; the message names the folders tried and
                the layout.
        """

        def held(folder: Path) -> bool:
            return folder.is_dir() and self.holds_data(folder)

        if download and not any(held(root / sub) for sub in self.root_folders):
            self.download(root)
        return locate_root(root, self.root_folders, held, self.title, self.layout)

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """``(T, polarities, height, width)`` of every sample."""
        width, height, n_pol = self.sensor_size
        h, w = self.size if self.size is not None else (height, width)
        return (self.T, n_pol, h, w)

    def cache_params(self) -> dict:
        """Every parameter the cached frames depend on; any change gives another cache folder."""
        samples = hashlib.sha256()
        for file, target in zip(self.files, self.targets, strict=True):
            rel = file.relative_to(self.root) if file.is_relative_to(self.root) else file
            stat = file.stat()  # a file replaced under the same name gets new frames
            samples.update(f"{rel.as_posix()}\t{target}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return {
            "dataset": self.dataset_name,
            "split": self.split,
            "T": self.T,
            "size": list(self.frame_shape[2:]),
            "resized": self.size is not None,
            "sensor_size": list(self.sensor_size),
            "framing": FRAMING,
            "dtype": "float32",
            "root": str(self.root.resolve()),
            "samples": samples.hexdigest(),
            "num_samples": len(self.files),
        }

    def load_frames(self, index: int) -> np.ndarray:
        """Frames of recording ``index``, uncached and untransformed: float32 ``[T, 2, H, W]``."""
        path = self.files[index]
        counts = events_to_frames(self.read_events(path), self.T, self.sensor_size, source=path)
        frames = torch.from_numpy(counts).float()
        if self.size is not None:
            frames = resize_frames(frames, self.size)
        return frames.numpy()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self.files)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} samples")
        index = int(index) % n  # one cache entry per sample, whatever the sign of the index
        if self._disk is not None:
            data = self._disk.get(index, self.targets[index], lambda: self.load_frames(index))
            frames = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        elif self._memory is not None:
            frames = self._memory[index][0].clone()  # the transform must not touch the cache
        else:
            frames = torch.from_numpy(self.load_frames(index))
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, self.targets[index]

    def __repr__(self) -> str:
        size = "x".join(map(str, self.frame_shape[2:]))
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, T={self.T}, "
            f"size={size}, samples={len(self)})"
        )


class PerClassSplitDataset(EventFrameDataset):
    """An event dataset without an official split: the first ``train_fraction`` of each class
    (in sorted file order) trains, the rest tests
    ([split_per_class][sparsegrad.data.splits.split_per_class]).

    A subclass implements ``list_all_recordings`` (every recording and label) instead of
    ``list_recordings``. Frames are resized to 48x48 by default (TET's CIFAR10-DVS practice).

    Args:
        root: see [EventFrameDataset][sparsegrad.data.events.EventFrameDataset].
        train: the first ``train_fraction`` of each class (True) or the rest (False).
        T: number of frames per recording.
        size: frame side after bilinear resizing (48); ``None`` keeps the sensor's.
        transform: callable on each float32 ``[T, 2, H, W]`` sample.
        cache_dir: parent folder of the frame cache; ``None`` disables it.
        train_fraction: share of each class used for training, in (0, 1).
        download: let tonic download the dataset into ``root`` if missing.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        T: int = 10,
        *,
        size: int | tuple[int, int] | None = 48,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_dir: str | os.PathLike | None = None,
        train_fraction: float = 0.9,
        download: bool = False,
    ):
        self.train_fraction = check_real("train_fraction", train_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        super().__init__(root, train, T, size=size, transform=transform, cache_dir=cache_dir, download=download)

    @abstractmethod
    def list_all_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        """Every recording under ``folder`` (natural order within each class) and its label."""

    def list_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        return split_part(*self.list_all_recordings(folder), self.train, self.train_fraction)

    def cache_params(self) -> dict:
        return super().cache_params() | {"train_fraction": self.train_fraction}
