"""Checkpoints: safetensors weights beside a state file, both written atomically.

A checkpoint of epoch ``e`` is two files in one folder:

    model-e0012.safetensors   # the network's state_dict (unwrapped), metadata {"epoch": "12"}
    state-e0012.pt            # everything else: optimizer, scheduler, RNGs, MSG, TWO, history

Each file is written to a temporary name in the same folder, flushed to disk and renamed
over its final name (``os.replace``), weights first. The state file is the commit: a
checkpoint exists once its state file does, so a crash at any moment leaves either the
previous checkpoint or the new one, never half of one. Older checkpoints are pruned after
the new state file is in place.

State files hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``; NumPy's RNG state is stored as a tensor for that reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from sparsegrad.train._pause import pause_point

__all__ = [
    "CheckpointWriteError",
    "DamagedCheckpointError",
    "checkpoint_epoch",
    "fingerprint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "weights_path",
]

_STATE = re.compile(r"^state-e(\d+)\.pt$")


class DamagedCheckpointError(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated or corrupt)."""


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (disk full, permissions, an I/O error); the
    message says why, where, and which checkpoint is the last good one. ``errno`` is the
    underlying error's, when it had one."""


def weights_path(state_path: str | os.PathLike) -> Path:
    """The weights file that belongs to a state file (``state-eN.pt`` -> ``model-eN.safetensors``)."""
    state_path = Path(state_path)
    return state_path.with_name(f"model-e{checkpoint_epoch(state_path):04d}.safetensors")


def checkpoint_epoch(state_path: str | os.PathLike) -> int:
    """The epoch a state file was written after, from its name.

    Raises:
        ValueError: the name is not ``state-e<epoch>.pt``.
    """
    match = _STATE.match(Path(state_path).name)
    if match is None:
        raise ValueError(f"{state_path} is not a checkpoint state file (state-e<epoch>.pt)")
    return int(match.group(1))


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``folder`` (state file and its weights), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    states = [p for p in folder.iterdir() if _STATE.match(p.name) and weights_path(p).is_file()]
    return sorted(states, key=checkpoint_epoch)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The state file of the newest complete checkpoint in ``folder``, or ``None``."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _replace_atomically(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    folder: str | os.PathLike,
    epoch: int,
    weights: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    *,
    keep: int = 1,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Writes the checkpoint of ``epoch`` and prunes all but the newest ``keep``.

    Call it from one process (the main one).

    Args:
        folder: the checkpoint folder (created if missing).
        epoch: completed epochs (names the files).
        weights: the unwrapped network's ``state_dict``; saved as float tensors on the CPU.
        state: the rest (see the module docstring); saved with ``torch.save``.
        keep: complete checkpoints to keep (``>= 1``); older ones are deleted.
        metadata: extra string metadata for the safetensors header.

    Returns:
        The state file's path.

    Raises:
        ValueError: ``keep < 1``.
        CheckpointWriteError: a write failed (e.g. the disk is full); the earlier checkpoints
            are left whole, no temporary file is left, and the message names the last good one.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / f"state-e{epoch:04d}.pt"
    model_path = weights_path(state_path)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
    last_good = latest_checkpoint(folder)
    tmp = folder / f".{model_path.name}.tmp"
    try:
        save_file(tensors, str(tmp), metadata={"format": "pt", "epoch": str(epoch), **(metadata or {})})
        _replace_atomically(tmp, model_path)
        tmp = folder / f".{state_path.name}.tmp"
        torch.save(dict(state), tmp)
        pause_point("save")
        _replace_atomically(tmp, state_path)
    except (OSError, RuntimeError) as err:  # torch's writer raises RuntimeError("... iostream error")
        tmp.unlink(missing_ok=True)
        if last_good is None or checkpoint_epoch(last_good) != epoch:
            model_path.unlink(missing_ok=True)  # weights without their state file are no checkpoint
        raise _write_failed(state_path, err, last_good) from err
    for old in list_checkpoints(folder)[:-keep]:
        weights_path(old).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return state_path


def _write_failed(state_path: Path, err: Exception, last_good: Path | None) -> CheckpointWriteError:
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        why = "No space left on device"
    else:
        why = f"{type(err).__name__}: {err}"
        if code is None:  # torch's C++ writer says only "iostream error": name the likely cause
            free = shutil.disk_usage(state_path.parent).free
            why += f" ({free / 2**20:.0f} MiB free on that disk; a full disk fails this way)"
    last = (f"the last good checkpoint is {last_good}" if last_good is not None
            else "no earlier checkpoint of this seed exists")
    failed = CheckpointWriteError(f"could not write the checkpoint of epoch {checkpoint_epoch(state_path)} to "
                                  f"{state_path.parent}: {why}; {last}; free space and resume the run with --resume")
    failed.errno = code
    return failed


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads a checkpoint: ``path`` is a state file or a folder (its newest checkpoint).

    Returns:
        ``(weights, state)``: the network's ``state_dict`` (CPU tensors) and the state dict.

    Raises:
        FileNotFoundError: no complete checkpoint at ``path``.
        DamagedCheckpointError: a file of the checkpoint is truncated or corrupt; the message
            names it and the newest earlier checkpoint in the folder, if any.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint (state-e<epoch>.pt with its model-e<epoch>.safetensors) in {path}")
        path = found
    model_path = weights_path(path)
    if not path.is_file() or not model_path.is_file():
        raise FileNotFoundError(f"incomplete checkpoint: need both {path} and {model_path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises OSError, RuntimeError, EOFError, UnpicklingError...
        raise _damaged(path, path, err) from err
    try:
        weights = load_file(str(model_path), device="cpu")
    except Exception as err:  # SafetensorError and OSError
        raise _damaged(model_path, path, err) from err
    return weights, state


def _damaged(file: Path, state_path: Path, err: Exception) -> DamagedCheckpointError:
    epoch = checkpoint_epoch(state_path)
    earlier = [p for p in list_checkpoints(state_path.parent) if checkpoint_epoch(p) < epoch]
    hint = (f"the earlier checkpoint {earlier[-1]} can be used instead (--resume {earlier[-1]})" if earlier
            else "no earlier checkpoint is left in its folder (--keep-checkpoints N keeps N)")
    return DamagedCheckpointError(
        f"checkpoint file {file} is damaged (truncated or corrupt: {type(err).__name__}: {err}); {hint}")


def fingerprint(tensors: Mapping[str, torch.Tensor] | torch.Tensor) -> str:
    """SHA-256 of tensors' names, dtypes, shapes and bytes: equal iff bitwise equal."""
    items = [("", tensors)] if isinstance(tensors, torch.Tensor) else sorted(tensors.items())
    digest = hashlib.sha256()
    for name, tensor in items:
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's, torch's and (if initialised) CUDA's global RNGs."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(words), gauss],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restores what [rng_state][sparsegrad.train.checkpoint.rng_state] returned."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
