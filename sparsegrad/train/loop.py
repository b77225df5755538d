"""One training epoch of a spiking network behind a [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead]."""

from __future__ import annotations

import time
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.scheduler import AcceleratedScheduler
from torch import nn

from sparsegrad.masked import MaskedGradient
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train._pause import pause_point
from sparsegrad.train.log import progress
from sparsegrad.train.neurons import reset_states, stateful_neurons

__all__ = ["train_one_epoch", "temporal_head"]


def temporal_head(accelerator: Accelerator, model: nn.Module) -> TemporalWeightedHead:
    """The [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] behind ``model``.

    ``model`` is the head itself or the head as returned by ``accelerator.prepare``
    (wrapped in ``DistributedDataParallel`` or a compiled module).

    Raises:
        TypeError: ``model`` is not (a wrapper of) a ``TemporalWeightedHead``.
    """
    head = accelerator.unwrap_model(model)
    if not isinstance(head, TemporalWeightedHead):
        raise TypeError(
            "expected a TemporalWeightedHead around a network returning [T, B, K] logits, got "
            f"{type(head).__name__}; wrap it: TemporalWeightedHead(net, T)"
        )
    return head


def train_one_epoch(
    accelerator: Accelerator,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: "torch.utils.data.DataLoader",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    scheduler: "torch.optim.lr_scheduler.LRScheduler | None" = None,
    msg: MaskedGradient | None = None,
    two: bool = True,
    desc: str = "train",
    log_every: int = 20,
) -> dict[str, float]:
    """Trains for one pass over ``loader``.

    Each step runs ``model(x, target=y)`` (so TWO counts the correct samples of every
    timestep), ``loss_fn`` on the weighted output ``[B, K]``, ``accelerator.backward``, the
    optimizer step and ``msg.step()`` (MSG's step counter, read by a ``p`` schedule). At
    the end of the epoch the scheduler takes one step (a per-epoch schedule, the paper's
    cosine decay) and, with ``two``, the head applies Eq. 16-17 (``update_factors``).
    With ``two=False`` the model is called with ``target=None``: nothing is counted and
    the factors keep their values (uniform from a fresh head: the plain ``mean_t`` output).

    Gradient accumulation follows the Accelerator (``gradient_accumulation_steps``): the
    network the head wraps (as ``accelerator.prepare`` returned it) goes to
    ``accelerator.accumulate``, so data-parallel gradients are all-reduced once per optimizer
    step; ``msg.step()`` then counts optimizer steps, not batches.

    Args:
        accelerator: the run's Accelerator; ``model``, ``optimizer`` and ``loader`` come
            from its ``prepare``.
        model: a [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] (or a prepared wrapper of one)
            around a network returning per-timestep logits ``[T, B, K]``.
        optimizer: the optimizer.
        loader: yields ``(x, y)`` with class indices ``y`` of shape ``[B]``.
        loss_fn: ``loss_fn(logits [B, K], y [B]) -> scalar``.
        scheduler: stepped once at the end of the epoch, if given. A scheduler passed
            through ``accelerator.prepare`` must come from an Accelerator built with
            ``step_scheduler_with_optimizer=False`` (otherwise Accelerate steps it once per
            process per call, a per-iteration convention).
        msg: the [MaskedGradient][sparsegrad.masked.MaskedGradient] attached to the network, if any.
        two: count per-timestep correctness and update the TWO factors at the epoch's end.
        desc: label of the progress bar (shown on the main process only).
        log_every: batches between updates of the bar's loss and accuracy, the only points
            where the loop waits for the device (``.item()``).

    Spikingjelly neurons and snntorch neurons with ``init_hidden`` keep their membrane
    between calls; they are reset before every batch (as ``functional.reset_net``).

    Returns:
        ``{"loss", "acc", "lr", "time_s"}``: mean training loss and accuracy of the
        weighted output over the epoch (summed over processes), the learning rate the
        epoch ran at, and its wall time.

    Raises:
        TypeError: ``model`` is not a ``TemporalWeightedHead``.
        ValueError: a prepared scheduler that steps with the optimizer.

    Reference: paper Algorithm 1 (TWO per epoch, as the authors' code) and Eq. 10-14 (MSG);
    docs/design.md §2.3-2.4 and §6.
    """
    head = temporal_head(accelerator, model)
    if isinstance(scheduler, AcceleratedScheduler) and scheduler.step_with_optimizer:
        raise ValueError(
            "train_one_epoch steps the scheduler once per epoch; build the Accelerator with "
            "step_scheduler_with_optimizer=False before preparing a per-epoch scheduler"
        )
    lr = optimizer.param_groups[0]["lr"]
    model.train()
    start = time.perf_counter()
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)  # loss*n, correct, n
    stateful = stateful_neurons(head.model)
    bar = progress(loader, desc=desc, leave=False, enabled=accelerator.is_main_process)
    for i, (x, y) in enumerate(bar):
        reset_states(stateful)
        # The prepared (DDP) network, not the head: only it has no_sync, which skips the
        # all-reduce of the micro-batches before the last one of an accumulation.
        with accelerator.accumulate(head.model):
            with accelerator.autocast():
                out = model(x, target=y if two else None)
                loss = loss_fn(out, y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            if msg is not None:
                msg.step()
            pause_point("step")
        with torch.no_grad():
            n = y.shape[0]
            totals += torch.stack([loss.detach().double() * n,
                                   (out.argmax(-1) == y).sum().double(),
                                   torch.tensor(float(n), dtype=torch.float64, device=totals.device)])
        if not bar.disable and (i + 1) % log_every == 0:
            loss_now, correct, seen = totals.tolist()  # one synchronisation per logging interval
            bar.set_postfix(loss=f"{loss_now / seen:.3f}", acc=f"{correct / seen:.3f}")
    bar.close()
    if scheduler is not None:
        scheduler.step()
    if two:
        head.update_factors()
    loss_sum, correct, seen = accelerator.reduce(totals, reduction="sum").tolist()
    return {
        "loss": loss_sum / max(seen, 1),
        "acc": correct / max(seen, 1),
        "lr": lr,
        "time_s": time.perf_counter() - start,
    }
