"""Finding what [MaskedGradient.attach][sparsegrad.masked.MaskedGradient.attach] masks: the
modules ``targets`` selects, where each one's mask goes (a [Plan][sparsegrad._masks.targets.Plan]),
which of them ``last=`` keeps (the order a forward calls them in), who masks them already, and the
messages when something is missing or inexact."""

from __future__ import annotations

import copy
import functools
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from .._validate import check_positive_int
from ..surrogate import Surrogate
from .foreign import mask_foreign_neuron
from .installers import mask_module_input, mask_sparsegrad_surrogate
from .kinds import Kind, foreign_label, is_foreign_neuron, kind_of
from .sampler import MaskSampler

__all__ = [
    "OWNERS", "Plan", "Targets", "nothing_found", "plan", "plan_last", "selector", "warn_approximate", "warn_missed",
]

Targets = Union[type, "tuple[type, ...]", Callable[[nn.Module], bool]]


def _own_surrogate(module: nn.Module) -> Surrogate | None:
    """The sparsegrad surrogate a module is, or that a sparsegrad neuron holds."""
    if isinstance(module, Surrogate):
        return module
    inner = getattr(module, "surrogate", None)
    return inner if isinstance(inner, Surrogate) else None


def _is_spikingjelly_neuron(module: nn.Module) -> bool:
    base = sys.modules.get("spikingjelly.activation_based.neuron")
    return base is not None and isinstance(module, base.BaseNode) and isinstance(
        getattr(module, "surrogate_function", None), nn.Module
    )


def _is_spikingjelly_surrogate(module: nn.Module) -> bool:
    sj = sys.modules.get("spikingjelly.activation_based.surrogate")
    return sj is not None and isinstance(module, sj.SurrogateFunctionBase)


