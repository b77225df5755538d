"""CIFAR10-DVS recordings as event frames, read from a local folder through tonic's readers.

CIFAR10-DVS (Li et al. 2017) holds 10,000 DVS128 recordings (1,000 per class) of moving
CIFAR-10 images. The files come in two encodings, both read by tonic:

- the original release (figshare 4724671): ``.aedat`` files written by jAER in **AEDAT 2.0**
  (``#!AER-DAT2.0`` header, then big-endian ``uint32`` address / timestamp pairs, DVS128
  addresses), read with ``tonic.io.get_aer_events_from_file`` and decoded with the bit layout of
  ``tonic.io.read_dvs_128``. Files declaring ``#!AER-DAT3.1`` (polarity packets of 8-byte
  events) are decoded with the layout of ``tonic.io.read_dvs_ibm``. (Those two tonic functions
  themselves fail up to tonic 1.7, neuromorphs/tonic#302; on a later tonic they are called,
  see ``sparsegrad.data._tonic``.)
- tonic's re-encoding (what ``tonic.datasets.CIFAR10DVS`` downloads, so what ``download=True``
  gives): ``.aedat4`` files, read with ``tonic.io.read_aedat4``, which needs the ``aedat``
  package.

AEDAT 2.0 coordinates and polarity are tonic's: ``x = (address >> 8) & 127``,
``y = (address >> 1) & 127``, ``p = address & 1``. (spikingjelly's frames are these rotated by
180 degrees with the two polarity channels swapped; it makes no difference to training.)

Layout of a root folder (``root`` itself, or ``root/CIFAR10DVS`` as tonic's download leaves it):

    airplane/*.aedat     # or *.aedat4, any file names, e.g. cifar10_airplane_0.aedat
    automobile/*.aedat
    ...                  # one folder per class: airplane automobile bird cat deer dog frog
    truck/*.aedat        # horse ship truck

There is no official split: [split_per_class][sparsegrad.data.splits.split_per_class] takes the first 90 %
of each class in sorted file order (digits compared as numbers) for training, the rest for test.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import tonic

from sparsegrad.data._layout import class_files
from sparsegrad.data._tonic import AEDAT_HEADER_UNPACK
from sparsegrad.data.events import PerClassSplitDataset
from sparsegrad.data.frames import EVENT_DTYPE

__all__ = ["CIFAR10DVS", "read_cifar10dvs"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SUFFIXES = (".aedat", ".aedat4")
_LAYOUT = (
    "  <root>/<class>/*.aedat  (original AEDAT 2.0 release) or *.aedat4 (tonic's download)\n"
    f"  with one folder per class: {' '.join(CLASSES)}\n"
    "  (<root>/CIFAR10DVS/<class>/..., as tonic.datasets.CIFAR10DVS(save_to=root) leaves it,\n"
    "  works too)"
)


def _aedat_version(path: Path) -> tuple[float, int]:
    """Reads the ``#!AER-DAT<version>`` line and finds where the binary data starts."""
    with open(path, "rb") as fh:
        first = fh.readline()
        if not first.startswith(b"#!AER-DAT"):
            raise ValueError(
                f"{path}: not an AEDAT file (the first line is not '#!AER-DAT<version>')"
            )
        try:
            version = float(first[len(b"#!AER-DAT") :].strip().decode())
        except ValueError:
            raise ValueError(f"{path}: cannot read the AEDAT version from {first!r}") from None
        fh.seek(0)
        while fh.peek(1)[:1] == b"#":
            if fh.readline().startswith(b"#!END-HEADER"):
                break
        return version, fh.tell()


