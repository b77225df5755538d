"""Pure kernels: the multi-step LIF neuron with a fused BPTT backward, on several backends.

[lif_multistep][sparsegrad.functional.lif_multistep] runs the whole time loop inside one
autograd Function that keeps only the charged membrane potential ``H`` for backward.
``backend`` chooses where the loop runs (see [sparsegrad.kernels][sparsegrad.kernels]):
``"torch"`` (torch operations), ``"cpp"`` (a C++ CPU kernel) or ``"triton"`` (a GPU
kernel); ``"auto"`` takes the fastest that can run the call. All give the same spikes, the
same gradients to rounding, and the same MSG masks bit for bit.
"""

from __future__ import annotations

import math

import torch

from ._validate import check_bool, check_real
from .kernels import available_backends, native_kernels
from .kernels.native import NativeLIF
from .kernels.lif_torch import TorchLIF, is_stream_hook
from .surrogate import PiecewiseLinear, Surrogate, SurrogateHook, build, kernel_call

__all__ = ["lif_multistep", "check_lif_parameters", "available_backends"]


def check_lif_parameters(tau, v_threshold, v_reset) -> tuple[float, float, float]:
    """Validate LIF constants; return them as floats.

    numpy and 0-d torch scalars are accepted; bools and strings are not numbers here.

    Raises:
        ValueError: ``tau`` not a finite number ``>= 1``, a constant that is not a finite
            real number, or not ``v_threshold > v_reset``; the message names the value.
    """
    tau = check_real("LIF: tau", tau, 1.0, math.inf, what="(in timesteps)")
    v_threshold = check_real("LIF: v_threshold", v_threshold)
    v_reset = check_real("LIF: v_reset", v_reset)
    if not v_threshold > v_reset:
        raise ValueError(
            f"LIF: need v_threshold > v_reset, got v_threshold={v_threshold!r}, v_reset={v_reset!r}"
        )
    return tau, v_threshold, v_reset


def _mask_hook_only(hooks: tuple) -> tuple[bool, object]:
    """(the native kernels can run these hooks, MSG's hook or None)."""
    if not hooks:
        return True, None
    if len(hooks) == 1 and is_stream_hook(hooks[0]):
        return True, hooks[0]
    return False, None


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 0.5,
    v_reset: float = 0.0,
    surrogate: Surrogate | str | None = None,
    detach_reset: bool = False,
    hooks: tuple[SurrogateHook, ...] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Multi-step leaky integrate-and-fire neuron with hard reset (paper Eq. 1-5).

    For ``t = 0 .. T-1``, starting from ``V[-1] = v_reset``:

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
        surrogate: a [Surrogate][sparsegrad.surrogate.Surrogate] or a name for
            [build][sparsegrad.surrogate.build]; default piecewise-linear with ``alpha = 2``.
        detach_reset: stop the gradient through the spike in the reset. Default False.
        hooks: callables ``hook(sg, t0)`` applied in order, in backward, to the
            pseudo-derivative ``SG'(H - v_threshold)`` of each block of timesteps
            ``[Tb, B, ...]`` starting at ``t0``, last block first (MSG's mask, Eq. 11; see
            [register_surrogate_hook][sparsegrad.surrogate.Surrogate.register_surrogate_hook]).
            Default: the surrogate's registered hooks (``surrogate.active_hooks()``).
        backend: ``"auto"`` (default): ``"triton"`` for CUDA tensors when Triton is
            importable, ``"cpp"`` for float32/float64 CPU tensors when the extension builds,
            else ``"torch"`` (other devices, float16/bfloat16 on the CPU). Or one of
            ``"torch"``, ``"cpp"``, ``"triton"``. A call the native kernel cannot run (a
            hook other than MSG's, a surrogate other than the six built-in classes, a
            subclass included) runs on ``"torch"``. Every backend draws MSG's masks from the
            same stream, so a fallback changes no mask ([sparsegrad.kernels][sparsegrad.kernels]
            lists when ``"auto"`` falls back).

    Shape:
        - Input: ``[T, B, ...]``, floating point.
        - Output: spikes ``[T, B, ...]`` (0. or 1.), same dtype as the input.

    Returns:
        The spikes.

    Raises:
        ValueError: ``x`` is not a floating-point tensor ``[T, B, ...]`` with ``T >= 1``;
            bad constants (see [check_lif_parameters][sparsegrad.functional.check_lif_parameters]);
            a non-bool ``detach_reset``; an unknown surrogate or backend; a backend that
            cannot run ``x`` (``"cpp"`` off the CPU or in half precision, ``"triton"`` on a
            CPU).

    The backward is not itself differentiable (``create_graph=True`` raises), and the fused
    kernels do not run under ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``): torch
    raises its "must override the setup_context staticmethod" error. Use
    ``torch.autograd.grad`` or ``.backward()`` instead.

    Example:
        ```python
        x = torch.rand(8, 32, 128, requires_grad=True)      # [T, B, N]
        spikes = lif_multistep(x, tau=2.0, surrogate="atan", backend="auto")
        spikes.sum().backward()
        ```

    Reference: paper Eq. 1-5; docs/design.md §2.1; equals spikingjelly
    ``LIFNode(decay_input=True, v_reset=v_reset, step_mode="m")``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1 or not x.is_floating_point():
        got = f"dtype {x.dtype} and shape {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"lif_multistep expects a floating-point input of shape [T, B, ...] (time first, "
            f"T >= 1), got {got}"
        )
    tau, v_threshold, v_reset = check_lif_parameters(tau, v_threshold, v_reset)
    detach_reset = check_bool("LIF: detach_reset", detach_reset)
    surrogate = PiecewiseLinear() if surrogate is None else build(surrogate)
    hooks = surrogate.active_hooks() if hooks is None else tuple(hooks)
    kernels = native_kernels(backend, x)
    runnable, mask_hook = _mask_hook_only(hooks)
    call = kernel_call(surrogate)
    if kernels is None or not runnable or call is None:
        return TorchLIF.apply(x, tau, v_threshold, v_reset, surrogate, detach_reset, hooks)
    return NativeLIF.apply(x, kernels, tau, v_threshold, v_reset, call, detach_reset, mask_hook)
