"""Finding every unreadable file of a dataset before a long run, not in the middle of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.datasets import DatasetFolder

from sparsegrad.data.events import EventFrameDataset

__all__ = ["check_files"]


def _bases(dataset: Dataset) -> Iterator[Dataset]:
    """The datasets holding files, through ``Subset``, ``ConcatDataset`` and the wrappers
    that keep the wrapped one as ``.dataset`` (e.g. [Transformed][sparsegrad.data.registry.Transformed])."""
    if isinstance(dataset, ConcatDataset):
        for part in dataset.datasets:
            yield from _bases(part)
    elif isinstance(dataset, Subset) or (
        not isinstance(dataset, (DatasetFolder, EventFrameDataset)) and isinstance(getattr(dataset, "dataset", None), Dataset)
    ):
        yield from _bases(dataset.dataset)
    else:
        yield dataset


def _readers(dataset: Dataset) -> Iterator[tuple[Path, Callable[[], object]]]:
    if isinstance(dataset, EventFrameDataset):
        for path in dataset.files:
            yield path, lambda path=path: dataset.read_events(path)
    elif isinstance(dataset, DatasetFolder):
        for path, _ in dataset.samples:
            yield Path(path), lambda path=path: dataset.loader(path)


def check_files(*datasets: Dataset, progress: Callable[[int, int], None] | None = None) -> list[tuple[Path, str]]:
    """Reads every file of the datasets once and lists those that cannot be read.

    Image folders (any torchvision ``DatasetFolder``, e.g.
    [open_imagefolder][sparsegrad.data.imagefolder.open_imagefolder]'s splits or ImageNet)
    decode each image completely; event datasets
    ([EventFrameDataset][sparsegrad.data.events.EventFrameDataset] subclasses) read each
    recording with their own reader, which checks sizes, coordinates and timestamps.
    ``Subset``, ``ConcatDataset`` and [Transformed][sparsegrad.data.registry.Transformed]
    are looked through; a file shared by several datasets (the pooled folds of
    [load_splits][sparsegrad.data.registry.load_splits]) is read once. Datasets that hold
    no files (torchvision's CIFAR reads its batches when opened) contribute none.

    Args:
        *datasets: the datasets to check, e.g. ``*load_splits(...)``.
        progress: called as ``progress(done, total)`` after each file, e.g. to update a bar.

    Returns:
        ``(path, message)`` for every unreadable file, in the datasets' order; empty when all
        files read. The message is the reader's, naming the file and what is wrong.

    Example:
        ```python
        bad = check_files(*load_splits("imagefolder", "~/pictures"))
        for path, message in bad:
            print(message)
        ```
    """
    readers: dict[Path, Callable[[], object]] = {}
    for dataset in datasets:
        for base in _bases(dataset):
            for path, read in _readers(base):
                readers.setdefault(path, read)
    bad = []
    for done, (path, read) in enumerate(readers.items(), start=1):
        try:
            read()
        except (OSError, ValueError) as err:
            bad.append((path, str(err)))
        if progress is not None:
            progress(done, len(readers))
    return bad
