"""Any folder of images, one sub-folder per class: bring your own data.

Two layouts are read (``<class>`` folders hold images in any format PIL opens):

    <root>/train/<class>/*  and  <root>/val/<class>/*    # (or test/ instead of val/)
    <root>/<class>/*                                      # one split: cut per class by the engine

Classes are the sorted folder names of the training split (the single split); at least two,
and every class of ``val/`` must have a folder in ``train/``. The number of channels (1 for
grayscale, 3 otherwise) and the image size are read from the first training image; every
image is converted to that mode and resized to that size (or to ``size``). An image that
cannot be read (a truncated PNG, a file that is no image) fails at its first read, naming the
file and its folder; [check_files][sparsegrad.data.check.check_files] finds them all up front.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision import transforms as T

__all__ = ["ClassFolder", "folder_format", "folder_transform", "open_imagefolder", "read_image"]

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_LAYOUT = ("<root>/train/<class>/* with <root>/val/<class>/* (or <root>/test/<class>/*), "
           "or <root>/<class>/* for a single split")


def read_image(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Image.Image:
    """Reads an image completely, as RGB (torchvision's ``pil_loader``), or says which file failed.

    Args:
        path: the image file.
        folder: the image folder it belongs to, named in the message.

    Returns:
        The decoded RGB image.

    Raises:
        ValueError: PIL cannot open or decode the file (truncated, corrupt, not an image);
            the message names the file, its folder and how to find every such file.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes every pixel now: a truncated file fails here
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for broken files
        where = f" in the image folder {folder}" if folder is not None else ""
        raise ValueError(
            f"{path}: cannot read this image{where} ({type(err).__name__}: {err}); "
            "sparsegrad.data.check_files(dataset) lists every unreadable file"
        ) from err


class ClassFolder(datasets.ImageFolder):
    """A torchvision ``ImageFolder`` whose class list is given, so two splits share indices.

    Images are read with [read_image][sparsegrad.data.imagefolder.read_image], so a broken
    file is named with its folder.

    Args:
        root: a folder of ``<class>/`` folders.
        classes: the class names, in label order; a class missing from ``root`` is allowed.
        transform: applied to each PIL image (``None``: the image itself).
    """

    def __init__(self, root: str | os.PathLike, classes: list[str], transform=None):
        self._given = list(classes)
        super().__init__(str(root), transform=transform, loader=partial(read_image, folder=root),
                         allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._given, {name: i for i, name in enumerate(self._given)}


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def open_imagefolder(root: str | os.PathLike) -> tuple[Dataset, Dataset | None]:
    """The splits of an image folder, without transforms (samples are PIL images).

    Returns:
        ``(train, test)``; ``test`` is ``None`` for the single-split layout.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no class folder with images; the
            message names ``--data-root`` and the layouts.
        ValueError: one class only, a training class folder without images, or classes of
            the ``val/`` (``test/``) folder that ``train/`` lacks; the message names them.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} does not exist; an image folder is {_LAYOUT}")
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    split = (root / "train").is_dir() and test_dir is not None
    train_dir = root / "train" if split else root
    classes = _class_dirs(train_dir)
    if not classes:
        raise FileNotFoundError(f"--data-root {root} holds no class folders; an image folder is {_LAYOUT}")
    try:
        train = ClassFolder(train_dir, classes)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--data-root {root}: {err}; an image folder is {_LAYOUT}") from None
    if not len(train):
        raise FileNotFoundError(f"--data-root {root}: no images in {train_dir}/<class>/; expected {_LAYOUT}")
    _check_classes(train, train_dir, test_dir if split else None)
    return train, (ClassFolder(test_dir, classes) if split else None)


def _check_classes(train: ClassFolder, train_dir: Path, test_dir: Path | None) -> None:
    """At least two classes, each with images, and no test class unknown to training."""
    if len(train.classes) < 2:
        raise ValueError(
            f"--data-root {train_dir} holds one class folder ({train.classes[0]!r}); a classifier "
            "needs at least two (one sub-folder of images per class)"
        )
    empty = [name for label, name in enumerate(train.classes) if label not in set(train.targets)]
    if empty:
        raise ValueError(f"--data-root: the class folders {empty} of {train_dir} hold no images")
    if test_dir is not None:
        unknown = sorted(set(_class_dirs(test_dir)) - set(train.classes))
        if unknown:
            raise ValueError(
                f"--data-root: the classes {unknown} of {test_dir} have no folder in {train_dir}; "
                "their images would be dropped. Add them to the training split or remove them"
            )


def folder_format(dataset: ClassFolder) -> tuple[int, tuple[int, int]]:
    """``(channels, (height, width))`` of the first image: 1 channel for grayscale modes, else 3."""
    with Image.open(dataset.samples[0][0]) as image:
        return (1 if image.mode in _GRAY_MODES else 3), (image.height, image.width)


def _rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def folder_transform(channels: int, size: tuple[int, int], train: bool, augment: bool = False) -> T.Compose:
    """Mode conversion, resize to ``size``, optional crop/flip, ``ToTensor``, ``Normalize(0.5, 0.5)``.

    Args:
        channels: 1 (grayscale) or 3 (RGB).
        size: ``(height, width)`` of the output.
        train: the training transform (augmented if ``augment``).
        augment: random crop with padding of an eighth of the side, and horizontal flip.

    Returns:
        A ``torchvision.transforms.Compose`` from a PIL image to ``[channels, H, W]`` in [-1, 1].
    """
    steps = [T.Grayscale(1) if channels == 1 else T.Lambda(_rgb), T.Resize(size)]
    if train and augment:
        steps += [T.RandomCrop(size, padding=max(1, min(size) // 8)), T.RandomHorizontalFlip()]
    return T.Compose([*steps, T.ToTensor(), T.Normalize([0.5] * channels, [0.5] * channels)])
