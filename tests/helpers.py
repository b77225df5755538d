"""Shared test helpers: writers of each dataset's native file format, image folders, loading a
script of ``recipes/``.

Test modules import from here (``from helpers import ...``); no test module imports another.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from sparsegrad.data.frames import EVENT_DTYPE

# ----------------------------------------------------------------------------- native event formats


def make_events(xs, ys, ts, ps) -> np.ndarray:
    events = np.empty(len(xs), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = xs, ys, ts, ps
    return events


def write_aedat2(path: Path, xs, ys, ts, ps) -> Path:
    """jAER AEDAT 2.0: '#' header lines (CRLF), then big-endian uint32 (address, timestamp µs)
    pairs; DVS128 address as tonic decodes it: x in bits 8-14, y in bits 1-7, polarity bit 0."""
    data = np.empty(2 * len(xs), dtype=">u4")
    data[0::2] = [(x << 8) | (y << 1) | p for x, y, p in zip(xs, ys, ps, strict=True)]
    data[1::2] = ts
    header = (
        b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
        b"# Timestamps tick is 1 us\r\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data.tobytes())
    return path


def write_aedat31(path: Path, xs, ys, ts, ps) -> Path:
    """AEDAT 3.1: text header up to '#!END-HEADER', then one polarity packet: a 28-byte header
    (type 1, source, event size 8, ts offset 4, ts overflow, capacity, number, valid) and 8-byte
    little-endian events: data (valid bit 0, polarity bit 1, y bits 2-16, x bits 17-31), time µs."""
    n = len(xs)
    data = np.empty(2 * n, dtype="<u4")
    data[0::2] = [(x << 17) | (y << 2) | (p << 1) | 1 for x, y, p in zip(xs, ys, ps, strict=True)]
    data[1::2] = ts
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    packet = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, n, n, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + packet + data.tobytes())
    return path


def write_atis_bin(path: Path, xs, ys, ts, ps) -> Path:
    """N-MNIST / N-Caltech101 .bin: x, y, then polarity in bit 7 and a 23-bit timestamp (µs)."""
    out = bytearray()
    for x, y, t, p in zip(xs, ys, ts, ps, strict=True):
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def write_gesture_npy(path: Path, xs, ys, ps, t_ms, dtype=np.int64) -> Path:
    """tonic's DVS128 Gesture sample: an [N, 4] array of x, y, p, t (milliseconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack([xs, ys, ps, t_ms], axis=1).astype(dtype))
    return path


def random_events(rng: np.random.Generator, n: int, width: int, height: int):
    """``n`` random events on a ``width`` x ``height`` sensor over 0.3 s: (xs, ys, ts, ps) lists."""
    xs, ys = rng.integers(0, width, n).tolist(), rng.integers(0, height, n).tolist()
    ts, ps = np.sort(rng.integers(0, 300_000, n)).tolist(), rng.integers(0, 2, n).tolist()
    return xs, ys, ts, ps


# ----------------------------------------------------------------------------- image folders


def write_image_folder(root: Path, classes: dict[str, int], *, mode: str = "RGB", size=(12, 10),
                       seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: ``classes[name]`` random PNGs per class, ``size`` = (width, height).

    Each class has its own mean brightness, so a network can tell them apart.
    """
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3}[mode]
    for label, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            level = 40 + 170 * label / max(1, len(classes) - 1)
            pixels = np.clip(rng.normal(level, 20, (size[1], size[0], channels)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(root / name / f"{i}.png")
    return root


def load_script(path: Path):
    """Imports a script of ``recipes/`` or ``bench/`` by file (they are not a package)."""
    import importlib.util
    import sys

    name = f"_script_{Path(path).stem}"
    if name not in sys.modules:  # dataclasses look their module up in sys.modules
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]
