"""N-Caltech101 recordings as event frames, read from a local folder through tonic's reader.

N-Caltech101 (Orchard et al. 2015) holds 8,709 ATIS recordings of Caltech101 images in 101
classes (100 object classes and ``BACKGROUND_Google``), in the same 5-byte ``.bin`` format as
N-MNIST, read with ``tonic.io.read_mnist_file`` (through
[read_events][sparsegrad.data.nmnist.read_events]). Recordings differ in size; all fit a 240x180
sensor (x < 240, y < 180), which is the frame size used here before resizing. Unlike
``tonic.datasets.NCALTECH101``, coordinates are not shifted to start at 0 per recording (the
object keeps its place in the frame, as in spikingjelly), and labels are class indices, not
folder names.

Layout of a root folder (``root``, ``root/Caltech101``, or ``root/NCALTECH101/Caltech101`` as
``tonic.datasets.NCALTECH101(save_to=root)`` leaves it):

    accordion/image_0001.bin
    accordion/image_0002.bin
    ...
    BACKGROUND_Google/image_0001.bin
    ...                               # one folder per class; classes are the folder names,
                                      # sorted (``dataset.classes``), labels their indices

There is no official split: the first 90 % of each class in sorted file order train, the rest
test ([split_per_class][sparsegrad.data.splits.split_per_class]). The classes are very unbalanced (31 to
800 recordings), so training uses [class_balanced_sampler][sparsegrad.data.splits.class_balanced_sampler]
([balanced_sampler][sparsegrad.data.ncaltech101.NCaltech101.balanced_sampler]).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tonic
import torch
from torch.utils.data import WeightedRandomSampler

from sparsegrad.data._layout import check_train_flag, class_files, locate_root
from sparsegrad.data.frames import EventFrameDataset
from sparsegrad.data.nmnist import read_events as read_atis_bin
from sparsegrad.data.splits import class_balanced_sampler, split_part

__all__ = ["NCaltech101"]

_LAYOUT = (
    "  <root>/<class name>/*.bin  (N-Caltech101 recordings in the ATIS .bin format, one folder\n"
    "  per class, 101 classes in the full dataset; <root>/Caltech101/... and\n"
    "  <root>/NCALTECH101/Caltech101/... as tonic's download leaves it work too)"
)


class NCaltech101(EventFrameDataset):
    """N-Caltech101 as ``T`` equal-time event frames, resized to 48x48, split 9:1 per class.

    Args:
        root: the folder holding the class folders (see the module docstring).
        train: the first 90 % of each class (True) or the remaining recordings (False).
        T: number of frames per recording.
        size: frame side after bilinear resizing (48 as CIFAR10-DVS); ``None`` keeps 180x240.
        transform: callable on each float32 ``[T, 2, H, W]`` sample (``build_dataset`` adds
            [event_augmentation][sparsegrad.data.transforms.event_augmentation] for the training split).
        cache_dir: parent folder of the frame cache; ``None`` disables it.
        train_fraction: share of each class used for training.
        download: fetch the dataset with ``tonic.datasets.NCALTECH101(save_to=root)`` if missing.

    Shape:
        ``dataset[i]`` is ``(frames, label)``: frames float32 ``[T, 2, size, size]`` indexed
        ``[t, polarity, y, x]``, label an int (index into ``dataset.classes``). A DataLoader
        batches them to ``[B, T, 2, size, size]``.

    Raises:
        FileNotFoundError: no class folder with ``.bin`` files under ``root``; the message
            gives the layout.
        ValueError: on access, a recording is truncated or corrupt (the file is named).

    Reference:
        Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
        using saccades", Front. Neurosci. 9:437. Split, size, sampler: docs/design.md §5.
    """

    dataset_name = "ncaltech101"
    sensor_size = (240, 180, 2)

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        T: int = 10,
        *,
        size: int | tuple[int, int] | None = 48,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache_dir: str | os.PathLike | None = None,
        train_fraction: float = 0.9,
        download: bool = False,
    ):
        check_train_flag(train)
        root = Path(root).expanduser()
        candidates = ("", "Caltech101", "NCALTECH101/Caltech101")
        if download and not any(self._holds_data(root / c) for c in candidates):
            self._download(root)
        folder = locate_root(root, candidates, self._holds_data, "N-Caltech101", _LAYOUT)
        class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and any(d.glob("*.bin")))
        self.classes = tuple(d.name for d in class_dirs)
        files, targets = split_part(*class_files(class_dirs, (".bin",)), train, train_fraction)
        self.train = train
        self.train_fraction = train_fraction
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

    @staticmethod
    def _holds_data(folder: Path) -> bool:
        return folder.is_dir() and any(
            d.is_dir() and any(d.glob("*.bin")) for d in folder.iterdir()
        )

    @staticmethod
    def _download(root: Path) -> None:
        # tonic 1.7 downloads and extracts the outer archive but never extracts the inner
        # Caltech101.zip it names (``data_filename``), leaving an empty dataset; do that here.
        ds = tonic.datasets.NCALTECH101(save_to=str(root))
        inner = Path(ds.location_on_system) / ds.data_filename
        if inner.is_file() and not (Path(ds.location_on_system) / ds.folder_name).is_dir():
            tonic.download_utils.extract_archive(str(inner), ds.location_on_system)

    def cache_params(self) -> dict:
        return super().cache_params() | {"train_fraction": self.train_fraction}

    def read_events(self, path: Path) -> np.ndarray:
        return read_atis_bin(path, self.sensor_size, check_order=False)

    def balanced_sampler(
        self, num_samples: int | None = None, generator: torch.Generator | None = None
    ) -> WeightedRandomSampler:
        """A class-balanced ``WeightedRandomSampler`` over this dataset (weights 1/class count).

        Reference:
            docs/design.md §5; [class_balanced_sampler][sparsegrad.data.splits.class_balanced_sampler].
        """
        return class_balanced_sampler(self.targets, num_samples=num_samples, generator=generator)
