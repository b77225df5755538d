"""The ATIS ``.bin`` event format of N-MNIST and N-Caltech101, read through tonic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tonic

from sparsegrad.data.frames import EVENT_DTYPE, check_in_sensor

__all__ = ["BYTES_PER_EVENT", "read_events"]

BYTES_PER_EVENT = 5
"""x, y, then polarity in bit 7 and a 23-bit timestamp (µs)."""


def read_events(
    path: str | os.PathLike,
    sensor_size: tuple[int, int, int],
    *,
    check_order: bool = True,
) -> np.ndarray:
    """Reads one ATIS ``.bin`` recording (N-MNIST, N-Caltech101) with ``tonic.io.read_mnist_file``.

    The format is 5 bytes per event: x, y, then polarity in bit 7 and a 23-bit timestamp in
    microseconds. tonic drops the format's timestamp-overflow markers (y = 240).

    Args:
        path: a ``.bin`` recording.
        sensor_size: ``(width, height, polarities)``; coordinates must lie inside it
            (``(34, 34, 2)`` for N-MNIST, ``(240, 180, 2)`` for N-Caltech101).
        check_order: reject timestamps that go backwards (framing does not need sorted events;
            the check guards N-MNIST's files, which are all sorted).

    Returns:
        Structured array with fields ``x``, ``y``, ``t`` (µs), ``p`` in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated (size not a multiple of 5 bytes), holds no events, has
            coordinates outside the sensor or (with ``check_order``) timestamps going backwards;
            the message names it.

    Reference:
        Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
        using saccades", Front. Neurosci. 9:437 (the format); tonic ``io.read_mnist_file``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path} does not exist")
    size = path.stat().st_size
    if size % BYTES_PER_EVENT:
        raise ValueError(
            f"{path}: {size} bytes is not a multiple of {BYTES_PER_EVENT} (bytes per ATIS "
            "event); the file is truncated or not an N-MNIST / N-Caltech101 .bin recording"
        )
    events = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    if len(events) == 0:
        raise ValueError(f"{path}: the recording holds no events")
    check_in_sensor(events, sensor_size[0], sensor_size[1], f"{path}: ")
    if check_order and np.any(np.diff(events["t"]) < 0):
        raise ValueError(f"{path}: timestamps go backwards; the file is corrupt")
    return events
