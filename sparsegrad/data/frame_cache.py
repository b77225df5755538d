"""The on-disk frame cache: one folder per framing, one file per sample, shared safely by
several processes.

The files are tonic's (``tonic.cached_dataset.save_to_disk_cache`` / ``load_from_disk_cache``,
one HDF5 file ``<index>_0.hdf5`` per sample, as ``tonic.DiskCachedDataset`` names them). What
``DiskCachedDataset`` itself does not do is let two runs share a cache folder: it writes each
file in place, so a second process reading or writing the same sample at that moment fails
with HDF5's "unable to lock file" (no upstream issue found). Here every process writes a
sample to a file of its own and renames it into place (``os.replace``, atomic on one file
system), so a reader sees a complete file or none, and two writers of one sample both
succeed with identical frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tonic.cached_dataset import load_from_disk_cache, save_to_disk_cache

__all__ = ["FrameCache", "frame_cache_path"]


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


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a file of this process, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FrameCache:
    """Frames of each sample, cached in ``folder`` under tonic's file format.

    Args:
        folder: the cache folder of one framing
            ([frame_cache_path][sparsegrad.data.frame_cache.frame_cache_path]); created if
            missing, with a ``params.json`` that says what the frames are.
        params: the framing parameters, written to ``params.json``.
    """

    def __init__(self, folder: str | os.PathLike, params: Mapping[str, object]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "params.json"
        if not info.exists():
            text = json.dumps(params, indent=1, sort_keys=True, default=str) + "\n"
            _write_atomically(info, lambda tmp: tmp.write_text(text))

    def path(self, index: int) -> Path:
        """The file of sample ``index`` (``tonic.DiskCachedDataset``'s name for it)."""
        return self.folder / f"{index}_0.hdf5"

    def get(self, index: int, target: int, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached frames of sample ``index``, made with ``make()`` and stored on first use.

        A file that cannot be read (left half-written by an older version, or damaged) is
        made again and replaced.
        """
        path = self.path(index)
        try:
            return load_from_disk_cache(path)[0]
        except OSError:  # missing (FileNotFoundError) or unreadable: make it (again)
            data = make()
        _write_atomically(path, lambda tmp: save_to_disk_cache(data, target, tmp))
        return data
