"""Spiking neurons as modules over the pure kernels of [sparsegrad.functional][sparsegrad.functional]."""

from __future__ import annotations

import torch
from torch import nn

from . import surrogate as sg
from ._validate import check_bool
from .functional import check_lif_parameters, lif_multistep
from .kernels import BACKENDS

__all__ = ["LIF"]


class LIF(nn.Module):
    """Multi-step leaky integrate-and-fire neuron with hard reset (paper Eq. 1-5).

        H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau
        S[t] = Heaviside(H[t] - v_threshold)
        V[t] = H[t] (1 - S[t]) + v_reset S[t],        V[-1] = v_reset

    The whole sequence is processed in one call and no state is kept between calls
    (no ``reset_net``). Forward and BPTT backward are fused
    ([lif_multistep][sparsegrad.functional.lif_multistep]): only the charged potential is
    saved for backward.

    Args:
        tau: membrane time constant in timesteps, ``>= 1``. Default 2.0 (paper).
        v_threshold: firing threshold, in the input's units. Default 0.5 (paper).
        v_reset: reset and resting potential, ``< v_threshold``. Default 0.0.
        surrogate: a surrogate name for [build][sparsegrad.surrogate.build] (``"pl"``,
            ``"atan"``, ...) or a [Surrogate][sparsegrad.surrogate.Surrogate]. Default ``"pl"``.
        alpha: the surrogate's sharpness; ``None`` takes its default (2.0 for
            ``"pl"`` and ``"atan"``).
        detach_reset: stop the gradient through the spike in the reset. Default False
            (the authors' code keeps it). Must be a bool (``"0"`` raises).
        backend: where the time loop runs: ``"auto"`` (default), ``"torch"``, ``"cpp"`` or
            ``"triton"``; see [lif_multistep][sparsegrad.functional.lif_multistep].

    Shape:
        - Input: current ``[T, B, ...]``, time first, floating point.
        - Output: spikes ``[T, B, ...]``, 0. or 1., same dtype.

    Raises:
        ValueError: for ``tau < 1``, ``v_threshold <= v_reset``, non-finite values or
            non-numbers (bools and strings included), a non-bool ``detach_reset``, an
            unknown surrogate or backend (at construction), or an input without a
            ``[T, B]`` prefix.
        RuntimeError: under ``torch.func`` transforms (``grad``, ``vmap``): the fused
            backward is an autograd Function without ``setup_context``; use
            ``torch.autograd.grad`` or ``.backward()``.

    Reference: paper Eq. 1-5 and docs/design.md §2.1; spikes equal spikingjelly's
    ``LIFNode(decay_input=True, v_reset=0., step_mode="m")`` at the same parameters.

    Example:
        ```python
        lif = LIF()
        spikes = lif(torch.rand(10, 4, 128))      # T=10, B=4
        spikes.shape                              # torch.Size([10, 4, 128])
        ```
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 0.5,
        v_reset: float = 0.0,
        surrogate: str | sg.Surrogate = "pl",
        alpha: float | None = None,
        detach_reset: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        tau, v_threshold, v_reset = check_lif_parameters(tau, v_threshold, v_reset)
        if backend not in BACKENDS:
            raise ValueError(f"LIF: unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
        self.tau = tau
        self.v_threshold = v_threshold
        self.v_reset = v_reset
        self.detach_reset = check_bool("LIF: detach_reset", detach_reset)
        self.backend = backend
        self.surrogate = sg.build(surrogate, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(
            x,
            self.tau,
            self.v_threshold,
            self.v_reset,
            self.surrogate,
            self.detach_reset,
            self.surrogate.active_hooks(),
            self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}, backend={self.backend!r}"
        )
