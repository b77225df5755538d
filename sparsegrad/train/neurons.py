"""The spiking neurons of a network, whichever library built them: sparsegrad, spikingjelly, snntorch.

The engine needs two things of them: where the spikes are (firing-rate probes, paper Fig. 6a)
and which neurons keep a membrane state between calls (spikingjelly's ``MemoryModule``,
snntorch's neurons with ``init_hidden``), to be reset before every forward as spikingjelly's
``functional.reset_net`` does. The libraries are looked up in ``sys.modules``: one not imported
cannot have built a module of the network.
"""

from __future__ import annotations

import sys

from torch import nn

from sparsegrad.neuron import LIF

__all__ = ["msg_targets", "reset_states", "spiking_neurons", "stateful_neurons"]


def _classes(module: str, name: str) -> tuple[type, ...]:
    found = getattr(sys.modules.get(module), name, None)
    return (found,) if isinstance(found, type) else ()


def _neuron_classes() -> tuple[type, ...]:
    return ((LIF,) + _classes("spikingjelly.activation_based.neuron", "BaseNode")
            + _classes("snntorch", "SpikingNeuron"))


def spiking_neurons(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: neuron}`` of every sparsegrad [LIF][sparsegrad.neuron.LIF], spikingjelly
    ``BaseNode`` and snntorch ``SpikingNeuron`` in ``model``, in network order (outermost
    only: a neuron inside another is part of it)."""
    classes, found = _neuron_classes(), {}
    for name, module in model.named_modules():
        if isinstance(module, classes) and not any(name.startswith(f"{outer}.") for outer in found):
            found[name] = module
    return found


def msg_targets(model: nn.Module) -> tuple[type, ...] | None:
    """What [MaskedGradient.attach][sparsegrad.masked.MaskedGradient.attach] should mask in
    ``model``: ``None`` (its own choice: sparsegrad and spikingjelly activations) unless the
    network's neurons are all snntorch's, whose spike function is out of MSG's reach; then their
    class, and MSG masks the gradient of their input current (the approximation masked.py names)."""
    snn = _classes("snntorch", "SpikingNeuron")
    neurons = list(spiking_neurons(model).values())
    return snn if snn and neurons and all(isinstance(m, snn) for m in neurons) else None


def stateful_neurons(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that keep a state between calls: spikingjelly ``MemoryModule``
    and snntorch neurons built with ``init_hidden=True``."""
    memory = _classes("spikingjelly.activation_based.base", "MemoryModule")
    snn = _classes("snntorch", "SpikingNeuron")
    return [m for m in model.modules()
            if (memory and isinstance(m, memory)) or (snn and isinstance(m, snn) and getattr(m, "init_hidden", False))]


def reset_states(modules: list[nn.Module]) -> None:
    """Resets what [stateful_neurons][sparsegrad.train.neurons.stateful_neurons] returned."""
    for module in modules:
        if hasattr(module, "reset_mem"):  # snntorch (its reset_hidden resets every instance of a class)
            module.reset_mem()
        else:
            module.reset()
