"""Probes of a trained network: the firing rate of every LIF layer (paper Fig. 6a)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from sparsegrad.neuron import LIF

__all__ = ["firing_rates"]


@torch.no_grad()
def firing_rates(model: nn.Module, x: torch.Tensor, autocast=None) -> dict[str, float]:
    """Mean spike rate of every [LIF][sparsegrad.neuron.LIF] layer of ``model`` on the batch ``x``.

    A forward hook on each LIF records the mean of its output spikes (the fraction of neurons
    firing per timestep and sample); ``model`` runs once in ``eval()`` mode and is put back.

    Args:
        model: the (unwrapped) network.
        x: one input batch on the model's device.
        autocast: a context-manager factory to run the forward under (e.g. ``accelerator.autocast``).

    Returns:
        ``{module name: rate in [0, 1]}`` in network order (paper Fig. 6a).
    """
    rates: dict[str, float] = {}

    def record(name, module, args, out):
        rates[name] = out.float().mean().item()

    hooks = [m.register_forward_hook(partial(record, name)) for name, m in model.named_modules()
             if isinstance(m, LIF)]
    was_training = model.training
    model.eval()
    try:
        if autocast is not None:
            with autocast():
                model(x)
        else:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rates
