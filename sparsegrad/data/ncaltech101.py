"""N-Caltech101 recordings as event frames, read from a local folder through tonic's reader.

N-Caltech101 (Orchard et al. 2015) holds 8,709 ATIS recordings of Caltech101 images in 101
classes (100 object classes and ``BACKGROUND_Google``), in the same 5-byte ``.bin`` format as
N-MNIST, read with ``tonic.io.read_mnist_file`` (through
[read_events][sparsegrad.data.atis.read_events]). Recordings differ in size; all fit a 240x180
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

from pathlib import Path

import numpy as np
import tonic
import torch
from torch.utils.data import WeightedRandomSampler

from sparsegrad.data._layout import class_files
from sparsegrad.data._tonic import NCALTECH101_INNER_ZIP
from sparsegrad.data.atis import read_events as read_atis_bin
from sparsegrad.data.events import PerClassSplitDataset
from sparsegrad.data.splits import class_balanced_sampler

__all__ = ["NCaltech101"]

_LAYOUT = (
    "  <root>/<class name>/*.bin  (N-Caltech101 recordings in the ATIS .bin format, one folder\n"
    "  per class, 101 classes in the full dataset; <root>/Caltech101/... and\n"
    "  <root>/NCALTECH101/Caltech101/... as tonic's download leaves it work too)"
)


class NCaltech101(PerClassSplitDataset):
    """N-Caltech101 as ``T`` equal-time event frames, resized to 48x48, split 9:1 per class.

    Takes [PerClassSplitDataset][sparsegrad.data.events.PerClassSplitDataset]'s arguments:
    ``root`` (the folder holding the class folders, see the module docstring), ``train``,
    ``T``, ``size`` (48 as CIFAR10-DVS; ``None`` keeps 180x240), ``transform``
    (``build_dataset`` adds [event_augmentation][sparsegrad.data.transforms.event_augmentation]
    for the training split), ``cache_dir``, ``train_fraction`` and ``download``
    (``tonic.datasets.NCALTECH101(save_to=root)``). ``classes`` are the class folders found.

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
    title = "N-Caltech101"
    sensor_size = (240, 180, 2)
    layout = _LAYOUT
    root_folders = ("", "Caltech101", "NCALTECH101/Caltech101")

    def holds_data(self, folder: Path) -> bool:
        return any(d.is_dir() and any(d.glob("*.bin")) for d in folder.iterdir())

    def download(self, root: Path) -> None:
        ds = tonic.datasets.NCALTECH101(save_to=str(root))
        if NCALTECH101_INNER_ZIP.present:  # extract the inner archive tonic leaves packed
            location = Path(ds.location_on_system)
            # the class attribute: tonic's Dataset.__init__ sets the instance's folder_name to ""
            if (location / ds.data_filename).is_file() and not (location / type(ds).folder_name).is_dir():
                tonic.download_utils.extract_archive(str(location / ds.data_filename), str(location))

    def list_all_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and any(d.glob("*.bin")))
        self.classes = tuple(d.name for d in class_dirs)
        return class_files(class_dirs, (".bin",))

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
