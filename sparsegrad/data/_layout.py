"""Finding a dataset's files under a user-given root, with errors that say what belongs where."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from sparsegrad._validate import check_bool
from sparsegrad.data.splits import natural_key

__all__ = ["class_files", "list_files", "locate_root"]


def locate_root(
    root: str | os.PathLike,
    candidates: Iterable[str],
    is_valid: Callable[[Path], bool],
    dataset: str,
    layout: str,
) -> Path:
    """Returns the first of ``root/<candidate>`` that holds the dataset.

    The candidates let one root work both for the dataset's own archive layout and for the
    folder that tonic's or torchvision's download code creates (``root/<ClassName>/...``).

    Raises:
        FileNotFoundError: no candidate holds the dataset; the message names ``root``, the
            folders tried and the expected ``layout``.
    """
    root = Path(root).expanduser()
    tried = []
    for sub in candidates:
        folder = root / sub if sub else root
        tried.append(str(folder))
        if folder.is_dir() and is_valid(folder):
            return folder
    state = "does not exist" if not root.exists() else "does not hold the dataset"
    raise FileNotFoundError(
        f"{dataset} root {root} {state} (looked in: {', '.join(tried)}). Expected layout:\n"
        f"{layout}\nNothing is downloaded unless you pass download=True (--download)."
    )


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` (recursively) whose name ends with one of ``suffixes``, in natural
    order of their path relative to ``folder``."""
    files = [p for p in folder.rglob("*") if p.name.endswith(suffixes) and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def class_files(folders: Sequence[Path], suffixes: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    """Every file of each class folder (natural order), labelled by the folder's position;
    a missing folder contributes none."""
    files: list[Path] = []
    targets: list[int] = []
    for label, folder in enumerate(folders):
        found = list_files(folder, suffixes) if folder.is_dir() else []
        files += found
        targets += [label] * len(found)
    return files, targets


def check_train_flag(train) -> bool:
    """``train`` must be a bool (a string such as ``"yes"`` would pick a split silently)."""
    return check_bool("train (True: the training split, False: the test split)", train)
