"""What a checkpoint of a training run holds, how it is saved and restored, and where a resume starts.

A checkpoint (files: [save_checkpoint][sparsegrad.train.checkpoint.save_checkpoint]) holds the
unwrapped network's weights and a state dict:

    epoch, seed, optimizer, scheduler, history (one row per epoch), num_processes, config,
    versions, ranks: one entry per process with its global RNG states, MSG generator state and
    statistics, TWO state (factors, epoch count, per-rank counts), weights fingerprint, factors

Restoring sets the RNG states last, so nothing draws random numbers between the restore and
the next epoch; the loaders' order is a function of (seed, epoch). Resumed training therefore
equals uninterrupted training bit for bit on CPU.

Reference: docs/design.md §6 (engine, run folder, exact resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate.utils import gather_object

import sparsegrad
from sparsegrad.train.checkpoint import (
    checkpoint_epoch,
    fingerprint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_path,
)

if TYPE_CHECKING:
    from sparsegrad.train.fit import Session

__all__ = ["resume_points", "restore_state", "save_state", "truncate_after"]


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _two_state(session: Session) -> dict:
    return {k: v for k, v in session.head.state_dict().items() if not k.startswith("model.")}


def _rank_state(session: Session, weights: Mapping[str, torch.Tensor]) -> list[dict]:
    mine = _to_cpu({"rng": rng_state(), "msg": session.msg.state_dict() if session.msg is not None else None,
                    "two": _two_state(session), "weights_sha256": fingerprint(weights),
                    "factors": session.head.factors.tolist()})
    return gather_object([mine]) if session.accelerator.num_processes > 1 else [mine]


def save_state(session: Session, folder: Path, epoch: int, history: list[dict]) -> None:
    """Writes the checkpoint of ``epoch`` (every process takes part; the main one writes)."""
    acc, cfg = session.accelerator, session.cfg
    weights = acc.unwrap_model(session.net).state_dict()
    ranks = _rank_state(session, weights)
    if len({r["weights_sha256"] for r in ranks}) > 1 or len({tuple(r["factors"]) for r in ranks}) > 1:
        acc.print(f"warning: after epoch {epoch} the processes hold different weights or TWO factors")
    if not acc.is_main_process:
        return
    state = {"epoch": epoch, "seed": session.seed, "optimizer": session.optimizer.state_dict(),
             "scheduler": session.scheduler.state_dict(), "ranks": ranks, "history": history,
             "num_processes": acc.num_processes, "config": cfg.jsonable(),
             "versions": {"sparsegrad": sparsegrad.__version__, "torch": str(torch.__version__)}}
    save_checkpoint(folder, epoch, weights, state, keep=cfg.keep_checkpoints,
                    metadata={"model": cfg.model, "seed": str(session.seed)})


def restore_state(session: Session, path: Path) -> tuple[int, list[dict]]:
    """Loads the checkpoint at ``path`` into ``session``; returns ``(epoch, history)``.

    Raises:
        RuntimeError: the checkpoint's TWO state does not fit the head.
    """
    acc = session.accelerator
    weights, state = load_checkpoint(path)
    acc.unwrap_model(session.net).load_state_dict(weights)
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    _replan(session.scheduler, session.cfg.epochs)
    ranks = state["ranks"]
    if len(ranks) != acc.num_processes:
        acc.print(f"warning: the checkpoint was written by {len(ranks)} process(es), resuming on "
                  f"{acc.num_processes}: the run continues, but not bit for bit")
    mine = ranks[acc.process_index % len(ranks)]
    missing, unexpected = session.head.load_state_dict(mine["two"], strict=False)
    if unexpected or any(not k.startswith("model.") for k in missing):
        raise RuntimeError(f"TWO state of {path} does not fit: missing {missing}, unexpected {unexpected}")
    if session.msg is not None:
        if mine["msg"] is None:
            acc.print("warning: MSG is on now but was off in the checkpoint; its masks start afresh")
        else:
            session.msg.load_state_dict(mine["msg"])
    set_rng_state(mine["rng"])  # last: nothing may draw random numbers before training resumes
    return int(state["epoch"]), list(state["history"])


def _replan(scheduler, epochs: int) -> None:
    """A run extended past its planned epochs follows the cosine over the new total from here:
    epoch ``e`` trains at ``base_lr * (1 + cos(pi * (e - 1) / epochs)) / 2`` (never at 0)."""
    inner = getattr(scheduler, "scheduler", scheduler)  # an Accelerate wrapper holds the torch one
    if inner.T_max == epochs:
        return
    inner.T_max = epochs
    for group, lr in zip(inner.optimizer.param_groups, inner._get_closed_form_lr()):
        group["lr"] = lr
    inner._last_lr = [group["lr"] for group in inner.optimizer.param_groups]


def _run_folder(path: Path) -> tuple[Path, int | None]:
    """(run folder, seed named by a checkpoint file or None)."""
    if path.is_file():
        checkpoint_epoch(path)  # validates the name
        seed_dir = path.parent.parent
        if path.parent.name != "checkpoints" or not seed_dir.name.startswith("seed-"):
            raise ValueError(f"--resume {path}: expected <run>/seed-<s>/checkpoints/state-e<N>.pt")
        return seed_dir.parent, int(seed_dir.name[5:])
    if path.name == "checkpoints":
        return path.parent.parent, None
    if path.name.startswith("seed-") and not (path / "config.json").exists():
        return path.parent, None
    return path, None


def resume_points(path: Path, seeds: tuple[int, ...], epochs: int) -> tuple[Path, dict[int, Path | None], int | None]:
    """Where each seed resumes: ``(run folder, {seed: state file or None}, seed named by a file)``.

    ``path`` is a run folder, a seed folder, its checkpoints folder or one state file.

    Raises:
        FileNotFoundError: ``path`` is missing or not inside a run folder.
        ValueError: a state file of a seed not among ``seeds``, or a checkpoint past ``epochs``
            (the message names both epoch counts).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--resume {path}: no such file or folder")
    run_dir, explicit_seed = _run_folder(path)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: {run_dir} is not a run folder (no config.json)")
    if explicit_seed is not None and explicit_seed not in seeds:
        raise ValueError(f"--resume {path} is a checkpoint of seed {explicit_seed}, not among --seeds {seeds}")
    points = {s: latest_checkpoint(run_dir / f"seed-{s}" / "checkpoints") for s in seeds}
    if explicit_seed is not None:
        points[explicit_seed] = path
    for point in points.values():
        if point is not None and checkpoint_epoch(point) > epochs:
            raise ValueError(f"--epochs {epochs} is fewer than the {checkpoint_epoch(point)} epochs already "
                             f"trained in {point}; resume with --epochs {checkpoint_epoch(point)} or more")
    return run_dir, points, explicit_seed


def truncate_after(seed_dir: Path, state_path: Path) -> None:
    """Resuming from an older checkpoint: drop the later ones and the seed's result."""
    epoch = checkpoint_epoch(state_path)
    for later in list_checkpoints(seed_dir / "checkpoints"):
        if checkpoint_epoch(later) > epoch:
            weights_path(later).unlink(missing_ok=True)
            later.unlink(missing_ok=True)
    (seed_dir / "result.json").unlink(missing_ok=True)
