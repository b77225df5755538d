"""One seed of one experiment: set up the model, optimizer, loaders, TWO and MSG, then fit.

[setup][sparsegrad.train.fit.setup] seeds the global RNG and builds the model first, so runs
of the same seed that differ only in MSG, TWO or ``p`` start from the same weights; MSG draws
its masks from its own generator and the batch order comes from a generator seeded per
``(seed, epoch)``, so they also see the same batches. [fit][sparsegrad.train.fit.fit] runs the
epochs, checkpoints, and writes the seed's records and figures.

Reference: paper Algorithm 1; docs/design.md §6 (engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sparsegrad.masked import MaskedGradient
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train.build import InputSpec, build_model, make_loaders
from sparsegrad.train.config import RecipeConfig, learning_rate
from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.log import EpochLog
from sparsegrad.train.loop import train_one_epoch
from sparsegrad.train.plots import plot_run
from sparsegrad.train.probes import firing_rates
from sparsegrad.train.report import seed_result, steps
from sparsegrad.train.run_dir import write_json
from sparsegrad.train.state import restore_state, save_state

__all__ = ["Session", "epoch_seed", "fit", "setup"]


@dataclass
class Session:
    """Everything one seed trains with; ``net``, ``optimizer``, ``scheduler`` and the loaders
    are as ``accelerator.prepare`` returned them, ``probe_loader`` is the unprepared test loader."""

    accelerator: Accelerator
    cfg: RecipeConfig
    seed: int
    net: nn.Module
    head: TemporalWeightedHead
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    msg: MaskedGradient | None
    loss_fn: nn.Module
    train_loader: DataLoader
    test_loader: DataLoader
    probe_loader: DataLoader
    shuffle: torch.Generator


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the batch order of ``epoch``: a function of (seed, epoch) only."""
    return seed * 100_003 + epoch


def setup(accelerator: Accelerator, cfg: RecipeConfig, seed: int, train_set: Dataset, test_set: Dataset,
          spec: InputSpec) -> Session:
    """Builds the seed's model (right after seeding), optimizer, cosine schedule, loaders, TWO head
    and MSG, prepared by ``accelerator``."""
    set_seed(seed, device_specific=True)  # process r draws from seed + r; process 0 as a single process
    net = build_model(cfg, spec)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate(cfg), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    shuffle = torch.Generator()
    train_loader, probe_loader = make_loaders(cfg, accelerator, train_set, test_set, shuffle)
    net, optimizer, scheduler, train_loader, test_loader = accelerator.prepare(
        net, optimizer, scheduler, train_loader, probe_loader)
    # The head holds no parameters: it wraps the prepared (possibly DDP) network.
    head = TemporalWeightedHead(net, cfg.T, beta=cfg.beta, update_every=cfg.two_update).to(accelerator.device)
    msg = None
    if cfg.msg:
        msg = MaskedGradient(p=cfg.p, rescale=cfg.msg_rescale, granularity=cfg.msg_granularity,
                             seed=1_000_003 * seed + accelerator.process_index).attach(net)
    return Session(accelerator, cfg, seed, net, head, optimizer, scheduler, msg,
                   nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), train_loader, test_loader,
                   probe_loader, shuffle)


def _msg_counts(session: Session, before: dict) -> tuple[int, int]:
    after = session.msg.stats if session.msg is not None else before
    counts = torch.tensor([after["seen"] - before["seen"], after["dropped"] - before["dropped"]],
                          dtype=torch.float64, device=session.accelerator.device)
    seen, dropped = session.accelerator.reduce(counts, reduction="sum").tolist()
    return int(seen), int(dropped)


def run_epoch(session: Session, epoch: int, history: list[dict]) -> dict:
    """Trains and evaluates one epoch; returns its row for ``metrics.csv``."""
    s, cfg = session, session.cfg
    s.shuffle.manual_seed(epoch_seed(s.seed, epoch))
    before = s.msg.stats if s.msg is not None else {"seen": 0, "dropped": 0}
    train = train_one_epoch(s.accelerator, s.head, s.optimizer, s.train_loader, s.loss_fn, scheduler=s.scheduler,
                            msg=s.msg, two=cfg.two, desc=f"epoch {epoch} train")
    test = evaluate(s.accelerator, s.head, s.test_loader, desc=f"epoch {epoch} eval")
    seen, dropped = _msg_counts(s, before)
    return {"epoch": epoch, "lr": train["lr"], "train_loss": train["loss"], "train_acc": train["acc"],
            "test_loss": test["loss"], "test_acc": test["acc"],
            "best_test_acc": max([h["test_acc"] for h in history] + [test["acc"]]),
            **steps(test["acc_per_step"], "test_acc_t"), **steps(s.head.factors.tolist(), "factor_t"),
            "train_time_s": train["time_s"], "eval_time_s": test["time_s"],
            "epoch_time_s": train["time_s"] + test["time_s"], "msg_p": s.msg.p if s.msg is not None else 0.0,
            "msg_seen": seen, "msg_dropped": dropped, "msg_drop_frac": dropped / seen if seen else 0.0}


def _finish(session: Session, seed_dir: Path, history: list[dict], tag: str) -> dict:
    s, cfg = session, session.cfg
    result = seed_result(s.seed, cfg.epochs, cfg.T, history)
    if s.accelerator.is_main_process:
        x, _ = next(iter(s.probe_loader))
        rates = firing_rates(s.accelerator.unwrap_model(s.net), x.to(s.accelerator.device), s.accelerator.autocast)
        result["firing_rate"] = rates
        result["msg_stats"] = s.msg.stats if s.msg is not None else None
        write_json(seed_dir / "firing_rate.json", rates)
        write_json(seed_dir / "result.json", result)
        if cfg.plots:
            plot_run(seed_dir / "plots", history, rates, title=tag)
    return result


def fit(session: Session, seed_dir: Path, resume_from: Path | None = None, tag: str = "") -> dict:
    """Trains ``session`` to ``cfg.epochs`` (from ``resume_from`` if given) and writes the seed's
    folder: ``metrics.csv``, ``tensorboard/``, ``checkpoints/``, ``result.json``,
    ``firing_rate.json``, ``plots/``. Returns the seed's record
    ([seed_result][sparsegrad.train.report.seed_result] plus firing rates and MSG statistics).
    """
    s, cfg, main = session, session.cfg, session.accelerator.is_main_process
    if main:
        seed_dir.mkdir(parents=True, exist_ok=True)
    start, history = 0, []
    if resume_from is not None:
        start, history = restore_state(s, resume_from)
        s.accelerator.print(f"{tag}: resumed from {resume_from} (epoch {start})")
    log = EpochLog(seed_dir, cfg.epochs, start, tag, enabled=main, tensorboard=cfg.tensorboard)
    for epoch in range(start + 1, cfg.epochs + 1):
        history.append(run_epoch(s, epoch, history))
        log.write(history)
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
            save_state(s, seed_dir / "checkpoints", epoch, history)
    log.close()
    result = _finish(s, seed_dir, history, tag)
    if s.msg is not None:
        s.msg.remove()
    s.accelerator.wait_for_everyone()
    s.accelerator.free_memory()
    return result
