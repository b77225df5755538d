"""The ``"triton"`` LIF backend: one forward and one backward GPU kernel, time loop inside.

Each program takes a block of neurons and runs all ``T`` timesteps with the membrane
potential (forward) or the gradient carried back in time (backward) in registers. Forward
reads ``x`` and writes the spikes and ``H``; only ``H`` is saved. Backward reads the
spikes' gradient and ``H`` and writes ``grad x``; MSG's keep bits are regenerated there
from the mask stream ([mask_stream][sparsegrad.kernels.mask_stream]): one ``tl.randint4x``
per group of 8 neurons and timestep, eight 16-bit lanes compared with ``cut``, so no mask is
stored, and what it saw and dropped is counted with two atomic adds per program. Storage may be float32, float16 or
bfloat16; arithmetic is float32.

Without a GPU the kernels run on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``, set before Triton is imported), which the tests use.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ..surrogate import KERNEL_SURROGATES
from .mask_stream import LANES, MASK_ELEMENT, MASK_NEURON, MASK_NONE, neurons_of

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


# The surrogates' ids, from their one table (sparsegrad.surrogate.KERNEL_SURROGATES).
_IDS = {row.names[0]: row.kernel_id for row in KERNEL_SURROGATES}
ATAN = tl.constexpr(_IDS["atan"])
PIECEWISE_LINEAR = tl.constexpr(_IDS["pl"])
SIGMOID = tl.constexpr(_IDS["sigmoid"])
RECTANGULAR = tl.constexpr(_IDS["rect"])
PIECEWISE_EXP = tl.constexpr(_IDS["pexp"])
FAST_SIGMOID = tl.constexpr(_IDS["fast_sigmoid"])
MASK_ELEMENT_MODE = tl.constexpr(MASK_ELEMENT)
MASK_NEURON_MODE = tl.constexpr(MASK_NEURON)
LANES_PER_CALL = tl.constexpr(LANES)


@triton.jit
def _surrogate(x, alpha, c, SURROGATE: tl.constexpr):
    """The pseudo-derivatives as sparsegrad.surrogate computes them; c is the table's c(alpha)."""
    ax = tl.abs(x)
    if SURROGATE == ATAN:
        sg = (1.0 / (x * x * c + 1.0)) * alpha
    elif SURROGATE == PIECEWISE_LINEAR:
        sg = tl.maximum(ax * c + alpha, 0.0)
    elif SURROGATE == SIGMOID:
        s = 1.0 / (1.0 + tl.exp(-(alpha * x)))
        sg = (s - s * s) * alpha
    elif SURROGATE == RECTANGULAR:
        sg = tl.where(ax < c, alpha, 0.0)
    elif SURROGATE == PIECEWISE_EXP:
        sg = tl.exp(ax * -alpha) * c
    else:
        tl.static_assert(SURROGATE == FAST_SIGMOID)
        d = ax * alpha + 1.0
        sg = 1.0 / (d * d)
    return sg


@triton.jit
def _lanes(key, counter, lane):
    """The mask stream's 16-bit lane ``lane`` ([1, 8]) of each counter ([G, 1]): [G, 8]."""
    w0, w1, w2, w3 = tl.randint4x(key, counter)
    word = lane // 2
    bits = tl.where(word == 0, w0, tl.where(word == 1, w1, tl.where(word == 2, w2, w3)))
    return ((bits >> ((lane % 2) * 16).to(tl.uint32)) & 0xFFFF).to(tl.int32)


