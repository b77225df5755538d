"""Pure kernels: the multi-step LIF neuron with a fused BPTT backward.

:func:`lif_multistep` runs the whole time loop inside one autograd Function. Forward
keeps only the charged membrane potential ``H`` (one tensor the size of the input);
spikes and reset masks are recomputed from it in backward. The backward is a linear
recurrence in time: every term that does not depend on the future (surrogate
derivative, mask, reset gradient) is computed for all timesteps at once, and the
sequential part is a single fused multiply-add per timestep.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .surrogate import PiecewiseLinear, Surrogate, SurrogateHook, apply_hooks, build

__all__ = ["lif_multistep", "check_lif_parameters"]


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


class _LIFMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau, v_threshold, v_reset, surrogate, detach_reset, hooks):
        spikes, h_blocks = _charge_and_fire(x, tau, v_threshold, v_reset)
        ctx.save_for_backward(*h_blocks)
        ctx.params = (tau, v_threshold, v_reset, surrogate, detach_reset, hooks)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        if torch.is_grad_enabled():  # backward(create_graph=True): no silent zero 2nd order
            raise RuntimeError(
                "lif_multistep's fused backward is not differentiable: higher-order gradients "
                "(create_graph=True) through the LIF kernel are not supported"
            )
        h_blocks = ctx.saved_tensors
        tau, v_threshold, v_reset, surrogate, detach_reset, hooks = ctx.params
        decay = 1 - 1 / tau
        grad_x = torch.empty_like(grad_spikes, memory_format=torch.contiguous_format)
        carry = None  # gH at the first step of the block after this one
        stop = grad_x.shape[0]
        for h in reversed(h_blocks):
            start = stop - h.shape[0]
            x_above = h - v_threshold
            sg = apply_hooks(surrogate.derivative(x_above), hooks, start)
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
        return grad_x, None, None, None, None, None, None


def check_lif_parameters(tau, v_threshold, v_reset) -> tuple[float, float, float]:
    """Validate LIF constants; return them as floats.

    Raises:
        ValueError: ``tau`` not a finite number ``>= 1``, or not ``v_threshold > v_reset``
            (both finite); the message names the values.
    """
    try:
        tau, v_threshold, v_reset = float(tau), float(v_threshold), float(v_reset)
    except (TypeError, ValueError):
        raise ValueError(
            f"LIF constants must be numbers, got tau={tau!r}, v_threshold={v_threshold!r}, "
            f"v_reset={v_reset!r}"
        ) from None
    if not (math.isfinite(tau) and tau >= 1):
        raise ValueError(f"LIF: tau must be a finite number >= 1 (in timesteps), got {tau!r}")
    if not (math.isfinite(v_threshold) and math.isfinite(v_reset) and v_threshold > v_reset):
        raise ValueError(
            f"LIF: need finite v_threshold > v_reset, got v_threshold={v_threshold!r}, "
            f"v_reset={v_reset!r}"
        )
    return tau, v_threshold, v_reset


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 0.5,
    v_reset: float = 0.0,
    surrogate: Surrogate | str | None = None,
    detach_reset: bool = False,
    hooks: tuple[SurrogateHook, ...] | None = None,
) -> torch.Tensor:
    """Multi-step leaky integrate-and-fire neuron with hard reset (paper Eq. 1-5).

    For ``t = 0 .. T-1``, starting from ``V[-1] = v_reset``::

        H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau      # charge (Eq. 3, sign fixed)
        S[t] = Heaviside(H[t] - v_threshold)                    # fire (Eq. 4)
        V[t] = H[t] (1 - S[t]) + v_reset S[t]                   # hard reset (Eq. 5)

    Backward is BPTT through all three equations with ``dS/dH`` replaced by the
    surrogate's pseudo-derivative; the reset carries surrogate gradient unless
    ``detach_reset``. State is not kept between calls.

    Args:
        x: input current ``X``, time first.
        tau: membrane time constant, in timesteps (``>= 1``). Default 2.0.
        v_threshold: firing threshold, in the input's units. Default 0.5.
        v_reset: reset and resting potential. Default 0.0.
        surrogate: a :class:`~sparsegrad.surrogate.Surrogate` or a name for
            :func:`~sparsegrad.surrogate.build`; default piecewise-linear with ``alpha = 2``.
        detach_reset: stop the gradient through the spike in the reset. Default False.
        hooks: callables ``hook(sg, t0)`` applied in order, in backward, to the
            pseudo-derivative ``SG'(H - v_threshold)`` of each block of timesteps
            ``[Tb, B, ...]`` starting at ``t0``, last block first (MSG's mask, Eq. 11; see
            :meth:`~sparsegrad.surrogate.Surrogate.register_surrogate_hook`). Default:
            the surrogate's registered hooks (``surrogate.active_hooks()``).

    Shape:
        - Input: ``[T, B, ...]``, floating point.
        - Output: spikes ``[T, B, ...]`` (0. or 1.), same dtype as the input.

    Raises:
        ValueError: ``x`` is not a floating-point tensor ``[T, B, ...]`` with ``T >= 1``;
            bad constants (see :func:`check_lif_parameters`); an unknown surrogate.

    The backward is not itself differentiable (``create_graph=True`` raises).

    Reference: paper Eq. 1-5; equals spikingjelly ``LIFNode(decay_input=True,
    v_reset=v_reset, step_mode="m")``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1 or not x.is_floating_point():
        got = f"dtype {x.dtype} and shape {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"lif_multistep expects a floating-point input of shape [T, B, ...] (time first, "
            f"T >= 1), got {got}"
        )
    tau, v_threshold, v_reset = check_lif_parameters(tau, v_threshold, v_reset)
    surrogate = PiecewiseLinear() if surrogate is None else build(surrogate)
    hooks = surrogate.active_hooks() if hooks is None else tuple(hooks)
    return _LIFMultiStep.apply(x, tau, v_threshold, v_reset, surrogate, bool(detach_reset), hooks)
