"""Gradient checkpointing that leaves batch-norm statistics as a plain run leaves them."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpoint_seq", "is_recomputing"]

_RECOMPUTING: ContextVar[bool] = ContextVar("sparsegrad_recomputing", default=False)


def is_recomputing() -> bool:
    """True while [checkpoint_seq][sparsegrad.layers.checkpoint_seq] recomputes a forward
    for backward.

    [TimeBatchNorm2d][sparsegrad.layers.TimeBatchNorm2d] reads it: it normalises with the
    batch statistics as in the first forward, but does not update its running statistics
    a second time.
    """
    return _RECOMPUTING.get()


@contextlib.contextmanager
def _recomputing():
    token = _RECOMPUTING.set(True)
    try:
        yield
    finally:
        _RECOMPUTING.reset(token)


def _contexts():
    return contextlib.nullcontext(), _recomputing()


def checkpoint_seq(modules: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run ``modules`` in order, each under non-reentrant gradient checkpointing.

    Each module's activations are recomputed in backward instead of stored. During the
    recomputation [is_recomputing][sparsegrad.layers.is_recomputing] is True, so batch
    norms do not count the batch twice: running statistics and ``num_batches_tracked``
    end as without checkpointing (issue 9, item 4).

    The recomputation must give the forward's values again, so the neurons must be
    stateless across calls (sparsegrad's [LIF][sparsegrad.neuron.LIF] is; a spikingjelly
    neuron is not, and would resume from the state the forward left). Dropout draws the
    same masks (the RNG state is restored).

    Args:
        modules: the modules, applied in order.
        x: their input.

    Returns:
        The output of the last module.
    """
    for module in modules:
        x = checkpoint(module, x, use_reentrant=False, context_fn=_contexts)
    return x
