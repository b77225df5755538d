"""The LIF and batch-norm mappings between sparsegrad and NIR, and the refusal error.

sparsegrad's LIF (docs/design.md §2.1), per timestep,

    H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau        (tau in timesteps)

is forward Euler at step ``dt`` of NIR's ``LIF``, ``tau_n dv/dt = (v_leak - v) + r I``,
with ``tau_n = tau * dt``, ``r = 1`` and ``v_leak = v_reset``: the Euler step
``v + dt / tau_n * (v_leak - v + r I)`` is the charge above. Both fire and reset to
``v_reset`` (a hard reset). A NIR LIF with other ``r`` or ``v_leak`` is our LIF fed the
current ``r I + v_leak - v_reset``.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from ..neuron import LIF

__all__ = ["NIRExportError", "METADATA_DT", "METADATA_T", "METADATA_INPUT", "METADATA_TWO", "lif_to_nir",
           "lif_from_nir", "fold_batch_norm"]

METADATA_DT = "dt"
"""Graph metadata key: the Euler step ``dt`` (seconds) the graph's time constants assume."""
METADATA_T = "sparsegrad.T"
"""Graph metadata key: the timesteps ``T`` the network was trained with."""
METADATA_INPUT = "sparsegrad.input"
"""Graph metadata key: ``"frames"`` (one event frame per step) or ``"direct"`` (the same
static image at every step)."""
METADATA_TWO = "sparsegrad.two_factors"
"""Graph metadata key: TWO's factors ``[T]`` (paper Eq. 15), the weights of the per-timestep
outputs; absent when the model has no [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead]."""


class NIRExportError(ValueError):
    """A module (or NIR node) with no exact NIR (or sparsegrad) counterpart.

    The message names the module's path, its class and why it cannot be mapped.
    """

    def __init__(self, path: str, obj: object, why: str):
        super().__init__(f"cannot map {path or '<model>'} ({type(obj).__name__}) to NIR: {why}")


def lif_to_nir(lif: LIF, shape: tuple[int, ...], dt: float) -> nir.LIF:
    """NIR ``LIF`` for sparsegrad's [LIF][sparsegrad.neuron.LIF] over neurons of ``shape``.

    ``tau = lif.tau * dt``, ``r = 1``, ``v_leak = v_reset``; ``detach_reset`` only changes
    gradients and is not exported.
    """
    tau, r, v_leak, v_threshold, v_reset = (np.full(shape, value, dtype=np.float64) for value in (
        lif.tau * dt, 1.0, lif.v_reset, lif.v_threshold, lif.v_reset))
    return nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=v_threshold, v_reset=v_reset)


def _uniform(name: str, node: nir.NIRNode, field: str) -> float:
    values = np.unique(np.asarray(getattr(node, field), dtype=np.float64))
    if values.size != 1:
        raise NIRExportError(name, node, f"{field} differs between neurons ({values.size} values); "
                             "sparsegrad's LIF takes one value per layer")
    return float(values[0])


class InputCurrent(nn.Module):
    """``r * I + offset``: the current a NIR LIF with ``r != 1`` or ``v_leak != v_reset``
    feeds sparsegrad's LIF. ``r`` and ``offset`` broadcast over ``[T, B, *neurons]``."""

    def __init__(self, r: np.ndarray, offset: np.ndarray):
        super().__init__()
        self.register_buffer("r", torch.as_tensor(np.asarray(r, dtype=np.float32)))
        self.register_buffer("offset", torch.as_tensor(np.asarray(offset, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.r + self.offset


def lif_from_nir(name: str, node: nir.LIF, dt: float) -> nn.Module:
    """sparsegrad's [LIF][sparsegrad.neuron.LIF] for a NIR ``LIF`` node simulated at ``dt``.

    Raises:
        NIRExportError: ``tau``, ``v_threshold`` or ``v_reset`` differ between neurons, or
            ``tau / dt < 1`` (a step longer than the time constant: likely the wrong ``dt``).
    """
    tau = _uniform(name, node, "tau") / dt
    if not tau >= 1.0:
        raise NIRExportError(name, node, f"tau / dt = {tau:g} timesteps is below 1; sparsegrad's Euler "
                             f"step needs tau >= dt (is dt={dt:g} the step the graph was made for?)")
    v_reset = _uniform(name, node, "v_reset")
    lif = LIF(tau=tau, v_threshold=_uniform(name, node, "v_threshold"), v_reset=v_reset)
    r, v_leak = np.asarray(node.r, dtype=np.float64), np.asarray(node.v_leak, dtype=np.float64)
    if np.allclose(r, 1.0, rtol=0, atol=1e-12) and np.allclose(v_leak, v_reset, rtol=0, atol=1e-12):
        return lif
    return nn.Sequential(InputCurrent(r, v_leak - v_reset), lif)


@torch.no_grad()
def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor | None,
                    bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """Conv/linear ``weight`` and ``bias`` with an eval-mode batch norm after them folded in.

    ``bn(W x + b) = s W x + (s (b - mean) + beta)``, ``s = gamma / sqrt(running_var + eps)``,
    per output channel; computed in float64. ``bn=None`` returns the weights as they are (a
    missing bias as zeros).
    """
    w = weight.detach().double().cpu()
    b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.detach().double().cpu()
    if bn is not None:
        mean, var = bn.running_mean.double().cpu(), bn.running_var.double().cpu()
        gamma = bn.weight.detach().double().cpu() if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias.detach().double().cpu() if bn.bias is not None else torch.zeros_like(mean)
        s = gamma / torch.sqrt(var + bn.eps)
        w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
        b = s * (b - mean) + beta
    return w.numpy(), b.numpy()
