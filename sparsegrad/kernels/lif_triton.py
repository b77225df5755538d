"""The ``"triton"`` LIF backend: one forward and one backward GPU kernel, time loop inside.

Each program takes a block of neurons and runs all ``T`` timesteps with the membrane
potential (forward) or the gradient carried back in time (backward) in registers. Forward
reads ``x`` and writes the spikes and ``H``; only ``H`` is saved. Backward reads the
spikes' gradient and ``H`` and writes ``grad x``; MSG's keep bit of each element is
``tl.rand(key, offset + index) > p``, regenerated there, so no mask is stored, and the
drops are counted with one atomic add per program. Storage may be float32, float16 or
bfloat16; arithmetic is float32.

Without a GPU the kernels run on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``, set before Triton is imported), which the tests use.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

__all__ = ["TritonKernels"]

_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# The interpreter is ~100x slower than eager and the tests use tiny shapes.
_BLOCK = 32 if _INTERPRETED else 1024
_WARPS = 4


@triton.jit
def _lif_forward(x_ptr, spikes_ptr, h_ptr, n, steps, tau, v_threshold, v_reset, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    v = tl.zeros([BLOCK], tl.float32) + v_reset
    for t in range(steps):
        index = tl.cast(t, tl.int64) * n + offs  # int64: T * n may pass 2**31
        x = tl.load(x_ptr + index, mask=inside, other=0.0).to(tl.float32)
        # spikingjelly's charge, operation for operation, with IEEE division
        h = v + tl.math.div_rn(x - (v - v_reset), tau)
        fire = h >= v_threshold
        tl.store(spikes_ptr + index, fire.to(spikes_ptr.dtype.element_ty), mask=inside)
        tl.store(h_ptr + index, h.to(h_ptr.dtype.element_ty), mask=inside)
        v = tl.where(fire, v_reset, h)


@triton.jit
def _surrogate(x, alpha, c, SURROGATE: tl.constexpr):
    """The pseudo-derivatives as sparsegrad.surrogate computes them (ids as kernel_id)."""
    ax = tl.abs(x)
    if SURROGATE == 0:  # atan, c = (pi/2 alpha)^2
        sg = (1.0 / (x * x * c + 1.0)) * alpha
    elif SURROGATE == 1:  # piecewise linear, c = -alpha^2
        sg = tl.maximum(ax * c + alpha, 0.0)
    elif SURROGATE == 2:  # sigmoid
        s = 1.0 / (1.0 + tl.exp(-(alpha * x)))
        sg = (s - s * s) * alpha
    elif SURROGATE == 3:  # rectangular, c = 0.5 / alpha
        sg = tl.where(ax < c, alpha, 0.0)
    elif SURROGATE == 4:  # piecewise exponential, c = 0.5 alpha
        sg = tl.exp(ax * -alpha) * c
    else:  # fast sigmoid
        d = ax * alpha + 1.0
        sg = 1.0 / (d * d)
    return sg


@triton.jit
def _lif_backward(
    grad_ptr, h_ptr, grad_x_ptr, dropped_ptr, n, neurons, steps,
    tau, v_threshold, v_reset, alpha, c, p, scale, key, offset,
    SURROGATE: tl.constexpr, DETACH_RESET: tl.constexpr, MASK: tl.constexpr, BLOCK: tl.constexpr,
):
    # MASK: 0 none, 1 one draw per element, 2 one draw per neuron (shared over T and B)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    decay = 1.0 - 1.0 / tau
    carry = tl.zeros([BLOCK], tl.float32)
    dropped = tl.zeros([BLOCK], tl.int32)
    if MASK == 2:
        neuron_factor = tl.where(tl.rand(key, offset + offs % neurons) > p, scale, 0.0)
    for i in range(steps):
        index = tl.cast(steps - 1 - i, tl.int64) * n + offs
        h = tl.load(h_ptr + index, mask=inside, other=0.0).to(tl.float32)
        g = tl.load(grad_ptr + index, mask=inside, other=0.0).to(tl.float32)
        above = h - v_threshold
        sg = _surrogate(above, alpha, c, SURROGATE)
        if MASK == 1:
            factor = tl.where(tl.rand(key, offset + index) > p, scale, 0.0)
            sg = sg * factor
            dropped += (inside & (factor == 0.0)).to(tl.int32)
        elif MASK == 2:
            sg = sg * neuron_factor
            dropped += (inside & (neuron_factor == 0.0)).to(tl.int32)
        reset_grad = tl.where(above < 0.0, 1.0, 0.0)
        if not DETACH_RESET:
            reset_grad = (reset_grad - h * sg) + v_reset * sg
        carry = g * sg + decay * carry * reset_grad
        tl.store(grad_x_ptr + index, (carry / tau).to(grad_x_ptr.dtype.element_ty), mask=inside)
    if MASK != 0:
        tl.atomic_add(dropped_ptr, tl.sum(dropped, axis=0).to(tl.int64))


def _surrogate_constant(surrogate_id: int, alpha: float) -> float:
    return {0: (math.pi / 2 * alpha) ** 2, 1: -alpha * alpha, 3: 0.5 / alpha, 4: 0.5 * alpha}.get(
        surrogate_id, 0.0
    )


class TritonKernels:
    """[LIFKernels][sparsegrad.kernels.native.LIFKernels] in Triton."""

    dtypes = (torch.float32, torch.float16, torch.bfloat16)

    def forward(self, x, tau, v_threshold, v_reset):
        x = x.contiguous()
        spikes, h = torch.empty_like(x), torch.empty_like(x)
        steps = x.shape[0]
        n = x.numel() // steps
        grid = (triton.cdiv(n, _BLOCK),)
        _lif_forward[grid](x, spikes, h, n, steps, tau, v_threshold, v_reset, BLOCK=_BLOCK, num_warps=_WARPS)
        return spikes, h

    def backward(self, grad, h, tau, v_threshold, v_reset, surrogate_id, alpha, detach_reset, mask):
        grad = grad.to(h.dtype).contiguous()
        grad_x = torch.empty_like(h)
        dropped = torch.zeros((), dtype=torch.int64, device=h.device)
        steps = h.shape[0]
        n = h.numel() // steps
        if mask is None:
            mode, p, scale, key, offset, neurons = 0, 0.0, 1.0, 0, 0, 1
        else:
            mode = 2 if mask.per_neuron else 1
            p, scale, key, offset = mask.p, mask.scale, mask.key, mask.offset
            neurons = h[0, 0].numel() if h.ndim > 2 else 1
        grid = (triton.cdiv(n, _BLOCK),)
        _lif_backward[grid](
            grad, h, grad_x, dropped, n, neurons, steps,
            tau, v_threshold, v_reset, alpha, _surrogate_constant(surrogate_id, alpha), p, scale, key, offset,
            SURROGATE=surrogate_id, DETACH_RESET=bool(detach_reset), MASK=mode, BLOCK=_BLOCK, num_warps=_WARPS,
        )
        return grad_x, dropped
