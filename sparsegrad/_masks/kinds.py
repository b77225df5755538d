"""Which masking path each foreign neuron kind gets, and why (docs/interop.md, "Which path
each neuron gets"; docs/design.md §2.3.1).

- ``"output"``: the gradient arriving at the neuron's spike output, ``dL/dS``, is masked.
  Exact where the reset carries no gradient: ``dS/dH = SG'`` is then reached only from the
  output, so ``dL/dS * M * SG'`` is Eq. 11. The neuron is not touched (spikingjelly keeps its
  fused kernels).
- ``"swap"``: for the duration of each training forward, the neuron's spike function is
  replaced by one that masks the gradient entering it, ``dL/dS * SG' * M`` with ``dL/dS``
  summed over every use of the spike (output and reset). Exact; spikingjelly then runs its
  reference path.

A kind is decided at attach time from the neuron's configuration.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from torch import nn

__all__ = ["ACCEPTED", "Kind", "foreign_label", "is_foreign_neuron", "kind_of", "unknown_kind_error"]

ACCEPTED = (
    "sparsegrad neurons and surrogates; spikingjelly neurons (BaseNode with a surrogate_function "
    "module) and surrogate modules; snntorch Leaky and Synaptic; norse LIFCell, LIFBoxCell, LIF and "
    "LIFBox; or your own activation modules, masked at their input (classes or a predicate)"
)

_SJ_OUTPUT_KINDS = ("IFNode", "LIFNode", "ParametricLIFNode")
_SNN_KINDS = ("Leaky", "Synaptic")
_NORSE_KINDS = {"LIFCell": False, "LIFBoxCell": False, "LIF": True, "LIFBox": True}  # name -> multi-step


@dataclass(frozen=True)
class Kind:
    """How one foreign neuron is masked.

    Attributes:
        library: ``"spikingjelly"``, ``"snntorch"`` or ``"norse"``.
        label: the class as a user writes it (``"snntorch.Leaky"``).
        path: ``"output"`` or ``"swap"``.
        exact: whether the path gives Eq. 11 exactly.
        reason: why this path (and, if not exact, what differs).
    """

    library: str
    label: str
    path: str
    exact: bool
    reason: str


def foreign_label(module: nn.Module) -> str:
    """``snntorch.Leaky``, ``norse.torch.LIFCell``, ``spikingjelly...neuron.LIFNode``."""
    name = type(module).__name__
    top = type(module).__module__.split(".")[0]
    prefix = {"snntorch": "snntorch", "norse": "norse.torch", "spikingjelly": "spikingjelly.activation_based.neuron"}
    return f"{prefix.get(top, type(module).__module__)}.{name}"


def _library(module: nn.Module) -> str | None:
    top = type(module).__module__.split(".")[0]
    return top if top in ("spikingjelly", "snntorch", "norse") else None


def is_foreign_neuron(module: nn.Module) -> bool:
    """An snntorch or norse neuron (found only with ``targets=``)."""
    snn = sys.modules.get("snntorch")
    if snn is not None and isinstance(module, snn.SpikingNeuron):
        return True
    snn_base = sys.modules.get("norse.torch.module.snn")
    bases = () if snn_base is None else (snn_base.SNNCell, snn_base.SNN, snn_base.SNNRecurrentCell, snn_base.SNNRecurrent)
    return bool(bases) and isinstance(module, bases)


def unknown_kind_error(module: nn.Module, name: str) -> ValueError:
    return ValueError(
        f"MaskedGradient.attach: sparsegrad has no masking path for {foreign_label(module)} "
        f"(at {name or 'the model itself'!r}); targets= accepts {ACCEPTED}"
    )


def _spikingjelly(module: nn.Module, name: str) -> Kind | None:
    sj = sys.modules.get("spikingjelly.activation_based.neuron")
    if sj is None or not isinstance(module, sj.BaseNode):
        return None
    if not isinstance(getattr(module, "surrogate_function", None), nn.Module):
        raise unknown_kind_error(module, name)  # a plain function: out of MSG's reach
    label = foreign_label(module)
    if type(module) in tuple(getattr(sj, n) for n in _SJ_OUTPUT_KINDS) and module.detach_reset:
        return Kind("spikingjelly", label, "output", True, "the reset is detached (detach_reset=True)")
    why = "the reset carries gradient (detach_reset=False)" if not module.detach_reset else (
        "output masking is verified only for " + ", ".join(_SJ_OUTPUT_KINDS)
    )
    return Kind("spikingjelly", label, "swap", True, why)


def _snntorch(module: nn.Module, name: str) -> Kind | None:
    snn = sys.modules.get("snntorch")
    if snn is None or not isinstance(module, snn.SpikingNeuron):
        return None
    if type(module) not in tuple(getattr(snn, n) for n in _SNN_KINDS):
        return None
    label = foreign_label(module)
    if isinstance(getattr(module, "graded_spikes_factor", None), nn.Parameter):
        return Kind("snntorch", label, "swap", True, "a learnable graded_spikes_factor is behind the spike output")
    if module.reset_delay:
        return Kind("snntorch", label, "output", True, "the reset is computed from a detached spike (reset_delay=True)")
    return Kind("snntorch", label, "swap", True, "the spike also feeds this step's reset (reset_delay=False)")


def _norse(module: nn.Module, name: str) -> Kind | None:
    if _library(module) != "norse" or type(module).__name__ not in _NORSE_KINDS:
        return None
    why = (
        "norse's reset uses the spike with its gradient, so the reset's SG' term is not masked "
        "and nothing can reach norse's spike function from outside"
    )
    return Kind("norse", foreign_label(module), "output", False, why)


def kind_of(module: nn.Module, name: str = "") -> Kind | None:
    """The path for a spikingjelly, snntorch or norse neuron; None for anything else.

    Raises:
        ValueError: an snntorch or norse neuron kind sparsegrad has no path for.
    """
    for recognise in (_spikingjelly, _snntorch, _norse):
        kind = recognise(module, name)
        if kind is not None:
            return kind
    if is_foreign_neuron(module):
        raise unknown_kind_error(module, name)
    return None


def norse_multi_step(module: nn.Module) -> bool:
    return _NORSE_KINDS[type(module).__name__]
