"""The autograd Function shared by the native LIF backends (``cpp``, ``triton``).

Forward runs the backend's fused forward and saves ``H`` only. Backward asks MSG's hook
(if one is installed) for a ``KernelMask`` (``sparsegrad/_masks/sampler.py``) and hands it
to the backend's fused backward, which regenerates the keep bits from the mask stream
([mask_stream][sparsegrad.kernels.mask_stream]) and counts what it saw and dropped.
"""

from __future__ import annotations

from typing import Protocol

import torch

from sparsegrad.kernels.lif_torch import refuse_double_backward

__all__ = ["NativeLIF", "LIFKernels"]


class LIFKernels(Protocol):
    """What a native backend provides."""

    def forward(self, x: torch.Tensor, tau: float, v_threshold: float, v_reset: float):
        """``(spikes, H)``, both shaped like ``x``."""

    def backward(self, grad, h, tau, v_threshold, v_reset, surrogate, detach_reset, mask):
        """``(grad_x, counts)``: ``counts`` int64 ``(seen, dropped)`` (zeros without a mask);
        ``surrogate`` a [KernelCall][sparsegrad.surrogate.KernelCall]."""


class NativeLIF(torch.autograd.Function):
    """``apply(x, kernels, tau, v_threshold, v_reset, surrogate, detach_reset, mask_hook) ->
    spikes``; ``surrogate`` a [KernelCall][sparsegrad.surrogate.KernelCall], ``mask_hook``
    MSG's surrogate hook or None."""

    @staticmethod
    def forward(ctx, x, kernels, tau, v_threshold, v_reset, surrogate, detach_reset, mask_hook):
        spikes, h = kernels.forward(x, tau, v_threshold, v_reset)
        ctx.save_for_backward(h)
        ctx.params = (kernels, tau, v_threshold, v_reset, surrogate, detach_reset, mask_hook)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        refuse_double_backward()
        (h,) = ctx.saved_tensors
        kernels, tau, v_threshold, v_reset, surrogate, detach_reset, mask_hook = ctx.params
        mask = None if mask_hook is None else mask_hook.kernel_mask(h.shape)
        grad_x, counts = kernels.backward(grad_spikes, h, tau, v_threshold, v_reset, surrogate, detach_reset, mask)
        if mask is not None:
            mask_hook.count(counts[0], counts[1])
        return grad_x, None, None, None, None, None, None, None
