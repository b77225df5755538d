"""One seed's training set-up: the model, optimizer, cosine schedule, loaders, TWO head and MSG.

[setup][sparsegrad.train.session.setup] seeds the global RNG and builds the model first, so runs
of the same seed that differ only in MSG, TWO or ``p`` start from the same weights; MSG draws
its masks from its own generator and the batch order comes from a generator seeded per
``(seed, epoch)`` ([epoch_seed][sparsegrad.train.session.epoch_seed]), so they also see the
same batches.

Reference: paper Algorithm 1; docs/design.md §6 (engine).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sparsegrad.masked import MaskedGradient
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train.build import InputSpec, build_model, make_loaders
from sparsegrad.train.config import RecipeConfig, learning_rate
from sparsegrad.train.neurons import msg_targets
from sparsegrad.train.schedule import cosine_schedule

__all__ = ["Session", "epoch_seed", "setup"]


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
          spec: InputSpec, model: nn.Module | None = None) -> Session:
    """Builds the seed's model right after seeding (or copies ``model``, so that every seed starts
    from its weights and the caller's module is left untouched), optimizer, cosine schedule,
    loaders, TWO head and MSG, prepared by ``accelerator``."""
    set_seed(seed, device_specific=True)  # process r draws from seed + r; process 0 as a single process
    net = build_model(cfg, spec) if model is None else copy.deepcopy(model)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate(cfg), weight_decay=cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs)
    shuffle = torch.Generator()
    train_loader, probe_loader = make_loaders(cfg, accelerator, train_set, test_set, shuffle)
    net, optimizer, scheduler, train_loader, test_loader = accelerator.prepare(
        net, optimizer, scheduler, train_loader, probe_loader)
    # The head holds no parameters: it wraps the prepared (possibly DDP) network.
    head = TemporalWeightedHead(net, cfg.T, beta=cfg.beta, update_every=cfg.two_update).to(accelerator.device)
    msg = None
    if cfg.msg:
        msg = MaskedGradient(p=cfg.p, rescale=cfg.msg_rescale, granularity=cfg.msg_granularity,
                             seed=1_000_003 * seed + accelerator.process_index).attach(net, msg_targets(net))
    return Session(accelerator, cfg, seed, net, head, optimizer, scheduler, msg,
                   nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), train_loader, test_loader,
                   probe_loader, shuffle)
