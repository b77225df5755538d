"""DVS128 Gesture recordings as event frames, read from tonic's preprocessed layout.

DVS128 Gesture (Amir et al. 2017): 11 hand and arm gestures by 29 subjects under 5 lighting
conditions, recorded with a DVS128 (128x128). tonic distributes it already cut into one sample per
gesture (``tonic.datasets.DVSGesture``): one ``.npy`` file per sample holding an ``[N, 4]`` array
with columns ``x, y, p, t`` where ``t`` is in **milliseconds**; the file name is the label. This
module reads exactly that layout with numpy as tonic does (there is no ``tonic.io`` reader for
it) and converts ``t`` to µs; tonic's own class is not used because it downloads whenever its
archive ``ibmGestureTrain.tar.gz`` is absent from the folder.

Layout of a root folder (``root`` or ``root/DVSGesture`` as
``tonic.datasets.DVSGesture(save_to=root)`` leaves it):

    ibmGestureTrain/user01_fluorescent/0.npy     # <label>.npy, labels 0..10
    ibmGestureTrain/user01_fluorescent/1.npy
    ...
    ibmGestureTrain/user23_lab/10.npy            # users 1-23 train
    ibmGestureTest/user24_fluorescent/0.npy      # users 24-29 test
    ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tonic

from sparsegrad.data._layout import list_files
from sparsegrad.data.events import EventFrameDataset
from sparsegrad.data.frames import EVENT_DTYPE

__all__ = ["DVSGesture", "read_dvsgesture_npy"]

CLASSES = tuple(tonic.datasets.DVSGesture.classes)  # 11 names, "Hand clapping" ... "Other gestures"
SPLIT_FOLDERS = {True: "ibmGestureTrain", False: "ibmGestureTest"}
_LAYOUT = (
    "  <root>/ibmGestureTrain/<user>_<lighting>/<label>.npy and\n"
    "  <root>/ibmGestureTest/<user>_<lighting>/<label>.npy, each an [N, 4] array of\n"
    "  x, y, p, t (ms)"
    "  with labels 0..10 (tonic's DVSGesture files; <root>/DVSGesture/... works too)"
)


def read_dvsgesture_npy(path: str | os.PathLike) -> np.ndarray:
    """Reads one sample of tonic's DVS128 Gesture files.

    Args:
        path: a ``<label>.npy`` file holding an ``[N, 4]`` array ``x, y, p, t`` with ``t`` in ms.

    Returns:
        Structured array (x, y, t µs, p 0/1) in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable ``.npy`` (e.g. truncated), not an ``[N, 4]``
            array, or holds no events; the message names it.

    Reference:
        tonic ``datasets.DVSGesture.__getitem__`` (same reading and ms -> µs conversion).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DVS128 Gesture sample {path} does not exist")
    try:
        raw = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable .npy file, truncated or corrupt ({err})") from err
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise ValueError(f"{path}: expected an [N, 4] array of x, y, p, t; got shape {raw.shape}")
    if len(raw) == 0:
        raise ValueError(f"{path}: the recording holds no events")
    events = np.empty(len(raw), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"] = raw[:, 0], raw[:, 1], raw[:, 2]
    # ms -> µs in int64 (tonic multiplies in place, in the array's own dtype)
    events["t"] = np.rint(raw[:, 3].astype(np.float64) * 1000).astype(np.int64)
    return events


class DVSGesture(EventFrameDataset):
    """DVS128 Gesture as ``T`` equal-time event frames (official user split).

    Takes [EventFrameDataset][sparsegrad.data.events.EventFrameDataset]'s arguments:
    ``root`` (the folder holding ``ibmGestureTrain/`` and ``ibmGestureTest/``), ``train``
    (users 1-23, ``ibmGestureTrain``, or 24-29, ``ibmGestureTest``), ``T``, ``size``
    (``None`` keeps 128x128), ``transform``, ``cache_dir`` and ``download``
    (``tonic.datasets.DVSGesture(save_to=root)``).

    Shape:
        ``dataset[i]`` is ``(frames, label)``: frames float32 ``[T, 2, 128, 128]`` (or
        ``size``) indexed ``[t, polarity, y, x]``, label an int in 0..10. A DataLoader batches
        them to ``[B, T, 2, H, W]``.

    Raises:
        FileNotFoundError: the split folder is missing or holds no ``.npy`` file; the message
            gives the layout.
        ValueError: a file name is not a label 0..10 (named at construction), or on access a
            sample is truncated or corrupt (file named).

    Reference:
        Amir et al. 2017, "A Low Power, Fully Event-Based Gesture Recognition System", CVPR.
    """

    dataset_name = "dvsgesture"
    title = "DVS128 Gesture"
    sensor_size = (128, 128, 2)
    classes = CLASSES
    layout = _LAYOUT
    root_folders = ("", "DVSGesture")

    def holds_data(self, folder: Path) -> bool:
        split = folder / SPLIT_FOLDERS[self.train]
        return split.is_dir() and any(split.rglob("*.npy"))

    def download(self, root: Path) -> None:
        tonic.datasets.DVSGesture(save_to=str(root), train=self.train)

    def list_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        files = list_files(folder / SPLIT_FOLDERS[self.train], (".npy",))
        targets = []
        for file in files:
            try:
                label = int(file.stem)
            except ValueError:
                label = -1
            if not 0 <= label < len(CLASSES):
                raise ValueError(
                    f"{file}: the file name must be the label 0..{len(CLASSES) - 1} (<label>.npy)"
                )
            targets.append(label)
        return files, targets

    def read_events(self, path: Path) -> np.ndarray:
        return read_dvsgesture_npy(path)
