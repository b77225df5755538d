"""The ``"torch"`` LIF backend: the time loop in torch operations, any device and dtype.

Forward keeps only the charged membrane potential ``H`` (one tensor the size of the
input); spikes and reset masks are recomputed from it in backward. The backward is a
linear recurrence in time: every term that does not depend on the future (surrogate
derivative, mask, reset gradient) is computed for all timesteps at once, and the
sequential part is a single fused multiply-add per timestep. It is the reference the
native backends are tested against, and the one that runs arbitrary surrogate hooks. MSG's
hook is run as the native kernels run it: its mask comes from the mask stream
([mask_stream][sparsegrad.kernels.mask_stream]), so every backend draws the same masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .mask_stream import StreamMask

__all__ = ["TorchLIF"]


# Work in blocks of timesteps of at most this many elements (8 MiB of float32). Whole
# [T, B, ...] temporaries are large enough that the allocator maps fresh pages for each
# and every first touch page-faults; blocks are reused from the heap and stay in cache.
_BLOCK_ELEMENTS = 1 << 21


def _time_blocks(T: int, step_numel: int) -> list[tuple[int, int]]:
    size = max(1, _BLOCK_ELEMENTS // max(1, step_numel))
    return [(start, min(start + size, T)) for start in range(0, T, size)]


def _charge_and_fire(
    x: torch.Tensor, tau: float, v_threshold: float, v_reset: float
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the LIF recurrence; return the spikes and the charged potential ``H``,
    the latter as blocks of timesteps (see ``_BLOCK_ELEMENTS``).

    The loop runs on negated potentials so that fire-and-reset is one fused
    ``threshold`` call (keep ``-H`` where ``-H > -v_threshold``, else ``-v_reset``),
    several times faster than a compare and a masked fill. IEEE rounding is symmetric,
    so ``-H`` here is bit for bit the negation of spikingjelly's
    ``H = V + (X - (V - v_reset)) / tau``.
    """
    spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
    tau_t = torch.tensor(tau, dtype=x.dtype, device=x.device)
    neg_v = torch.full_like(x[0], -v_reset)
    blocks = []
    for start, stop in _time_blocks(x.shape[0], x[0].numel()):
        neg_h = torch.empty_like(x[start:stop], memory_format=torch.contiguous_format)
        for i, t in enumerate(range(start, stop)):
            # X - (V - v_reset) == X + (-V + v_reset), then -H = -V - that / tau.
            torch.add(x[t], neg_v + v_reset if v_reset else neg_v, out=neg_h[i])
            torch.addcdiv(neg_v, neg_h[i], tau_t, value=-1, out=neg_h[i])
            neg_v = F.threshold(neg_h[i], -v_threshold, -v_reset)
        h = neg_h.neg_()
        torch.ge(h, v_threshold, out=spikes[start:stop])
        blocks.append(h)
    return spikes, blocks



def is_stream_hook(hook) -> bool:
    """Whether ``hook`` is MSG's surrogate hook, which masks from the mask stream."""
    return hasattr(hook, "kernel_mask")


def refuse_double_backward() -> None:
    """Raise inside a fused backward run with ``create_graph=True``: it is not differentiable, and
    a silent zero second-order gradient would be a wrong result."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            "lif_multistep's fused backward is not differentiable: higher-order gradients "
            "(create_graph=True) through the LIF kernel are not supported"
        )

class TorchLIF(torch.autograd.Function):
    """``apply(x, tau, v_threshold, v_reset, surrogate, detach_reset, hooks) -> spikes``."""

    @staticmethod
    def forward(ctx, x, tau, v_threshold, v_reset, surrogate, detach_reset, hooks):
        spikes, h_blocks = _charge_and_fire(x, tau, v_threshold, v_reset)
        ctx.save_for_backward(*h_blocks)
        ctx.params = (tau, v_threshold, v_reset, surrogate, detach_reset, hooks)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        refuse_double_backward()
        h_blocks = ctx.saved_tensors
        tau, v_threshold, v_reset, surrogate, detach_reset, hooks = ctx.params
        # MSG's hook (it has kernel_mask) masks from the stream, any other hook is called
        streams = [StreamMask(hook, grad_spikes.shape, grad_spikes.device) if is_stream_hook(hook) else None
                   for hook in hooks]
        decay = 1 - 1 / tau
        grad_x = torch.empty_like(grad_spikes, memory_format=torch.contiguous_format)
        carry = None  # gH at the first step of the block after this one
        stop = grad_x.shape[0]
        for h in reversed(h_blocks):
            start = stop - h.shape[0]
            x_above = h - v_threshold
            sg = surrogate.derivative(x_above)
            for hook, stream in zip(hooks, streams):
                if stream is not None:
                    stream.apply(sg, start)
                elif (out := hook(sg, start)) is not None:
                    sg = out
            # dV[t]/dH[t] through the hard reset V = H (1 - S) + v_reset S, over x_above.
            reset_grad = torch.lt(x_above, 0, out=x_above)
            if not detach_reset:
                reset_grad.addcmul_(h, sg, value=-1)
                if v_reset:
                    reset_grad.add_(sg, alpha=v_reset)
            # gH[t] = gS[t] SG'[t] + (1 - 1/tau) gH[t+1] dV[t]/dH[t];  gX[t] = gH[t] / tau
            grad_h = torch.mul(grad_spikes[start:stop], sg, out=grad_x[start:stop])
            if carry is not None:
                grad_h[-1].addcmul_(carry, reset_grad[-1], value=decay)
            for i in range(grad_h.shape[0] - 2, -1, -1):
                grad_h[i].addcmul_(grad_h[i + 1], reset_grad[i], value=decay)
            carry = grad_h[0].clone()
            grad_h.div_(tau)
            stop = start
        for stream in streams:
            if stream is not None:
                stream.finish()
        return grad_x, None, None, None, None, None, None
