"""MSG on spikingjelly, snntorch and norse neurons, along the path
[kind_of][sparsegrad._masks.kinds.kind_of] picked for each (docs/design.md §2.3.1).

One [NeuronMask][sparsegrad._masks.foreign.NeuronMask] per neuron, with a forward pre-hook
and a forward hook:

- ``"output"`` path: the forward hook registers a tensor hook on the spike output that
  multiplies the gradient arriving there, ``dL/dS``, by the mask. No copy, no extra node;
  the neuron and its kernels are untouched.
- ``"swap"`` path: the pre-hook replaces the spike function (spikingjelly's
  ``surrogate_function``, snntorch's ``spike_grad``) by one that masks the gradient entering
  it, and the forward hook (called even if the forward raises) puts the original back. With
  ``p = 0`` nothing is swapped, so the neuron keeps its fused path bit for bit.

Under ``"neuron"`` granularity one mask serves a whole sequence: a multi-step forward, or the
single-step calls from a state without autograd history (after spikingjelly's ``reset_net``,
snntorch's ``init_leaky()``, norse's default state) to the next such state.
"""

from __future__ import annotations

import torch
from torch import nn

from .copies import Portable, drop_inert
from .installers import MaskInputGrad
from .kinds import Kind, norse_multi_step
from .sampler import MaskSampler, NeuronMaskCache

__all__ = ["NeuronMask", "mask_foreign_neuron"]

STALE = (
    "MaskedGradient: the spikingjelly {label} at {name!r} starts this forward from the state of "
    "an earlier step, whose graph a backward pass has already used (torch would fail with "
    "'Trying to backward through the graph a second time'). Call "
    "spikingjelly.activation_based.functional.reset_net(net) after each step, or "
    "functional.detach_net(net) to carry the state over on purpose"
)


class _MaskingSurrogate(nn.Module):
    """Stands in for a spikingjelly surrogate during one forward: masks the gradient w.r.t.
    ``x = H - v_threshold``, summed over every use of the spike."""

    def __init__(self, surrogate: nn.Module, sampler: MaskSampler, cache: NeuronMaskCache):
        super().__init__()
        self.surrogate = surrogate
        self.sampler = sampler
        self.cache = cache
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.requires_grad:
            x = MaskInputGrad.apply(x, self.sampler, 1, self.cache)
        return self.surrogate(x)


class _MaskingSpikeGrad:
    """Stands in for an snntorch ``spike_grad`` during one forward (see ``_MaskingSurrogate``).
    snntorch also calls it for the detached reset signal, whose graph no backward reaches."""

    def __init__(self, spike_grad, sampler: MaskSampler, cache: NeuronMaskCache):
        self.spike_grad = spike_grad
        self.sampler = sampler
        self.cache = cache
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.requires_grad:
            x = MaskInputGrad.apply(x, self.sampler, 1, self.cache)
        return self.spike_grad(x)


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


class _Library:
    """What differs between libraries: time layout, state, spike output, spike function."""

    def __init__(self, neuron: nn.Module, kind: Kind):
        self.neuron, self.kind = neuron, kind

    def multi_step(self) -> bool:
        if self.kind.library == "spikingjelly":
            return self.neuron.step_mode == "m"
        return self.kind.library == "norse" and norse_multi_step(self.neuron)

    def state(self, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        """The state tensors this call starts from."""
        if self.kind.library == "spikingjelly":
            return _tensors(list(self.neuron._memories.values()))
        given = _tensors(list(args[1:]) + list(kwargs.values()))
        if given or self.kind.library == "norse":
            return given
        return _tensors([getattr(self.neuron, n, None) for n in ("syn", "mem")])  # snntorch's own

    def swap_in(self, sampler: MaskSampler, cache: NeuronMaskCache):
        if self.kind.library == "spikingjelly":
            stand_in = _MaskingSurrogate(self.neuron.surrogate_function, sampler, cache)
            stand_in.train(self.neuron.training)
            self.neuron.surrogate_function = stand_in
        else:
            stand_in = _MaskingSpikeGrad(self.neuron.spike_grad, sampler, cache)
            self.neuron.spike_grad = stand_in
        return stand_in

    def swap_out(self, stand_in) -> None:
        if self.kind.library == "spikingjelly":
            self.neuron.surrogate_function = stand_in.surrogate
        else:
            self.neuron.spike_grad = stand_in.spike_grad


class NeuronMask:
    """MSG on one foreign neuron (the hooks' shared state); ``remove()`` takes it off."""

    def __init__(self, neuron: nn.Module, kind: Kind, name: str, sampler: MaskSampler):
        self.kind, self.name, self.sampler = kind, name, sampler
        self.library = _Library(neuron, kind)
        self.cache = NeuronMaskCache()
        self.stand_in = None
        self.backward_seen = False  # a backward went through the spikes since the last forward
        drop_inert(neuron)
        self.handles = (
            neuron.register_forward_pre_hook(_Before(self), with_kwargs=True),
            neuron.register_forward_hook(_After(self), always_call=True),
        )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        if self.stand_in is not None:
            self.library.swap_out(self.stand_in)
            self.stand_in = None

    def before(self, neuron: nn.Module, args: tuple, kwargs: dict) -> None:
        if not (neuron.training and torch.is_grad_enabled()):
            return
        with_history = any(t.grad_fn is not None for t in self.library.state(args, kwargs))
        if self.backward_seen and with_history and self.kind.library == "spikingjelly":
            raise RuntimeError(STALE.format(label=type(neuron).__name__, name=self.name))
        self.backward_seen = False
        if self.library.multi_step() or not with_history:
            self.cache.clear()  # a new sequence: a new "neuron" mask
        if self.kind.path == "swap" and self.sampler.p > 0:
            self.stand_in = self.library.swap_in(self.sampler, self.cache)

    def after(self, neuron: nn.Module, output) -> None:
        stand_in, self.stand_in = self.stand_in, None
        if stand_in is not None:
            self.library.swap_out(stand_in)
        spikes = output if isinstance(output, torch.Tensor) else (output[0] if isinstance(output, tuple) and output else None)
        if not (neuron.training and isinstance(spikes, torch.Tensor) and spikes.requires_grad):
            return
        if stand_in is None:
            shared_dims = 2 if self.library.multi_step() else 1
            spikes.register_hook(lambda grad: self._mask(grad, shared_dims))
            return
        if stand_in.calls == 0:
            raise RuntimeError(
                f"MaskedGradient: {self.kind.label} at {self.name!r} never called its spike function "
                "in this forward, so its surrogate gradient cannot be masked"
            )
        spikes.register_hook(self._mark)

    def _mask(self, grad: torch.Tensor, shared_dims: int) -> torch.Tensor:
        self.backward_seen = True
        return self.sampler.mask_activation(grad, shared_dims, inplace=False, cache=self.cache)

    def _mark(self, grad: torch.Tensor) -> None:
        self.backward_seen = True


class _Before(Portable):
    def __init__(self, owner: NeuronMask):
        self.owner = owner

    def __call__(self, neuron, args, kwargs):
        self.owner.before(neuron, args, kwargs)


class _After(Portable):
    def __init__(self, owner: NeuronMask):
        self.owner = owner

    def __call__(self, neuron, args, output):
        self.owner.after(neuron, output)


def mask_foreign_neuron(neuron: nn.Module, kind: Kind, name: str, sampler: MaskSampler) -> NeuronMask:
    """Mask one spikingjelly, snntorch or norse neuron along ``kind.path``."""
    return NeuronMask(neuron, kind, name, sampler)