def _check_aedat3_packets(path: Path, start: int) -> None:
    """AEDAT 3.x: every packet must be a polarity packet (type 1) of 8-byte events, and the
    packets must tile the file; tonic's reader assumes both without checking."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        while pos < size:
            header = fh.read(28)
            if len(header) < 28:
                raise ValueError(f"{path}: truncated AEDAT 3 packet header at byte {pos}")
            event_type, _, event_size = struct.unpack("<hhi", header[:8])
            capacity = struct.unpack("<i", header[20:24])[0]
            if event_type != 1 or event_size != 8:
                raise ValueError(
                    f"{path}: AEDAT 3 packet at byte {pos} has event type {event_type} and size "
                    f"{event_size}; only polarity events (type 1, 8 bytes) are supported"
                )
            pos += 28 + capacity * event_size
            if pos > size:
                raise ValueError(f"{path}: truncated (the AEDAT 3 packet ends past the file)")
            fh.seek(pos)


def _read_aedat(path: Path, version: float, start: int) -> np.ndarray:
    """AEDAT 2 (DVS128 addresses, tonic ``read_dvs_128``) or 3.1 (``read_dvs_ibm``) events."""
    if not AEDAT_HEADER_UNPACK.present:
        _, raw = (tonic.io.read_dvs_128 if version < 3 else tonic.io.read_dvs_ibm)(str(path))
        events = np.empty(len(raw), dtype=EVENT_DTYPE)
        for name in EVENT_DTYPE.names:
            events[name] = raw[name]
        return events
    # The tonic releases with AEDAT_HEADER_UNPACK: call the reader those two functions wrap
    # and decode the addresses with their bit layouts.
    try:
        raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    except Exception as err:
        raise ValueError(f"{path}: tonic could not read it ({type(err).__name__}: {err})") from err
    address = raw["address"].astype(np.int64)
    events = np.empty(len(raw), dtype=EVENT_DTYPE)
    events["t"] = raw["timeStamp"]
    if version < 3:  # DVS128 address (tonic read_dvs_128)
        events["x"], events["y"] = (address >> 8) & 0x7F, (address >> 1) & 0x7F
        events["p"] = address & 1
    else:  # AEDAT 3.1 polarity event (tonic read_dvs_ibm)
        events["x"], events["y"] = (address >> 17) & 0x1FFF, (address >> 2) & 0x1FFF
        events["p"] = (address >> 1) & 1
    return events


def read_cifar10dvs(path: str | os.PathLike) -> np.ndarray:
    """Reads one CIFAR10-DVS recording (``.aedat`` AEDAT 2.0/3.1, or ``.aedat4``) through tonic.

    Args:
        path: the recording.

    Returns:
        Structured array (x, y, t µs, p 0/1) in file order, x and y in 0..127.

    Raises:
        FileNotFoundError: the file does not exist.
        ImportError: an ``.aedat4`` file and the ``aedat`` package (tonic's AEDAT 4 decoder) is
            not installed.
        ValueError: the file is not AEDAT, is truncated or corrupt, or holds no events; the
            message names it.

    Reference:
        Li et al. 2017, "CIFAR10-DVS: An Event-Stream Dataset for Object Classification",
        Front. Neurosci. 11:309; tonic ``io.get_aer_events_from_file`` with the address layouts
        of ``io.read_dvs_128`` (AEDAT 2) and ``io.read_dvs_ibm`` (AEDAT 3.1); ``io.read_aedat4``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR10-DVS recording {path} does not exist")
    if path.suffix == ".aedat4":
        try:
            import aedat  # noqa: F401  (tonic.io.read_aedat4 imports it lazily)
        except ImportError:
            raise ImportError(
                f"{path}: reading .aedat4 files (tonic's CIFAR10-DVS download) needs the 'aedat' "
                "package, tonic's AEDAT 4 decoder: pip install aedat"
            ) from None
        try:
            raw = tonic.io.read_aedat4(str(path))
        except Exception as err:
            raise ValueError(f"{path}: not a readable AEDAT 4 file ({err})") from err
        events = np.empty(len(raw), dtype=EVENT_DTYPE)
        for ours, theirs in zip("txyp", raw.dtype.names, strict=True):
            events[ours] = raw[theirs]  # aedat's fields are t, x, y, on (tonic renames them so)
    else:
        version, start = _aedat_version(path)
        if 2 <= version < 3:
            if (path.stat().st_size - start) % 8:
                raise ValueError(
                    f"{path}: truncated (AEDAT 2 data is 8 bytes per event, "
                    f"{path.stat().st_size - start} bytes is not a multiple)"
                )
        elif 3 <= version < 4:
            _check_aedat3_packets(path, start)
        else:
            raise ValueError(f"{path}: AEDAT version {version} is not supported (2.x or 3.x)")
        events = _read_aedat(path, version, start)
    if len(events) == 0:
        raise ValueError(f"{path}: the recording holds no events")
    return events


class CIFAR10DVS(PerClassSplitDataset):
    """CIFAR10-DVS as ``T`` equal-time event frames, resized to 48x48, split 9:1 per class.

    Takes [PerClassSplitDataset][sparsegrad.data.events.PerClassSplitDataset]'s arguments:
    ``root`` (the folder holding the class folders, see the module docstring), ``train``,
    ``T`` (10 in the paper), ``size`` (48 in the paper; ``None`` keeps 128x128),
    ``transform`` (e.g. [event_augmentation][sparsegrad.data.transforms.event_augmentation],
    which ``build_dataset`` adds for the training split), ``cache_dir``, ``train_fraction``
    and ``download`` (tonic's ``.aedat4`` version into ``root/CIFAR10DVS`` with
    ``tonic.datasets.CIFAR10DVS``; reading it needs ``aedat``).

    Shape:
        ``dataset[i]`` is ``(frames, label)``: frames float32 ``[T, 2, size, size]`` indexed
        ``[t, polarity, y, x]``, label an int in 0..9 (``CLASSES`` order). A DataLoader batches
        them to ``[B, T, 2, size, size]``.

    Raises:
        FileNotFoundError: no class folders under ``root`` (the message gives the layout), or a
            class folder is missing or empty.
        ValueError: on access, a recording is truncated or corrupt (the file is named).

    Reference:
        Li et al. 2017, "CIFAR10-DVS: An Event-Stream Dataset for Object Classification",
        Front. Neurosci. 11:309. Split, size and augmentation: docs/design.md §5.
    """

    dataset_name = "cifar10dvs"
    title = "CIFAR10-DVS"
    sensor_size, classes = (128, 128, 2), CLASSES  # recorded with a DVS128
    layout = _LAYOUT
    root_folders = ("", "CIFAR10DVS")

    def holds_data(self, folder: Path) -> bool:
        return any((folder / name).is_dir() for name in CLASSES)

    def download(self, root: Path) -> None:
        tonic.datasets.CIFAR10DVS(save_to=str(root))

    def list_all_recordings(self, folder: Path) -> tuple[list[Path], list[int]]:
        files, targets = class_files([folder / name for name in CLASSES], SUFFIXES)
        empty = [name for label, name in enumerate(CLASSES) if label not in set(targets)]
        if empty:
            raise FileNotFoundError(
                f"CIFAR10-DVS class folder {folder / empty[0]} is missing or holds no .aedat / "
                f".aedat4 files; expected\n{_LAYOUT}"
            )
        return files, targets

    def read_events(self, path: Path) -> np.ndarray:
        return read_cifar10dvs(path)
