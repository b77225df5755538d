"""Event streams to fixed-length frame sequences, and the on-disk frame cache.

Every neuromorphic dataset of the package goes the same way (docs/design.md §5):

    recording --tonic reader--> events (x, y, t µs, p)
              --events_to_frames--> T equal-time frames of event counts  [T, 2, H, W]
              --resize_frames (optional, bilinear)--> [T, 2, h, w] float32
              --tonic.DiskCachedDataset (optional)--> cached on disk, keyed by every parameter
              --transform (optional, e.g. train augmentation, never cached)--> sample

[EventFrameDataset][sparsegrad.data.frames.EventFrameDataset] implements that pipeline once; a dataset module only lists its
recordings and labels and reads one recording.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import tonic
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "EVENT_DTYPE",
    "FRAMING",
    "EventFrameDataset",
    "events_to_frames",
    "frame_cache_path",
    "resize_frames",
]

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
"""Structured dtype the readers of this package return: x, y (pixels), t (µs), p (0/1)."""

FRAMING = "equal-time-bins/v1"
"""Names the framing rule of [events_to_frames][sparsegrad.data.frames.events_to_frames]; part of every cache key, so a change of the
rule (bump the version) never reuses frames cached under the old one."""

_NMNIST_SENSOR = (34, 34, 2)


def events_to_frames(
    events: np.ndarray,
    T: int,
    sensor_size: tuple[int, int, int] = _NMNIST_SENSOR,
    *,
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Sums events into ``T`` equal-time frames spanning the whole recording.

    The recording's span ``t_last - t_first`` is cut into ``T`` windows of
    ``span // T + 1`` µs starting at ``t_first`` (the last window ends after ``t_last``), and
    each event is counted in its window, channel and pixel. So every event lands in exactly one
    frame (``frames.sum() == len(events)``) and there are always exactly ``T`` frames, also for
    a single event or a recording shorter than ``T`` µs (then windows are 1 µs wide and the
    last frames are empty). Events need not be sorted by time.

    Args:
        events: structured array with fields ``x``, ``y``, ``t`` (integer µs) and ``p``.
        T: number of frames.
        sensor_size: ``(width, height, polarities)``. The default is N-MNIST's ``(34, 34, 2)``
            (kept from the first version of this function); pass the dataset's own.
        source: the file the events came from, named in error messages.

    Returns:
        int32 event counts indexed ``[t, channel, y, x]``. With two polarities, channel 0 holds
        OFF events (``p`` = 0, False or -1) and channel 1 ON events (``p`` = 1 or True). int32
        cannot overflow for any recording of fewer than 2**31 events (tonic's frames are int16
        and silently wrap past 32,767 events in one pixel and frame).

    Shape:
        ``[T, polarities, height, width]``, e.g. ``[T, 2, 34, 34]`` for N-MNIST.

    Raises:
        ValueError: ``T`` is not a positive int, an event lies outside the sensor, the
            polarities are coded neither 0/1 nor -1/1, or timestamps are not integers; the
            message names ``source``.

    Reference:
        tonic ``ToFrame(n_time_bins=T)`` / ``functional.to_frame_numpy``, whose bins of
        ``span // T`` µs drop the last event and the remainder of the division; this is the
        same framing with windows one µs wider so that nothing is dropped.
    """
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T must be a positive number of frames, got {T!r}")
    T = int(T)
    width, height, n_pol = (int(s) for s in sensor_size)
    where = f"{source}: " if source is not None else ""
    if len(events) == 0:
        return np.zeros((T, n_pol, height, width), dtype=np.int32)
    if len(events) >= 2**31:
        raise ValueError(f"{where}{len(events)} events could overflow int32 frame counts")

    x, y = check_in_sensor(events, width, height, where)
    channel = _polarity_channel(np.asarray(events["p"]), n_pol, where)

    t = np.asarray(events["t"])
    if t.dtype.kind == "f" and not (np.all(np.isfinite(t)) and np.array_equal(t, np.round(t))):
        raise ValueError(f"{where}timestamps must be integer microseconds")
    t = t.astype(np.int64)
    t0 = int(t.min())
    window = (int(t.max()) - t0) // T + 1
    bins = (t - t0) // window  # in 0..T-1 since span < T * window

    flat = ((bins * n_pol + channel) * height + y) * width + x
    counts = np.bincount(flat, minlength=T * n_pol * height * width)
    return counts.astype(np.int32).reshape(T, n_pol, height, width)


def _polarity_channel(p: np.ndarray, n_pol: int, where: str) -> np.ndarray:
    """Channel index of each event: 0 for OFF (0, False, -1), 1 for ON (1, True)."""
    if n_pol == 1:
        return np.zeros(len(p), dtype=np.int64)
    if n_pol != 2:
        raise ValueError(f"{where}sensors with {n_pol} polarity channels are not supported")
    values = set(np.unique(p).astype(np.int64).tolist())
    if not (values <= {0, 1} or values <= {-1, 1}):
        raise ValueError(
            f"{where}polarities must be coded 0/1 or -1/1, got the values {sorted(values)[:6]}"
        )
    return (p > 0).astype(np.int64)


