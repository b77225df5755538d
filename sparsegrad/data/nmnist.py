"""N-MNIST recordings as fixed-length event-frame sequences.

The project ships 1,000 training and 100 test recordings of N-MNIST in the native ``.bin``
format under ``data/nmnist_small`` (see ``data/PROVENANCE.md``). They are read through tonic,
the same path the full neuromorphic datasets use; nothing is downloaded.

Layout of a root folder::

    train1K.txt        # "#sample #class" header, then "<id><TAB><class>" per line
    test100.txt
    train/<id>.bin     # N-MNIST training sample <id> (1..1000)
    test/<id>.bin      # N-MNIST test sample <id> - 60000 (60001..60100)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tonic
import torch
from torch.utils.data import Dataset

__all__ = ["NMNIST", "default_root", "events_to_frames", "read_events", "read_labels"]

SENSOR_SIZE = (34, 34, 2)  # (width x, height y, polarities), as tonic.datasets.NMNIST
EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
_BYTES_PER_EVENT = 5
_LAYOUT = (
    "train1K.txt and test100.txt (lines '<id><TAB><class>') and the recordings "
    "train/<id>.bin and test/<id>.bin in N-MNIST's native format"
)


def default_root() -> Path:
    """Returns the folder of the embedded N-MNIST subset.

    The environment variable ``SPARSEGRAD_DATA`` names a data folder that replaces the
    repository's ``data/`` folder; the subset is then read from ``$SPARSEGRAD_DATA/nmnist_small``.
    Without it the path is resolved from this file's location (``<repo>/data/nmnist_small``), so
    it works from any working directory with a source checkout or an editable install.

    Returns:
        The path; it is not checked for existence here (``NMNIST`` does that, with a clear error).
    """
    env = os.environ.get("SPARSEGRAD_DATA")
    base = Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "data"
    return base / "nmnist_small"


def read_labels(path: str | os.PathLike) -> list[tuple[int, int]]:
    """Reads a label file of the embedded subset.

    Lines starting with ``#`` and blank lines are skipped; every other line is
    ``<sample id><whitespace><class>`` with the class in 0..9.

    Args:
        path: ``train1K.txt`` or ``test100.txt``.

    Returns:
        ``(sample_id, label)`` pairs in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line does not parse, a class is outside 0..9 or an id repeats; the message
            names the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist; expected {_LAYOUT}")
    pairs: list[tuple[int, int]] = []
    seen: set[int] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            try:
                if len(fields) != 2:
                    raise ValueError
                sample_id, label = int(fields[0]), int(fields[1])
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: expected '<sample id><TAB><class 0-9>', got {text!r}"
                ) from None
            if not 0 <= label <= 9:
                raise ValueError(f"{path}:{lineno}: class {label} is outside 0..9")
            if sample_id in seen:
                raise ValueError(f"{path}:{lineno}: sample id {sample_id} appears twice")
            seen.add(sample_id)
            pairs.append((sample_id, label))
    if not pairs:
        raise ValueError(f"label file {path} lists no samples")
    return pairs