@triton.jit
def _lif_backward(
    grad_ptr, h_ptr, grad_x_ptr, counts_ptr, n, neurons, steps,
    tau, v_threshold, v_reset, alpha, c, cut, scale, key, offset,
    SURROGATE: tl.constexpr, DETACH_RESET: tl.constexpr, MASK: tl.constexpr, BLOCK: tl.constexpr,
):
    # A block of BLOCK neurons as [BLOCK / 8, 8]: one row per group of the mask stream.
    GROUPS: tl.constexpr = BLOCK // LANES_PER_CALL
    group = tl.program_id(0).to(tl.int64) * GROUPS + tl.arange(0, GROUPS)[:, None]
    lane = tl.arange(0, LANES_PER_CALL)[None, :]
    offs = group * LANES_PER_CALL + lane
    inside = offs < n
    groups_per_step = (n + LANES_PER_CALL - 1) // LANES_PER_CALL
    decay = 1.0 - 1.0 / tau
    carry = tl.zeros([GROUPS, LANES_PER_CALL], tl.float32)
    seen = tl.zeros([GROUPS, LANES_PER_CALL], tl.int32)
    dropped = tl.zeros([GROUPS, LANES_PER_CALL], tl.int32)
    if MASK == MASK_NEURON_MODE:
        neuron = offs % neurons
        neuron_keep = _lanes(key, offset + neuron // LANES_PER_CALL, neuron % LANES_PER_CALL) >= cut
        neuron_factor = tl.where(neuron_keep, scale, 0.0)
    for i in range(steps):
        t = steps - 1 - i
        index = tl.cast(t, tl.int64) * n + offs
        h = tl.load(h_ptr + index, mask=inside, other=0.0).to(tl.float32)
        g = tl.load(grad_ptr + index, mask=inside, other=0.0).to(tl.float32)
        above = h - v_threshold
        sg = _surrogate(above, alpha, c, SURROGATE)
        if MASK == MASK_ELEMENT_MODE:
            # every lane is drawn; a group with SG' == 0 throughout is not counted (as in C++)
            live = tl.max((inside & (sg != 0.0)).to(tl.int32), axis=1)[:, None] != 0
            keep = _lanes(key, offset + tl.cast(t, tl.int64) * groups_per_step + group, lane) >= cut
            sg = tl.where(keep, sg * scale, 0.0)
            seen += (live & inside).to(tl.int32)
            dropped += (live & inside & (keep == 0)).to(tl.int32)
        elif MASK == MASK_NEURON_MODE:
            sg = sg * neuron_factor
            seen += inside.to(tl.int32)
            dropped += (inside & (neuron_keep == 0)).to(tl.int32)
        reset_grad = tl.where(above < 0.0, 1.0, 0.0)
        if not DETACH_RESET:
            reset_grad = (reset_grad - h * sg) + v_reset * sg
        carry = g * sg + decay * carry * reset_grad
        tl.store(grad_x_ptr + index, (carry / tau).to(grad_x_ptr.dtype.element_ty), mask=inside)
    if MASK != 0:
        tl.atomic_add(counts_ptr, tl.sum(tl.sum(seen, axis=1), axis=0).to(tl.int64))
        tl.atomic_add(counts_ptr + 1, tl.sum(tl.sum(dropped, axis=1), axis=0).to(tl.int64))


class TritonKernels:
    """[LIFKernels][sparsegrad.kernels.native.LIFKernels] in Triton."""

    dtypes = (torch.float32, torch.float16, torch.bfloat16)

    def forward(self, x, tau, v_threshold, v_reset):
        x = x.contiguous()
        spikes, h = torch.empty_like(x), torch.empty_like(x)
        steps = x.shape[0]
        n = x.numel() // steps
        if n == 0:
            return spikes, h
        grid = (triton.cdiv(n, _BLOCK),)
        _lif_forward[grid](x, spikes, h, n, steps, tau, v_threshold, v_reset, BLOCK=_BLOCK, num_warps=_WARPS)
        return spikes, h

    def backward(self, grad, h, tau, v_threshold, v_reset, surrogate, detach_reset, mask):
        grad = grad.to(h.dtype).contiguous()
        grad_x = torch.empty_like(h)
        counts = torch.zeros(2, dtype=torch.int64, device=h.device)
        steps = h.shape[0]
        n = h.numel() // steps
        if mask is None:
            mode, cut, scale, key, offset = MASK_NONE, 0, 1.0, 0, 0
        else:
            mode = MASK_NEURON if mask.per_neuron else MASK_ELEMENT
            cut, scale, key, offset = mask.cut, mask.scale, mask.key, mask.offset
        if n == 0:
            return grad_x, counts
        grid = (triton.cdiv(n, _BLOCK),)
        _lif_backward[grid](
            grad, h, grad_x, counts, n, max(neurons_of(h.shape), 1), steps,
            tau, v_threshold, v_reset, surrogate.alpha, surrogate.constant, cut, scale, key, offset,
            SURROGATE=surrogate.kernel_id, DETACH_RESET=bool(detach_reset), MASK=mode, BLOCK=_BLOCK,
            num_warps=_WARPS,
        )
        return grad_x, counts
