"""What a checkpoint of a training run holds, and how it is saved and restored.

A checkpoint (files: [save_checkpoint][sparsegrad.train.checkpoint.save_checkpoint]) holds the
unwrapped network's weights and a state dict:

    epoch, seed, optimizer, scheduler, history (one EpochRecord row per epoch), num_processes, config,
    versions, ranks: one entry per process with its global RNG states, MSG generator state and
    statistics, TWO state (factors, epoch count, per-rank counts), weights fingerprint, factors

Restoring sets the RNG states last, so nothing draws random numbers between the restore and
the next epoch; the loaders' order is a function of (seed, epoch). Resumed training therefore
equals uninterrupted training bit for bit on CPU.

Reference: docs/design.md §6 (engine, run folder, exact resume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from accelerate.utils import gather_object

import sparsegrad
from sparsegrad.train.checkpoint import fingerprint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from sparsegrad.train.record import EpochRecord
from sparsegrad.train.schedule import replan
from sparsegrad.train.session import Session

__all__ = ["restore_state", "save_state"]


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


def save_state(session: Session, folder: Path, epoch: int, history: Sequence[EpochRecord]) -> None:
    """Writes the checkpoint of ``epoch`` (every process takes part; the main one writes)."""
    acc, cfg = session.accelerator, session.cfg
    weights = acc.unwrap_model(session.net).state_dict()
    ranks = _rank_state(session, weights)
    if len({r["weights_sha256"] for r in ranks}) > 1 or len({tuple(r["factors"]) for r in ranks}) > 1:
        acc.print(f"warning: after epoch {epoch} the processes hold different weights or TWO factors")
    if not acc.is_main_process:
        return
    state = {"epoch": epoch, "seed": session.seed, "optimizer": session.optimizer.state_dict(),
             "scheduler": session.scheduler.state_dict(), "ranks": ranks, "history": [r.row() for r in history],
             "num_processes": acc.num_processes, "config": cfg.jsonable(),
             "versions": {"sparsegrad": sparsegrad.__version__, "torch": str(torch.__version__)}}
    save_checkpoint(folder, epoch, weights, state, keep=cfg.keep_checkpoints,
                    metadata={"model": cfg.model, "seed": str(session.seed)})


def _lambda_state(saved: dict) -> dict:
    """A scheduler state for the cosine ``LambdaLR``; checkpoints written before it held
    ``CosineAnnealingLR``'s (``T_max``), whose rates are the same cosine."""
    if "lr_lambdas" in saved or "T_max" not in saved:
        return saved
    rest = {k: v for k, v in saved.items() if k not in ("T_max", "eta_min")}
    return {**rest, "lr_lambdas": [{"epochs": saved["T_max"]} for _ in saved["base_lrs"]]}


def restore_state(session: Session, path: Path) -> tuple[int, list[EpochRecord]]:
    """Loads the checkpoint at ``path`` into ``session``; returns ``(epoch, history)``.

    Raises:
        RuntimeError: the checkpoint's TWO state does not fit the head.
    """
    acc = session.accelerator
    weights, state = load_checkpoint(path)
    acc.unwrap_model(session.net).load_state_dict(weights)
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(_lambda_state(state["scheduler"]))
    replan(session.scheduler, session.cfg.epochs)
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
    return int(state["epoch"]), [EpochRecord.from_row(row) for row in state["history"]]