def read_events(
    path: str | os.PathLike, sensor_size: tuple[int, int, int] = SENSOR_SIZE
) -> np.ndarray:
    """Reads one N-MNIST recording with ``tonic.io.read_mnist_file`` and validates it.

    The format is 5 bytes per event: x, y, then polarity in bit 7 and a 23-bit timestamp in
    microseconds. tonic drops the format's timestamp-overflow markers (y = 240).

    Args:
        path: a ``.bin`` recording.
        sensor_size: ``(width, height, polarities)``; coordinates must lie inside it.

    Returns:
        Structured array with fields ``x``, ``y``, ``t`` (µs), ``p``, sorted by time.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated (size not a multiple of 5 bytes), holds no events, has
            coordinates outside the sensor or timestamps going backwards; the message names it.

    Reference:
        Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
        using saccades", Front. Neurosci. 9:437 (the format); tonic ``io.read_mnist_file``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"N-MNIST recording {path} does not exist")
    size = path.stat().st_size
    if size % _BYTES_PER_EVENT:
        raise ValueError(
            f"{path}: {size} bytes is not a multiple of {_BYTES_PER_EVENT} (bytes per N-MNIST "
            "event); the file is truncated or not an N-MNIST .bin recording"
        )
    events = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    if len(events) == 0:
        raise ValueError(f"{path}: the recording holds no events")
    width, height, _ = sensor_size
    bad = (events["x"] >= width) | (events["y"] >= height)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: {int(bad.sum())} events lie outside the {width}x{height} sensor, the first "
            f"(event {i}) at x={int(events['x'][i])}, y={int(events['y'][i])}; the file is "
            "corrupt or not an N-MNIST recording"
        )
    if np.any(np.diff(events["t"]) < 0):
        raise ValueError(f"{path}: timestamps go backwards; the file is corrupt")
    return events


def events_to_frames(
    events: np.ndarray, T: int, sensor_size: tuple[int, int, int] = SENSOR_SIZE
) -> np.ndarray:
    """Sums events into ``T`` equal-time frames spanning the whole recording.

    Every event lands in exactly one frame, so ``frames.sum() == len(events)``.

    Args:
        events: structured array from :func:`read_events` (sorted by ``t``, non-empty).
        T: number of frames.
        sensor_size: ``(width, height, polarities)``.

    Returns:
        int16 event counts indexed ``[t, p, y, x]``.

    Shape:
        ``[T, polarities, height, width]``, i.e. ``[T, 2, 34, 34]`` for N-MNIST.
    """
    if T < 1:
        raise ValueError(f"T must be a positive number of frames, got {T}")
    # tonic's ToFrame(n_time_bins=T) loses events: it uses bins of width (t_last - t0) // T,
    # each half-open [start, start + width), so the last event (at t_last = t0 + span, past the
    # last bin's end) and any event in the floor-division remainder are dropped - 1 or 2 events
    # on every one of the 1,100 embedded recordings. We call tonic's own framing with an
    # explicit time window one microsecond wider (span // T + 1) and an explicit time range of T
    # windows from t0, which then ends after t_last, so all events land and there are T frames.
    t0 = int(events["t"][0])
    span = int(events["t"][-1]) - t0
    window = span // T + 1
    frames = tonic.functional.to_frame_numpy(
        events,
        sensor_size=sensor_size,
        time_window=window,
        start_time=t0,
        end_time=t0 + T * window,
    )
    assert frames.shape[0] == T, frames.shape
    return frames


class NMNIST(Dataset):
    """N-MNIST recordings as event frames, read from a local folder.

    Each recording is converted once, on its first access, to ``T`` equal-time frames that sum
    the ON and OFF events per pixel; the frames are kept in memory (as int16 counts) for later
    epochs. No labels or recordings are downloaded.

    Args:
        root: folder with the label files and ``train/``, ``test/`` recordings (see the module
            docstring); ``None`` means :func:`default_root`, the embedded 1,000 + 100 subset.
        train: read ``train1K.txt`` and ``train/`` if True, else ``test100.txt`` and ``test/``.
        T: number of time bins (frames) per recording.

    Shape:
        ``dataset[i]`` is ``(frames, label)``: frames float32 ``[T, 2, 34, 34]`` indexed
        ``[t, polarity, y, x]`` (polarity 0 = OFF, 1 = ON), label an int in 0..9. A DataLoader
        batches them to ``[B, T, 2, 34, 34]``.

    Raises:
        FileNotFoundError: ``root``, its label file or a listed recording is missing; the
            message names the path and the expected layout.
        ValueError: a label file line does not parse (file and line named), or - on access - a
            recording is truncated or corrupt (file named).

    Reference:
        Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
        using saccades", Front. Neurosci. 9:437. Framing follows tonic's ``ToFrame``.

    Example:
        >>> ds = NMNIST(default_root(), train=True, T=10)
        >>> frames, label = ds[0]
        >>> frames.shape, label
        (torch.Size([10, 2, 34, 34]), 5)
    """

    sensor_size = SENSOR_SIZE
    classes = tuple(range(10))
    label_files = {True: "train1K.txt", False: "test100.txt"}

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, T: int = 10):
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, got {T!r}")
        self.root = Path(root) if root is not None else default_root()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"N-MNIST root {self.root} does not exist or is not a folder; it should hold "
                f"{_LAYOUT}. The embedded subset lives in data/nmnist_small of the repository "
                "(set SPARSEGRAD_DATA to a folder holding nmnist_small/ to read it elsewhere)."
            )
        self.train = train
        self.T = T
        split = "train" if train else "test"
        pairs = read_labels(self.root / self.label_files[train])
        self.files = [self.root / split / f"{sample_id}.bin" for sample_id, _ in pairs]
        self.targets = [label for _, label in pairs]
        missing = [f for f in self.files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.files)} recordings listed in "
                f"{self.root / self.label_files[train]} are missing, the first {missing[0]}"
            )
        self._frames: list[torch.Tensor | None] = [None] * len(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = self._frames[index]
        if frames is None:
            events = read_events(self.files[index], self.sensor_size)
            frames = torch.from_numpy(events_to_frames(events, self.T, self.sensor_size))
            self._frames[index] = frames
        return frames.float(), self.targets[index]

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"NMNIST(root={str(self.root)!r}, split={split!r}, T={self.T}, samples={len(self)})"
