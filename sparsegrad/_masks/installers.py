"""Installers: each puts one [MaskSampler][sparsegrad._masks.sampler.MaskSampler] on one kind
of target and returns a handle whose ``remove()`` takes it off again.

- [mask_sparsegrad_surrogate][sparsegrad._masks.installers.mask_sparsegrad_surrogate]: a
  surrogate hook; the native LIF kernels recognise it and mask inside their backward.
- spikingjelly, snntorch and norse neurons: [foreign][sparsegrad._masks.foreign].
- [mask_module_input][sparsegrad._masks.installers.mask_module_input]: a forward pre-hook
  masking the gradient leaving the module through its first input.
- [mask_optimizer_grads][sparsegrad._masks.installers.mask_optimizer_grads]: masks every
  ``param.grad`` before each optimizer step.

Every hook stored on a module or optimizer is [Portable][sparsegrad._masks.copies.Portable]:
a copy of the model carries an inert hook, never a private sampler.
"""

from __future__ import annotations

import torch
from torch import nn

from ..surrogate import Surrogate
from .copies import Portable, drop_inert
from .sampler import KernelMask, MaskSampler, NeuronMaskCache

__all__ = [
    "MaskInputGrad",
    "SurrogateMaskHook",
    "mask_module_input",
    "mask_optimizer_grads",
    "mask_sparsegrad_surrogate",
]


class MaskInputGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by a fresh mask."""

    @staticmethod
    def forward(ctx, x, sampler, shared_dims, cache):
        ctx.set_materialize_grads(False)
        ctx.args = (sampler, shared_dims, cache)
        # A copy, not a view: the target may modify its input in place.
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if grad is None:
            return None, None, None, None
        sampler, shared_dims, cache = ctx.args
        return sampler.mask_activation(grad, shared_dims, inplace=False, cache=cache), None, None, None


class SurrogateMaskHook(Portable):
    """Surrogate hook masking ``SG'`` in place; under ``"neuron"`` granularity one mask serves
    every block of timesteps of a backward pass (the call with ``t0 == 0`` is its last).

    A native LIF kernel finding this hook calls [kernel_mask][sparsegrad._masks.installers.SurrogateMaskHook.kernel_mask]
    instead and masks inside its backward.
    """

    def __init__(self, sampler: MaskSampler):
        self.sampler = sampler
        self.cache = NeuronMaskCache()

    def __call__(self, sg: torch.Tensor, t0: int) -> torch.Tensor:
        out = self.sampler.mask_activation(sg, shared_dims=2, inplace=True, cache=self.cache)
        if t0 == 0:
            self.cache.clear()
        return out

    def kernel_mask(self, grad_shape: torch.Size) -> KernelMask | None:
        """The mask for one kernel backward over ``grad_shape`` (``[T, B, ...]``); None when
        ``p = 0``. Counts the elements seen; the kernel reports the drops to ``count``."""
        sampler = self.sampler
        sampler.activation_shape(grad_shape, shared_dims=2)  # "neuron" needs [T, B, ...]
        if sampler.p == 0:
            sampler.seen += grad_shape.numel()
            return None
        return sampler.kernel_mask()

    def count(self, seen: int, dropped: torch.Tensor) -> None:
        """Record a kernel's drop count (an int64 tensor on the gradient's device)."""
        self.sampler.count(seen, dropped, dropped.device)


def mask_sparsegrad_surrogate(surrogate: Surrogate, sampler: MaskSampler):
    """Mask ``SG'`` of a sparsegrad surrogate (and of every neuron built on it), exactly."""
    drop_inert(surrogate, "_surrogate_hooks")
    return surrogate.register_surrogate_hook(SurrogateMaskHook(sampler))


class _InputMask(Portable):
    """Forward pre-hook of [mask_module_input][sparsegrad._masks.installers.mask_module_input]."""

    def __init__(self, sampler: MaskSampler):
        self.sampler = sampler

    def __call__(self, module: nn.Module, args: tuple):
        if not (module.training and torch.is_grad_enabled()):
            return None
        if not args or not isinstance(args[0], torch.Tensor):
            got = type(args[0]).__name__ if args else "no positional input"
            raise TypeError(
                f"MaskedGradient: {type(module).__name__} was called with {got} as its first "
                "input; it can mask only a tensor passed positionally"
            )
        if not args[0].requires_grad:
            return None
        return (MaskInputGrad.apply(args[0], self.sampler, 2, None),) + tuple(args[1:])


def mask_module_input(module: nn.Module, sampler: MaskSampler):
    """Mask the gradient leaving ``module`` through its first positional input.

    The module's output stays a plain tensor, so in-place operations downstream (a SEW
    ``out += identity``) keep working, unlike with a full backward hook.
    """
    drop_inert(module)
    return module.register_forward_pre_hook(_InputMask(sampler))


class _GradMask(Portable):
    """Optimizer step pre-hook of [mask_optimizer_grads][sparsegrad._masks.installers.mask_optimizer_grads]."""

    def __init__(self, sampler: MaskSampler):
        self.sampler = sampler

    def __call__(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        closure = args[1] if len(args) > 1 else kwargs.get("closure")  # args[0] is the optimizer
        if closure is not None:
            raise ValueError(
                "MaskedGradient.wrap cannot mask gradients computed by a step(closure) inside the "
                "step; compute the gradients before optimizer.step() or use attach()"
            )
        sampler = self.sampler
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.grad = sampler.mask(param.grad, sampler.param_shape(param.grad), inplace=True)


def mask_optimizer_grads(optimizer: torch.optim.Optimizer, sampler: MaskSampler):
    """Mask every ``param.grad`` before each ``optimizer.step()``."""
    return optimizer.register_step_pre_hook(_GradMask(sampler))
