"""Event streams to fixed-length frame sequences.

Every neuromorphic dataset of the package goes the same way (docs/design.md §5):

    recording --tonic reader--> events (x, y, t µs, p)
              --events_to_frames--> T equal-time frames of event counts  [T, 2, H, W]
              --resize_frames (optional, bilinear)--> [T, 2, h, w] float32
              --frame cache (optional)--> on disk, keyed by every parameter
              --transform (optional, e.g. train augmentation, never cached)--> sample

[EventFrameDataset][sparsegrad.data.events.EventFrameDataset] implements that pipeline once;
a dataset module only finds its recordings and labels and reads one recording.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from sparsegrad._validate import check_size, check_timesteps

__all__ = ["EVENT_DTYPE", "FRAMING", "check_in_sensor", "events_to_frames", "resize_frames"]

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
"""Structured dtype the readers of this package return: x, y (pixels), t (µs), p (0/1)."""

FRAMING = "equal-time-bins/v1"
"""Names the framing rule of [events_to_frames][sparsegrad.data.frames.events_to_frames]; part of every cache key, so a change of the
rule (bump the version) never reuses frames cached under the old one."""

def events_to_frames(
    events: np.ndarray,
    T: int,
    sensor_size: tuple[int, int, int],
    *,
    source: str | os.PathLike | None = None,
) -> np.ndarray:
    """Sums events into ``T`` equal-time frames spanning the whole recording.

    The recording's span ``t_last - t_first`` is cut into ``T`` windows of
    ``span // T + 1`` µs starting at ``t_first`` (the last window ends after ``t_last``), and
    each event is counted in its window, channel and pixel. So every event lands in exactly one
    frame (``frames.sum() == len(events)``) and there are always exactly ``T`` frames, also for
    a single event or a recording shorter than ``T`` µs (then windows are 1 µs wide and the
    last frames are empty). Events need not be sorted by time.

    Args:
        events: structured array with fields ``x``, ``y``, ``t`` (integer µs) and ``p``.
        T: number of frames.
        sensor_size: ``(width, height, polarities)`` of the recording's sensor, e.g.
            ``(34, 34, 2)`` for N-MNIST (each dataset class has it as ``sensor_size``).
        source: the file the events came from, named in error messages.

    Returns:
        int32 event counts indexed ``[t, channel, y, x]``. With two polarities, channel 0 holds
        OFF events (``p`` = 0, False or -1) and channel 1 ON events (``p`` = 1 or True). int32
        cannot overflow for any recording of fewer than 2**31 events (tonic's frames are int16
        and silently wrap past 32,767 events in one pixel and frame).

    Shape:
        ``[T, polarities, height, width]``, e.g. ``[T, 2, 34, 34]`` for N-MNIST.

    Raises:
        ValueError: ``T`` is not a positive int, an event lies outside the sensor, the
            polarities are coded neither 0/1 nor -1/1, or timestamps are not integers; the
            message names ``source``.

    Reference:
        tonic ``ToFrame(n_time_bins=T)`` / ``functional.to_frame_numpy``, whose bins of
        ``span // T`` µs drop the last event and the remainder of the division; this is the
        same framing with windows one µs wider so that nothing is dropped.
    """
    T = check_timesteps("T", T)
    width, height, n_pol = (int(s) for s in sensor_size)
    where = f"{source}: " if source is not None else ""
    if len(events) == 0:
        return np.zeros((T, n_pol, height, width), dtype=np.int32)
    if len(events) >= 2**31:
        raise ValueError(f"{where}{len(events)} events could overflow int32 frame counts")

    x, y = check_in_sensor(events, width, height, where)
    channel = _polarity_channel(np.asarray(events["p"]), n_pol, where)

    t = np.asarray(events["t"])
    if t.dtype.kind == "f" and not (np.all(np.isfinite(t)) and np.array_equal(t, np.round(t))):
        raise ValueError(f"{where}timestamps must be integer microseconds")
    t = t.astype(np.int64)
    t0 = int(t.min())
    window = (int(t.max()) - t0) // T + 1
    bins = (t - t0) // window  # in 0..T-1 since span < T * window

    flat = ((bins * n_pol + channel) * height + y) * width + x
    counts = np.bincount(flat, minlength=T * n_pol * height * width)
    return counts.astype(np.int32).reshape(T, n_pol, height, width)


def _polarity_channel(p: np.ndarray, n_pol: int, where: str) -> np.ndarray:
    """Channel index of each event: 0 for OFF (0, False, -1), 1 for ON (1, True)."""
    if n_pol == 1:
        return np.zeros(len(p), dtype=np.int64)
    if n_pol != 2:
        raise ValueError(f"{where}sensors with {n_pol} polarity channels are not supported")
    values = set(np.unique(p).astype(np.int64).tolist())
    if not (values <= {0, 1} or values <= {-1, 1}):
        raise ValueError(
            f"{where}polarities must be coded 0/1 or -1/1, got the values {sorted(values)[:6]}"
        )
    return (p > 0).astype(np.int64)


def check_in_sensor(events: np.ndarray, width: int, height: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The events' ``x`` and ``y`` as int64 arrays, after checking they lie on the sensor.

    Raises:
        ValueError: an event outside ``[0, width) x [0, height)``; the message starts with
            ``where`` (the file) and names the first such event.
    """
    x = np.asarray(events["x"]).astype(np.int64)
    y = np.asarray(events["y"]).astype(np.int64)
    bad = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}{int(bad.sum())} events lie outside the {width}x{height} sensor, the first "
            f"(event {i}) at x={int(x[i])}, y={int(y[i])}; the file is corrupt or not a "
            "recording of this dataset"
        )
    return x, y


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resizes every frame (``F.interpolate``, ``align_corners=False``).

    Args:
        frames: event frames; any dtype (cast to float32).
        size: output ``(height, width)``, or one int for a square.

    Returns:
        float32 frames. Bilinear resizing does not preserve the event count.

    Shape:
        ``[T, C, H, W] -> [T, C, height, width]``.

    Reference:
        TET / spikingjelly practice for CIFAR10-DVS: 128x128 frames resized to 48x48 (docs/design.md §5).
    """
    if frames.dim() != 4:
        raise ValueError(f"expected frames [T, C, H, W], got shape {tuple(frames.shape)}")
    size = check_size("size", size)
    return F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False)
