"""N-MNIST recordings as fixed-length event-frame sequences.

The project ships 1,000 training and 100 test recordings of N-MNIST in the native ``.bin``
format under ``data/nmnist_small`` (see ``data/PROVENANCE.md``). They are read through tonic,
the same path the full neuromorphic datasets use; nothing is downloaded.

Two layouts of a root folder are read. The embedded subset:

    train1K.txt        # "#sample #class" header, then "<id><TAB><class>" per line
    test100.txt
    train/<id>.bin     # N-MNIST training sample <id> (1..1000)
    test/<id>.bin      # N-MNIST test sample <id> - 60000 (60001..60100)

and the full dataset as released (``root`` or ``root/NMNIST`` as
``tonic.datasets.NMNIST(save_to=root)`` leaves it):

    Train/<digit>/<id>.bin   # 60,000 recordings, digit 0..9 is the label
    Test/<digit>/<id>.bin    # 10,000 recordings
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tonic
import torch

from sparsegrad.data._layout import check_train_flag, class_files
from sparsegrad.data.frames import EVENT_DTYPE, EventFrameDataset, check_in_sensor, events_to_frames

__all__ = ["NMNIST", "default_root", "events_to_frames", "read_events", "read_labels"]

SENSOR_SIZE = (34, 34, 2)  # (width x, height y, polarities), as tonic.datasets.NMNIST
_BYTES_PER_EVENT = 5
_LAYOUT = (
    "train1K.txt and test100.txt (lines '<id><TAB><class>') and the recordings "
    "train/<id>.bin and test/<id>.bin in N-MNIST's native format, or the full release's "
    "Train/<digit>/*.bin and Test/<digit>/*.bin (also under <root>/NMNIST/)"
)
_OFFICIAL_FOLDERS = {True: "Train", False: "Test"}


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
    path: str | os.PathLike,
    sensor_size: tuple[int, int, int] = SENSOR_SIZE,
    *,
    check_order: bool = True,
) -> np.ndarray:
    """Reads one ATIS ``.bin`` recording (N-MNIST, N-Caltech101) with ``tonic.io.read_mnist_file``.

    The format is 5 bytes per event: x, y, then polarity in bit 7 and a 23-bit timestamp in
    microseconds. tonic drops the format's timestamp-overflow markers (y = 240).

    Args:
        path: a ``.bin`` recording.
        sensor_size: ``(width, height, polarities)``; coordinates must lie inside it.
        check_order: reject timestamps that go backwards (framing does not need sorted events;
            the check guards N-MNIST's files, which are all sorted).

    Returns:
        Structured array with fields ``x``, ``y``, ``t`` (µs), ``p`` in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated (size not a multiple of 5 bytes), holds no events, has
            coordinates outside the sensor or (with ``check_order``) timestamps going backwards;
            the message names it.

    Reference:
        Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
        using saccades", Front. Neurosci. 9:437 (the format); tonic ``io.read_mnist_file``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path} does not exist")
    size = path.stat().st_size
    if size % _BYTES_PER_EVENT:
        raise ValueError(
            f"{path}: {size} bytes is not a multiple of {_BYTES_PER_EVENT} (bytes per ATIS "
            "event); the file is truncated or not an N-MNIST / N-Caltech101 .bin recording"
        )
    events = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    if len(events) == 0:
        raise ValueError(f"{path}: the recording holds no events")
    check_in_sensor(events, sensor_size[0], sensor_size[1], f"{path}: ")
    if check_order and np.any(np.diff(events["t"]) < 0):
        raise ValueError(f"{path}: timestamps go backwards; the file is corrupt")
    return events


class NMNIST(EventFrameDataset):
    """N-MNIST recordings as event frames, read from a local folder.

    Each recording is converted, on its first access, to ``T`` equal-time frames that sum the ON
    and OFF events per pixel ([events_to_frames][sparsegrad.data.frames.events_to_frames]). Without
    ``cache_dir`` the frames are kept in memory for later epochs (the embedded subset is small);
    with it they are cached on disk. Nothing is downloaded unless ``download=True``.

    Args:
        root: a folder in either layout of the module docstring; ``None`` means
            [default_root][sparsegrad.data.nmnist.default_root], the embedded 1,000 + 100 subset.
        train: the training recordings (``train1K.txt`` / ``Train``) or the test ones.
        T: number of time bins (frames) per recording.
        size: resize the frames bilinearly to this side; ``None`` keeps 34x34.
        transform: callable on each float32 ``[T, 2, H, W]`` sample.
        cache_dir: parent folder of a disk frame cache; ``None`` keeps frames in memory.
        download: fetch the full N-MNIST split with ``tonic.datasets.NMNIST(save_to=root)`` if
            ``root`` holds neither layout.

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
        ```python
        ds = NMNIST(default_root(), train=True, T=10)
        frames, label = ds[0]
        frames.shape, label  # (torch.Size([10, 2, 34, 34]), 5)
        ```
    """

    dataset_name = "nmnist"
    sensor_size = SENSOR_SIZE
    classes = tuple(range(10))
    label_files = {True: "train1K.txt", False: "test100.txt"}
    keep_in_memory = True

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
        check_train_flag(train)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, got {T!r}")
        root = Path(root).expanduser() if root is not None else default_root()
        self.train = train
        label_file = root / self.label_files[train]
        if label_file.is_file():
            folder = root
            files, targets = self._subset(root, train)
        else:
            official = self._find_official(root, train)
            if official is None and download:
                tonic.datasets.NMNIST(save_to=str(root), train=train)
                official = self._find_official(root, train)
            if official is None:
                if root.is_dir() and (root / self.label_files[not train]).is_file():
                    read_labels(label_file)  # raises: names the missing label file
                raise FileNotFoundError(
                    f"N-MNIST root {root} does not exist or holds neither layout; it should hold "
                    f"{_LAYOUT}. The embedded subset lives in data/nmnist_small of the repository "
                    "(set SPARSEGRAD_DATA to a folder holding nmnist_small/ to read it elsewhere)."
                )
            folder = official.parent
            files, targets = class_files([official / str(d) for d in range(10)], (".bin",))
        super().__init__(
            files,
            targets,
            root=folder,
            split="train" if train else "test",
            T=T,
            size=size,
            transform=transform,
            cache_dir=cache_dir,
        )

    def _subset(self, root: Path, train: bool) -> tuple[list[Path], list[int]]:
        split = "train" if train else "test"
        pairs = read_labels(root / self.label_files[train])
        files = [root / split / f"{sample_id}.bin" for sample_id, _ in pairs]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(files)} recordings listed in "
                f"{root / self.label_files[train]} are missing, the first {missing[0]}"
            )
        return files, [label for _, label in pairs]

    @staticmethod
    def _find_official(root: Path, train: bool) -> Path | None:
        for folder in (root, root / "NMNIST"):
            split = folder / _OFFICIAL_FOLDERS[train]
            if split.is_dir() and any((split / str(d)).is_dir() for d in range(10)):
                return split
        return None

    def read_events(self, path: Path) -> np.ndarray:
        return read_events(path, self.sensor_size)
