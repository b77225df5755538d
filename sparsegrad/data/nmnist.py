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
from pathlib import Path

import numpy as np
import tonic

from sparsegrad.data._layout import class_files
from sparsegrad.data.atis import read_events
from sparsegrad.data.events import EventFrameDataset

__all__ = ["NMNIST", "default_root", "read_labels"]

SENSOR_SIZE = (34, 34, 2)  # (width x, height y, polarities), as tonic.datasets.NMNIST
_LAYOUT = (
    "train1K.txt and test100.txt (lines '<id><TAB><class>') and the recordings "
    "train/<id>.bin and test/<id>.bin in N-MNIST's native format, or the full release's "
    "Train/<digit>/*.bin and Test/<digit>/*.bin (also under <root>/NMNIST/)"
)
_OFFICIAL_FOLDERS = {True: "Train", False: "Test"}
_NOT_EMBEDDED = """\
the embedded N-MNIST subset is not at {root}{env}. It ships with the source repository
(data/nmnist_small, 24 MB), not with the pip package. Either point SPARSEGRAD_DATA at the
data/ folder of a sparsegrad checkout:
    export SPARSEGRAD_DATA=/path/to/sparsegrad/data
or train on the full N-MNIST (70,000 recordings), which tonic downloads:
    python -m sparsegrad.train --dataset nmnist --data-root ~/data/nmnist --download"""


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


class NMNIST(EventFrameDataset):
    """N-MNIST recordings as event frames, read from a local folder.

    Each recording is converted, on its first access, to ``T`` equal-time frames that sum the ON
    and OFF events per pixel ([events_to_frames][sparsegrad.data.frames.events_to_frames]). Without
    ``cache_dir`` the frames are kept in memory for later epochs (the embedded subset is small);
    with it they are cached on disk. Nothing is downloaded unless ``download=True``.

    Takes [EventFrameDataset][sparsegrad.data.events.EventFrameDataset]'s arguments: ``root``
    (a folder in either layout of the module docstring; ``None`` means
    [default_root][sparsegrad.data.nmnist.default_root], the embedded 1,000 + 100 subset),
    ``train`` (``train1K.txt`` / ``Train``, or the test recordings), ``T``, ``size`` (``None``
    keeps 34x34), ``transform``, ``cache_dir`` and ``download`` (the full split with
    ``tonic.datasets.NMNIST(save_to=root)`` if ``root`` holds neither layout).

    Shape:
        ``dataset[i]`` is ``(frames, label)``: frames float32 ``[T, 2, 34, 34]`` indexed
        ``[t, polarity, y, x]`` (polarity 0 = OFF, 1 = ON), label an int in 0..9. A DataLoader
        batches them to ``[B, T, 2, 34, 34]``.

    Raises:
        FileNotFoundError: ``root``, its label file or a listed recording is missing; the
            message names the path and the expected layout. Without the embedded subset (a
            pip install), it gives the commands that fix it.
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
    title = "N-MNIST"
    sensor_size = SENSOR_SIZE
    classes = tuple(range(10))
    layout = _LAYOUT
    root_folders = ("", "NMNIST")
    label_files = {True: "train1K.txt", False: "test100.txt"}
    keep_in_memory = True

    @classmethod
    def default_root(cls) -> Path:
        return default_root()

    def find_root(self, root: Path, download: bool) -> Path:
        try:
            return super().find_root(root, download)
        except FileNotFoundError:
            if root != default_root() or root.is_dir():
                raise
            env = os.environ.get("SPARSEGRAD_DATA")
            env = f" (SPARSEGRAD_DATA={env})" if env else ""
            raise FileNotFoundError(_NOT_EMBEDDED.format(root=root, env=env)) from None

    def holds_data(self, folder: Path) -> bool:
        subset = any((folder / name).is_file() for name in self.label_files.values())
        official = folder / _OFFICIAL_FOLDERS[self.train]
        return subset or (official.is_dir() and any((official / str(d)).is_dir() for d in range(10)))

    def download(self, root: Path) -> None:
        tonic.datasets.NMNIST(save_to=str(root), train=self.train)

    def list_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        if not any((folder / name).is_file() for name in self.label_files.values()):
            official = folder / _OFFICIAL_FOLDERS[self.train]
            return class_files([official / str(d) for d in range(10)], (".bin",))
        label_file = folder / self.label_files[self.train]
        pairs = read_labels(label_file)  # a missing label file is named here
        split = "train" if self.train else "test"
        files = [folder / split / f"{sample_id}.bin" for sample_id, _ in pairs]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(files)} recordings listed in {label_file} are missing, "
                f"the first {missing[0]}"
            )
        return files, [label for _, label in pairs]

    def read_events(self, path: Path) -> np.ndarray:
        return read_events(path, self.sensor_size)
