"""Pure kernels: the multi-step LIF neuron with a fused BPTT backward.

:func:`lif_multistep` runs the whole time loop inside one autograd Function. Forward
keeps only the charged membrane potential ``H`` (one tensor the size of the input);
spikes and reset masks are recomputed from it in backward. The backward is a linear
recurrence in time: every term that does not depend on the future (surrogate
derivative, mask, reset gradient) is computed for all timesteps at once, and the
sequential part is a single fused multiply-add per timestep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .surrogate import PiecewiseLinear, Surrogate, SurrogateHook, apply_hooks

__all__ = ["lif_multistep"]


def _charge_and_fire(
    x: torch.Tensor, tau: float, v_threshold: float, v_reset: float
) -> torch.Tensor:
    """Run the LIF recurrence; return the charged potential ``H`` of every step.

    The loop runs on negated potentials so that fire-and-reset is one fused
    ``threshold`` call (keep ``-H`` where ``-H > -v_threshold``, else ``-v_reset``),
    several times faster than a compare and a masked fill. IEEE rounding is symmetric,
    so ``-H`` here is bit for bit the negation of spikingjelly's
    ``H = V + (X - (V - v_reset)) / tau``.
    """
    neg_x = torch.neg(x)
    neg_h = torch.empty_like(neg_x)
    tau_t = torch.tensor(tau, dtype=x.dtype, device=x.device)
    neg_v = torch.full_like(neg_x[0], -v_reset)
    for t in range(x.shape[0]):
        torch.sub(neg_x[t], neg_v + v_reset if v_reset else neg_v, out=neg_h[t])
        torch.addcdiv(neg_v, neg_h[t], tau_t, out=neg_h[t])
        neg_v = F.threshold(neg_h[t], -v_threshold, -v_reset)
    return neg_h.neg_()


class _LIFMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau, v_threshold, v_reset, surrogate, detach_reset, hooks):
        h = _charge_and_fire(x, tau, v_threshold, v_reset)
        ctx.save_for_backward(h)
        ctx.params = (tau, v_threshold, v_reset, surrogate, detach_reset, hooks)
        return torch.ge(h, v_threshold, out=torch.empty_like(h))

    @staticmethod
    def backward(ctx, grad_spikes):
        (h,) = ctx.saved_tensors
        tau, v_threshold, v_reset, surrogate, detach_reset, hooks = ctx.params
        x_above = h - v_threshold
        sg = apply_hooks(surrogate.derivative(x_above), hooks)
        # dV[t]/dH[t] through the hard reset V = H (1 - S) + v_reset S, written over x_above.
        reset_grad = torch.lt(x_above, 0, out=x_above)
        if not detach_reset:
            reset_grad.addcmul_(h, sg, value=-1)
            if v_reset:
                reset_grad.add_(sg, alpha=v_reset)
        # gH[t] = gS[t] SG'[t] + (1 - 1/tau) gH[t+1] dV[t]/dH[t]; gX[t] = gH[t] / tau
        grad_h = sg.mul_(grad_spikes)
        decay = 1 - 1 / tau
        for t in range(h.shape[0] - 2, -1, -1):
            grad_h[t].addcmul_(grad_h[t + 1], reset_grad[t], value=decay)
        return grad_h.div_(tau), None, None, None, None, None, None


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 0.5,
    v_reset: float = 0.0,
    surrogate: Surrogate | None = None,
    detach_reset: bool = False,
    hooks: tuple[SurrogateHook, ...] = (),
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
        surrogate: a :class:`~sparsegrad.surrogate.Surrogate`; default
            piecewise-linear with ``alpha = 2``.
        detach_reset: stop the gradient through the spike in the reset. Default False.
        hooks: callables applied in order to the pseudo-derivative ``SG'(H - v_threshold)``
            of shape ``[T, B, ...]`` in backward (MSG's mask, Eq. 11).

    Shape:
        - Input: ``[T, B, ...]``, floating point.
        - Output: spikes ``[T, B, ...]`` (0. or 1.), same dtype as the input.

    Raises:
        ValueError: if ``x`` has fewer than 2 dimensions or is not floating point.

    Reference: paper Eq. 1-5; equals spikingjelly ``LIFNode(decay_input=True,
    v_reset=v_reset, step_mode="m")``.
    """
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(
            f"lif_multistep expects a floating-point input of shape [T, B, ...] (time first), "
            f"got dtype {x.dtype} and shape {list(x.shape)}"
        )
    surrogate = PiecewiseLinear() if surrogate is None else surrogate
    return _LIFMultiStep.apply(
        x, float(tau), float(v_threshold), float(v_reset), surrogate, detach_reset, hooks
    )