# Whatever is masked (a surrogate, a neuron, an optimizer) -> the tokens of the MaskedGradients
# masking it. Weak keys: a copy of a model is not in it, and is not masked.
OWNERS: weakref.WeakKeyDictionary[object, set[object]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Plan:
    """One activation to mask: where the mask goes (``point``) and how."""

    name: str
    module: nn.Module
    point: nn.Module  # the shared surrogate of sparsegrad neurons, else the module
    kind: Kind | None  # a foreign neuron's path, or None
    surrogate: Surrogate | None

    @property
    def label(self) -> str:
        return self.kind.label if self.kind is not None else type(self.module).__name__

    def install(self, sampler: MaskSampler):
        if self.kind is not None:
            return mask_foreign_neuron(self.module, self.kind, self.name, sampler)
        if self.surrogate is not None:
            return mask_sparsegrad_surrogate(self.surrogate, sampler)
        return mask_module_input(self.module, sampler)


def _activations(found: list[tuple[str, nn.Module]]) -> list[Plan]:
    """One entry per activation found: neurons first, so that a surrogate module a neuron holds
    goes with the neuron; neurons sharing one sparsegrad surrogate share its ``point``."""
    kinds = {id(m): kind_of(m, name) for name, m in found}  # raises for unknown neuron kinds
    neuron_first = sorted(found, key=lambda nm: 0 if kinds[id(nm[1])] is not None or _holds_surrogate(nm[1]) else 1)
    claimed: set[int] = set()  # modules covered already: neurons and what they hold
    out: list[Plan] = []
    for name, module in neuron_first:
        if id(module) in claimed:
            continue
        claimed.update(id(m) for m in module.modules())
        kind = kinds[id(module)]
        surrogate = _own_surrogate(module) if kind is None else None
        out.append(Plan(name, module, module if surrogate is None else surrogate, kind, surrogate))
    return out


def _once_per_point(activations: list[Plan]) -> list[Plan]:
    points: set[int] = set()
    plans = []
    for each in activations:
        if id(each.point) not in points:
            points.add(id(each.point))
            plans.append(each)
    return plans


def plan(found: list[tuple[str, nn.Module]]) -> list[Plan]:
    """What to mask: every activation, a sparsegrad surrogate shared by several neurons once."""
    return _once_per_point(_activations(found))


def _call_order(model: nn.Module, names: list[str], example) -> list[str]:
    """``names`` (of modules of ``model``) in the order a forward of ``example`` first calls
    them; ones it does not call are left out. The forward runs on a copy, without gradient,
    so that ``model``'s state (batch-norm statistics, neuron state) is untouched."""
    twin = copy.deepcopy(model)
    modules = dict(twin.named_modules())
    order: list[str] = []
    for name in names:
        modules[name].register_forward_pre_hook(functools.partial(_first_call, order, name))
    with torch.no_grad():
        twin(*example) if isinstance(example, tuple) else twin(example)
    return order


def _first_call(order: list[str], name: str, _module: nn.Module, _args: tuple) -> None:
    if name not in order:
        order.append(name)


def plan_last(model: nn.Module, found: list[tuple[str, nn.Module]], last, example) -> list[Plan]:
    """What to mask with ``attach(last=k, example=x)``: the last ``k`` activations that the forward
    of ``x`` calls, in the order it first calls them (not the order the modules are registered in).

    Raises:
        ValueError: ``last`` not an int >= 1, more than the activations the forward calls, or
            one of the last ``k`` sharing its sparsegrad surrogate with an earlier activation.
    """
    last = check_positive_int("MaskedGradient.attach: last", last)
    activations = _activations(found)
    order = _call_order(model, [a.name for a in activations], example)
    if last > len(order):
        raise ValueError(
            f"MaskedGradient.attach: last={last!r}, but the forward of example calls {len(order)} "
            f"spiking activation(s) of the {len(activations)} found; pass last= in [1, {len(order)}]"
        )
    chosen = set(order[-last:])
    points = {id(a.point) for a in activations if a.name in chosen}
    shared = [a.name or "the model" for a in activations if a.name not in chosen and id(a.point) in points]
    if shared:
        raise ValueError(
            f"MaskedGradient.attach: last={last!r} would also mask {shared}, which share one sparsegrad "
            "surrogate with a masked neuron; give each LIF its own surrogate (the default)"
        )
    return _once_per_point([a for a in activations if a.name in chosen])


def _holds_surrogate(module: nn.Module) -> bool:
    return not isinstance(module, Surrogate) and _own_surrogate(module) is not None


def _foreign_neurons(model: nn.Module) -> dict[str, list[str]]:
    """snntorch and norse neurons in ``model``: label -> the names they are at."""
    out: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if is_foreign_neuron(module):
            out.setdefault(foreign_label(module), []).append(name or "the model")
    return out


def _listing(found: dict[str, list[str]]) -> str:
    return "; ".join(f"{label} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" for label, names in found.items())


def nothing_found(model: nn.Module, targets) -> str:
    if targets is not None:
        return (
            f"MaskedGradient.attach: no module matching targets={targets!r} in {type(model).__name__}; "
            "pass targets= (classes or a predicate) naming your spiking activations"
        )
    foreign = _foreign_neurons(model)
    if foreign:
        return (
            f"MaskedGradient.attach: no sparsegrad or spikingjelly spiking activation in "
            f"{type(model).__name__}; found {_listing(foreign)}; pass targets=({', '.join(foreign)},)"
        )
    return (
        f"MaskedGradient.attach: no sparsegrad/spikingjelly spiking activation in {type(model).__name__}; "
        "pass targets= (classes or a predicate) naming your spiking activations"
    )


def warn_approximate(plans: list[Plan]) -> None:
    """One warning per neuron kind that no path masks exactly."""
    inexact: dict[Kind, list[str]] = {}
    for each in plans:
        if each.kind is not None and not each.kind.exact:
            inexact.setdefault(each.kind, []).append(each.name or "the model")
    for kind, names in inexact.items():
        warnings.warn(
            f"MaskedGradient.attach: {_listing({kind.label: names})} is masked approximately: "
            f"{kind.reason}. It gets the best path there is, dL/dS masked at the spike output; see "
            "docs/interop.md, 'Which path each neuron gets'",
            UserWarning,
            stacklevel=3,
        )


def warn_missed(model: nn.Module) -> None:
    """Default targets do not find snntorch and norse neurons: say so rather than miss them."""
    foreign = _foreign_neurons(model)
    if foreign:
        warnings.warn(
            f"MaskedGradient.attach: {_listing(foreign)} not masked: the default targets find "
            f"sparsegrad and spikingjelly neurons only; name them too, e.g. "
            f"targets=lambda m: isinstance(m, ({', '.join(foreign)}, ...))",
            UserWarning,
            stacklevel=3,
        )


def _default_target(module: nn.Module) -> bool:
    return (
        _own_surrogate(module) is not None
        or _is_spikingjelly_neuron(module)
        or _is_spikingjelly_surrogate(module)
    )


def selector(targets: Targets | None) -> Callable[[nn.Module], bool]:
    if targets is None:
        return _default_target
    if isinstance(targets, nn.Module):
        raise ValueError(
            f"MaskedGradient.attach: targets must be classes or a predicate, got the module "
            f"instance {targets!r}; pass its class, targets=({type(targets).__name__},)"
        )
    if isinstance(targets, type):
        targets = (targets,)
    if isinstance(targets, Iterable) and not isinstance(targets, (str, bytes)):
        classes = tuple(targets)
        if not classes or not all(isinstance(c, type) for c in classes):
            raise ValueError(f"MaskedGradient.attach: targets must be classes or a predicate, got {targets!r}")
        return lambda module: isinstance(module, classes)
    if callable(targets):
        return targets
    raise ValueError(f"MaskedGradient.attach: targets must be classes or a predicate, got {targets!r}")
