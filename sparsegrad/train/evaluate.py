"""Evaluation: accuracy of the weighted output and of every timestep on its own."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from sparsegrad.train.loop import temporal_head
from sparsegrad.train.log import progress
from sparsegrad.train.neurons import reset_states, stateful_neurons

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    accelerator: Accelerator,
    model: nn.Module,
    loader: "torch.utils.data.DataLoader",
    *,
    desc: str = "eval",
) -> dict:
    """Evaluates ``model`` on ``loader`` in ``eval()`` mode.

    The prediction is the argmax of the head's weighted output
    ``sum_t factors_t I_L[t]``; the prediction of timestep ``t`` is the argmax of
    ``I_L[t]`` alone (from ``head.last_step_logits``), the quantity TWO's counts are
    made of. Predictions and labels are gathered across processes with
    ``accelerator.gather_for_metrics``, which drops the samples a distributed sampler
    repeats to even out the last batch, so every sample counts once.

    Args:
        accelerator: the run's Accelerator (``model`` and ``loader`` prepared by it).
        model: a [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] (or a prepared wrapper of one).
        loader: yields ``(x, y)`` with class indices ``y`` of shape ``[B]``.
        desc: label of the progress bar (main process only).

    Returns:
        ``{"acc", "acc_per_step", "loss", "n", "time_s"}``: accuracy of the weighted
        output; a list of ``T`` accuracies, one per timestep (t = 1..T); the mean
        cross-entropy of the weighted output (no label smoothing); the number of samples;
        the wall time. Identical on every process.

    Raises:
        TypeError: ``model`` is not a ``TemporalWeightedHead``.
        ValueError: ``loader`` is empty.

    Reference: paper Fig. 3 (per-timestep accuracy) and Eq. 15; docs/design.md §2.4 and §6.
    """
    head = temporal_head(accelerator, model)
    model.eval()
    start = time.perf_counter()
    preds, step_preds, labels, losses = [], [], [], []
    stateful = stateful_neurons(head.model)
    bar = progress(loader, desc=desc, leave=False, enabled=accelerator.is_main_process)
    for x, y in bar:
        reset_states(stateful)
        with accelerator.autocast():
            out = model(x)
        per_step = head.last_step_logits.argmax(-1).transpose(0, 1).contiguous()  # [B, T]
        loss = F.cross_entropy(out.float(), y, reduction="none")
        gathered = accelerator.gather_for_metrics((out.argmax(-1), per_step, y, loss))
        for store, value in zip((preds, step_preds, labels, losses), gathered):
            store.append(value)
    bar.close()
    if not labels:
        raise ValueError("evaluate: the loader yielded no batches")
    preds, step_preds = torch.cat(preds), torch.cat(step_preds)
    labels, losses = torch.cat(labels), torch.cat(losses)
    return {
        "acc": (preds == labels).double().mean().item(),
        "acc_per_step": (step_preds == labels[:, None]).double().mean(0).tolist(),
        "loss": losses.double().mean().item(),
        "n": int(labels.numel()),
        "time_s": time.perf_counter() - start,
    }
