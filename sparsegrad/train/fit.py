"""One seed of one experiment: the epochs, checkpoints, and the seed's records and figures.

[fit][sparsegrad.train.fit.fit] trains a [Session][sparsegrad.train.session.Session] (from
[setup][sparsegrad.train.session.setup]) epoch by epoch; each epoch is one
[EpochRecord][sparsegrad.train.record.EpochRecord], written to the seed's folder
([SeedFolder][sparsegrad.train.store.SeedFolder]) and into each checkpoint.

Reference: paper Algorithm 1; docs/design.md §6 (engine).
"""

from __future__ import annotations

import torch

from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.log import EpochLog
from sparsegrad.train.loop import train_one_epoch
from sparsegrad.train.plots import plot_run, run_title
from sparsegrad.train.probes import firing_rates
from sparsegrad.train.record import EpochRecord
from sparsegrad.train.report import seed_result
from sparsegrad.train.session import Session, epoch_seed
from sparsegrad.train.state import restore_state, save_state
from sparsegrad.train.store import SeedFolder, write_json

__all__ = ["fit", "run_epoch"]


def _msg_counts(session: Session, before: dict) -> tuple[int, int]:
    after = session.msg.stats if session.msg is not None else before
    counts = torch.tensor([after["seen"] - before["seen"], after["dropped"] - before["dropped"]],
                          dtype=torch.float64, device=session.accelerator.device)
    seen, dropped = session.accelerator.reduce(counts, reduction="sum").tolist()
    return int(seen), int(dropped)


def run_epoch(session: Session, epoch: int, history: list[EpochRecord]) -> EpochRecord:
    """Trains and evaluates one epoch; returns its record."""
    s, cfg = session, session.cfg
    s.shuffle.manual_seed(epoch_seed(s.seed, epoch))
    before = s.msg.stats if s.msg is not None else {"seen": 0, "dropped": 0}
    train = train_one_epoch(s.accelerator, s.head, s.optimizer, s.train_loader, s.loss_fn, scheduler=s.scheduler,
                            msg=s.msg, two=cfg.two, desc=f"epoch {epoch} train")
    test = evaluate(s.accelerator, s.head, s.test_loader, desc=f"epoch {epoch} eval")
    seen, dropped = _msg_counts(s, before)
    return EpochRecord(
        epoch=epoch, lr=train["lr"], train_loss=train["loss"], train_acc=train["acc"], test_loss=test["loss"],
        test_acc=test["acc"], best_test_acc=max([h.test_acc for h in history] + [test["acc"]]),
        test_acc_per_step=tuple(test["acc_per_step"]), factors=tuple(s.head.factors.tolist()),
        train_time_s=train["time_s"], eval_time_s=test["time_s"], epoch_time_s=train["time_s"] + test["time_s"],
        msg_p=s.msg.p if s.msg is not None else 0.0, msg_seen=seen, msg_dropped=dropped,
        msg_drop_frac=dropped / seen if seen else 0.0)


def _finish(session: Session, folder: SeedFolder, history: list[EpochRecord], tag: str) -> dict:
    s, cfg = session, session.cfg
    result = seed_result(s.seed, cfg.epochs, history)
    if s.accelerator.is_main_process:
        x, _ = next(iter(s.probe_loader))
        rates = firing_rates(s.accelerator.unwrap_model(s.net), x.to(s.accelerator.device), s.accelerator.autocast)
        result["firing_rate"] = rates
        result["msg_stats"] = s.msg.stats if s.msg is not None else None
        write_json(folder.firing_rate, rates)
        write_json(folder.result, result)
        if cfg.plots:
            plot_run(folder.plots, history, rates,
                     title=run_title(cfg.model, cfg.dataset, cfg.msg, cfg.two, cfg.p, s.seed))
    return result


def fit(session: Session, folder: SeedFolder, resume_from=None, tag: str = "") -> dict:
    """Trains ``session`` to ``cfg.epochs`` (from the state file ``resume_from`` if given) and
    writes the seed's folder: ``metrics.csv``, ``tensorboard/``, ``checkpoints/``,
    ``result.json``, ``firing_rate.json``, ``plots/``. Returns the seed's record
    ([seed_result][sparsegrad.train.report.seed_result] plus firing rates and MSG statistics).
    """
    s, cfg, main = session, session.cfg, session.accelerator.is_main_process
    if main:
        folder.path.mkdir(parents=True, exist_ok=True)
    start, history = 0, []
    if resume_from is not None:
        start, history = restore_state(s, resume_from)
        s.accelerator.print(f"{tag}: resumed from {resume_from} (epoch {start})")
    log = EpochLog(folder, cfg.epochs, start, tag, enabled=main, tensorboard=cfg.tensorboard)
    for epoch in range(start + 1, cfg.epochs + 1):
        history.append(run_epoch(s, epoch, history))
        log.write(history)
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
            save_state(s, folder.checkpoints, epoch, history)
    log.close()
    result = _finish(s, folder, history, tag)
    if s.msg is not None:
        s.msg.remove()
    s.accelerator.wait_for_everyone()
    s.accelerator.free_memory()
    return result