def check_in_sensor(events: np.ndarray, width: int, height: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The events' ``x`` and ``y`` as int64 arrays, after checking they lie on the sensor.

    Raises:
        ValueError: an event outside ``[0, width) x [0, height)``; the message starts with
            ``where`` (the file) and names the first such event.
    """
    x = np.asarray(events["x"]).astype(np.int64)
    y = np.asarray(events["y"]).astype(np.int64)
    bad = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}{int(bad.sum())} events lie outside the {width}x{height} sensor, the first "
            f"(event {i}) at x={int(x[i])}, y={int(y[i])}; the file is corrupt or not a "
            "recording of this dataset"
        )
    return x, y


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resizes every frame (``F.interpolate``, ``align_corners=False``).

    Args:
        frames: event frames; any dtype (cast to float32).
        size: output ``(height, width)``, or one int for a square.

    Returns:
        float32 frames. Bilinear resizing does not preserve the event count.

    Shape:
        ``[T, C, H, W] -> [T, C, height, width]``.

    Reference:
        TET / spikingjelly practice for CIFAR10-DVS: 128x128 frames resized to 48x48 (docs/design.md §5).
    """
    if frames.dim() != 4:
        raise ValueError(f"expected frames [T, C, H, W], got shape {tuple(frames.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False)


def frame_cache_path(cache_dir: str | os.PathLike, params: Mapping[str, object]) -> Path:
    """The cache folder for frames made with ``params``: readable prefix plus a digest of all.

    Args:
        cache_dir: the parent folder holding every cache.
        params: JSON-serialisable framing parameters; must include ``dataset``, ``split``,
            ``T`` and ``size``. Any change of any value gives another folder.

    Returns:
        ``cache_dir/<dataset>-<split>-T<T>-<h>x<w>-<16 hex digits of sha256(params)>``.
    """
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    digest = hashlib.sha256(blob).hexdigest()[:16]
    h, w = params["size"]
    name = f"{params['dataset']}-{params['split']}-T{params['T']}-{h}x{w}-{digest}"
    return Path(cache_dir).expanduser() / name


class _Framer:
    """The uncached frame source that ``tonic.DiskCachedDataset`` wraps: index -> frames, label."""

    def __init__(self, owner: EventFrameDataset):
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.owner.load_frames(index), self.owner.targets[index]


class EventFrameDataset(Dataset, metaclass=ABCMeta):
    """Base class: recordings on disk as ``(frames float32 [T, 2, H, W], label)`` samples.

    A subclass sets ``dataset_name``, ``sensor_size`` and ``classes``, finds its recordings and
    labels, calls ``super().__init__`` with them and implements
    [read_events][sparsegrad.data.frames.EventFrameDataset.read_events]. Frames are made on first
    access; with ``cache_dir`` they are stored through ``tonic.DiskCachedDataset`` in
    [frame_cache_path][sparsegrad.data.frames.frame_cache_path] (one HDF5 file per sample), so
    later epochs and runs read them back instead of re-reading the recordings. The ``transform`` runs after the cache, on every
    access, so random augmentation stays random.

    Args:
        files: one recording per sample.
        targets: the label of each recording.
        root: the folder the recordings were found in (part of the cache key).
        split: ``"train"``, ``"test"`` or another name of the subset (part of the cache key).
        T: number of equal-time frames per recording.
        size: resize the frames bilinearly to ``(height, width)`` (one int: a square); ``None``
            keeps the sensor's resolution.
        transform: callable applied to each float32 ``[T, 2, H, W]`` tensor after the cache.
        cache_dir: parent folder of the frame caches; ``None`` disables the disk cache.

    Raises:
        ValueError: ``T`` or ``size`` is not positive, or files and targets differ in length.
    """

    dataset_name: ClassVar[str] = "events"
    sensor_size: ClassVar[tuple[int, int, int]] = (0, 0, 2)
    classes: ClassVar[Sequence] = ()
    keep_in_memory: ClassVar[bool] = False  # without cache_dir, keep frames in RAM (small sets)

    def __init__(
        self,
        files: Sequence[Path],
        targets: Sequence[int],
        *,
        root: Path,
        split: str,
        T: int,
        size: int | tuple[int, int] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, got {T!r}")
        if len(files) != len(targets):
            raise ValueError(f"{len(files)} files but {len(targets)} targets")
        if size is not None:
            pair = (size, size) if isinstance(size, int) else size
            if (
                not isinstance(pair, (tuple, list))
                or len(pair) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair)
            ):
                raise ValueError(f"size must be a positive int or (height, width) of ints, got {size!r}")
            size = tuple(pair)
        self.files = [Path(f) for f in files]
        self.targets = [int(t) for t in targets]
        self.root = Path(root)
        self.split = split
        self.T = T
        self.size = size
        self.transform = transform
        self.cache_path: Path | None = None
        self._disk: tonic.DiskCachedDataset | None = None
        self._memory: list[torch.Tensor | None] | None = None
        if cache_dir is not None:
            self.cache_path = frame_cache_path(cache_dir, self.cache_params())
            self._disk = tonic.DiskCachedDataset(_Framer(self), cache_path=str(self.cache_path))
            info = self.cache_path / "params.json"
            if not info.exists():
                info.write_text(json.dumps(self.cache_params(), indent=1, sort_keys=True) + "\n")
        elif self.keep_in_memory:
            self._memory = [None] * len(self.files)

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

    @abstractmethod
    def read_events(self, path: Path) -> np.ndarray:
        """Reads one recording as a structured array with fields x, y, t (µs), p.

        Raises:
            ValueError: the file is truncated or corrupt; the message names it.
        """

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
            data, _ = self._disk[index]
            frames = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        elif self._memory is not None:
            cached = self._memory[index]
            if cached is None:
                cached = self._memory[index] = torch.from_numpy(self.load_frames(index))
            frames = cached.clone()
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
