"""Probes of a trained network: the firing rate of every spiking neuron layer (paper Fig. 6a)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from sparsegrad.train.neurons import reset_states, spiking_neurons, stateful_neurons

__all__ = ["firing_rates"]


@torch.no_grad()
def firing_rates(model: nn.Module, x: torch.Tensor, autocast=None) -> dict[str, float]:
    """Mean spike rate of every spiking neuron layer of ``model`` on the batch ``x``.

    A forward hook on each neuron ([spiking_neurons][sparsegrad.train.neurons.spiking_neurons]:
    sparsegrad, spikingjelly or snntorch) records the mean of its output spikes (the first
    output of a neuron returning ``(spikes, membrane)``), the fraction of neurons firing per
    timestep and sample; ``model`` runs once in ``eval()`` mode, from reset states, and is put back.

    Args:
        model: the (unwrapped) network.
        x: one input batch on the model's device.
        autocast: a context-manager factory to run the forward under (e.g. ``accelerator.autocast``).

    Returns:
        ``{module name: rate in [0, 1]}`` in network order (paper Fig. 6a); empty when the
        network holds no neuron of these libraries.
    """
    calls: dict[str, list[float]] = {}

    def record(name, module, args, out):  # a single-step neuron is called once per timestep
        spikes = out[0] if isinstance(out, (tuple, list)) else out
        calls.setdefault(name, []).append(spikes.float().mean().item())

    hooks = [m.register_forward_hook(partial(record, name)) for name, m in spiking_neurons(model).items()]
    was_training = model.training
    model.eval()
    stateful = stateful_neurons(model)
    try:
        reset_states(stateful)
        if autocast is not None:
            with autocast():
                model(x)
        else:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        reset_states(stateful)
        model.train(was_training)
    return {name: sum(means) / len(means) for name, means in calls.items()}
