"""MSG, the Masked Surrogate Gradient (paper Eq. 10-14), as a model-agnostic tool.

``MaskedGradient(p)`` multiplies the surrogate gradient of every spiking activation by
a Bernoulli(1 - p) mask ``M`` (``p`` is the drop probability):

    dL/dx = dL/dS * SG'(x) * M,        x = H - v_threshold            (Eq. 10-11)

optionally rescaled by ``1 / (1 - p)`` so that the mean is kept (Eq. 13-14).

How each kind of activation is masked (activation mode, [attach][sparsegrad.masked.MaskedGradient.attach]):

- sparsegrad surrogates, and the neurons built on them ([LIF][sparsegrad.neuron.LIF]):
  a surrogate hook. The native LIF kernels (``cpp``, ``triton``) recognise it and draw
  each element's keep bit inside their backward from a counter-based generator
  (Philox4x32-10, as Triton's ``tl.rand``): no mask tensor, no extra pass. The ``torch``
  kernel multiplies ``SG'(x)`` by a drawn mask. Exact either way.
- spikingjelly neurons: their fused multi-step kernels never call the surrogate module,
  so the neuron's ``surrogate_function`` is wrapped for the lifetime of the attachment;
  spikingjelly then runs its reference path. Same spikes; exact masking; slower.
- spikingjelly surrogate modules used on their own, and any user target: a forward
  pre-hook routes the module's first input through an identity whose backward applies
  the mask, i.e. the gradient *leaving* the module w.r.t. its input is masked. For a
  whole neuron whose spike function is out of reach (snntorch's ``Leaky``) this masks
  ``dL/dX`` of the input current, an approximation of Eq. 11.

Optimizer mode ([wrap][sparsegrad.masked.MaskedGradient.wrap]) masks every ``param.grad``
before each optimizer step, with the same mask on every data-parallel rank.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Union

import torch
from torch import nn

from ._masks.installers import (
    mask_module_input,
    mask_optimizer_grads,
    mask_sparsegrad_surrogate,
    mask_spikingjelly_neuron,
)
from ._masks.sampler import MaskSampler
from .surrogate import Surrogate

__all__ = ["MaskedGradient"]

Targets = Union[type, "tuple[type, ...]", Callable[[nn.Module], bool]]


class MaskedGradient:
    """Masked Surrogate Gradient (MSG): sparse, random surrogate gradients.

    Attach it to a model (activation mode, the method of the paper) or wrap an optimizer
    (masks parameter gradients). Both can be undone with [remove][sparsegrad.masked.MaskedGradient.remove],
    and the object is a context manager.

    Args:
        p: drop probability in ``[0, 1]``; ``M ~ Bernoulli(1 - p)``. Default 0.5 (paper).
            ``p = 0`` is plain surrogate training bit for bit (no random numbers drawn).
            numpy and 0-d torch scalars are accepted.
        rescale: multiply kept entries by ``1 / (1 - p)`` (Eq. 13), giving
            ``E[G] = mu`` and ``Var[G] = sigma^2 + p/(1-p) (mu^2 + sigma^2)`` (Eq. 14).
            Default False: kept entries unscaled (Eq. 11, the authors' code),
            ``E[G] = (1 - p) mu``. Must be a bool (a string such as ``"False"`` raises).
        granularity: ``"element"`` (default): an independent draw per element (sample,
            neuron, timestep), per layer, per backward, as the released code.
            ``"neuron"``: one draw per neuron shared over batch and time, per forward of the
            activation (the paper's §4.2 wording). It reads activation inputs as
            time-first ``[T, B, ...]`` (a spikingjelly neuron in single-step mode gets a
            fresh mask per timestep); in optimizer mode it is one draw per output unit
            (first dimension of the parameter).
        seed: seed of the masks' own generator(s), one per device (the native kernels
            draw each call's Philox key from the CPU one). Default None: the global RNG in
            activation mode; in optimizer mode a seed shared by all ranks.
        generator: a ``torch.Generator`` to draw from on its device (exclusive with seed).
        schedule: ``schedule(step) -> p`` giving the drop probability at each training
            step ([step_count][sparsegrad.masked.MaskedGradient.step_count], advanced by
            [step][sparsegrad.masked.MaskedGradient.step] once per optimizer step;
            ``sparsegrad.train`` calls it). Overrides ``p``; read once per step.

    Raises:
        ValueError: ``p`` outside ``[0, 1]``, ``p = 1`` with ``rescale``, a non-bool
            ``rescale``, an unknown granularity, both ``seed`` and ``generator``, a schedule
            that returns a bad ``p`` (at construction or at the step that reads it), or
            [attach][sparsegrad.masked.MaskedGradient.attach] finding no spiking activation.
        TypeError: a hooked activation called with a non-tensor first input.

    Example:
        ```python
        msg = MaskedGradient(p=0.5).attach(model)   # every LIF / spikingjelly neuron
        ...
        msg.step()                                   # once per optimizer step
        msg.remove()
        ```

    Reference: paper Eq. 10-14 and §4.2; docs/design.md §2.3.
    """

    def __init__(
        self,
        p: float = 0.5,
        *,
        rescale: bool = False,
        granularity: str = "element",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        schedule: Callable[[int], float] | None = None,
    ):
        self._sampler = MaskSampler(p, rescale, granularity, seed, generator, schedule)
        self._handles: list = []
        self._claimed: set[int] = set()  # what this object masks already: never twice

    # ----------------------------------------------------------------------------- state
    @property
    def p(self) -> float:
        """The drop probability in force now (``schedule(step_count)`` if scheduled)."""
        return self._sampler.p

    @property
    def rescale(self) -> bool:
        """Whether kept entries are multiplied by ``1 / (1 - p)``."""
        return self._sampler.rescale

    @property
    def granularity(self) -> str:
        """``"element"`` or ``"neuron"``."""
        return self._sampler.granularity

    @property
    def seed(self) -> int | None:
        """The masks' seed (None: the global RNG or the given generator)."""
        return self._sampler.seed

    @property
    def schedule(self) -> Callable[[int], float] | None:
        """The ``p`` schedule, if any."""
        return self._sampler.schedule

    @property
    def step_count(self) -> int:
        """Training steps taken ([step][sparsegrad.masked.MaskedGradient.step] calls)."""
        return self._sampler.step_count

    @property
    def stats(self) -> dict[str, int]:
        """Gradient elements seen and dropped since construction (``{"seen", "dropped"}``)."""
        return self._sampler.stats()

    def step(self) -> None:
        """Advance the training-step counter and read ``schedule`` for the new step.

        Raises:
            ValueError: the schedule returns a bad ``p`` for the new step.
        """
        self._sampler.step()

    def state_dict(self) -> dict:
        """Step counter, statistics and generator states, for exact resume."""
        return self._sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore what [state_dict][sparsegrad.masked.MaskedGradient.state_dict] saved
        (generators are recreated as needed)."""
        self._sampler.load_state_dict(state)

    # ------------------------------------------------------------------ activation mode
    def attach(self, model: nn.Module, targets: Targets | None = None) -> "MaskedGradient":
        """Mask the surrogate gradient of every spiking activation in ``model``.

        Args:
            model: any module.
            targets: ``None`` (default) finds sparsegrad surrogates and neurons and
                spikingjelly neurons and surrogate modules. Otherwise a class, a tuple of
                classes, or a predicate ``f(module) -> bool`` choosing the modules to mask
                instead (e.g. ``targets=(snntorch.Leaky,)``).

        Returns:
            ``self``, so that ``msg = MaskedGradient(0.5).attach(model)`` works.

        Raises:
            ValueError: if no module matches (nothing would be masked).
            TypeError: ``model`` is not a module.

        Attaching twice, or to a surrogate shared by several neurons, masks each spike
        function once.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"MaskedGradient.attach: model must be an nn.Module, got {type(model).__name__}")
        select = _selector(targets)
        found = [m for m in model.modules() if select(m)]
        if not found:
            what = "no sparsegrad/spikingjelly spiking activation" if targets is None else f"no module matching targets={targets!r}"
            raise ValueError(
                f"MaskedGradient.attach: {what} in {type(model).__name__}; pass targets= "
                "(classes or a predicate) naming your spiking activations"
            )
        # Neurons first: a surrogate module a neuron holds is then masked through the neuron
        # only, even if the model also holds it elsewhere. Nothing is masked twice, also
        # across calls.
        found.sort(key=lambda m: 0 if _spike_function_of(m) is not None else 1)
        for module in found:
            point = _spike_function_of(module)
            point = module if point is None else point
            if id(point) in self._claimed or id(module) in self._claimed:
                continue
            self._handles.append(self._install(module))
            self._claimed.update(id(m) for m in module.modules())
            self._claimed.add(id(point))
        return self

    def _install(self, module: nn.Module):
        """Put the sampler on one activation with the installer for its kind."""
        surrogate = _own_surrogate(module)
        if surrogate is not None:
            return mask_sparsegrad_surrogate(surrogate, self._sampler)
        if _is_spikingjelly_neuron(module):
            return mask_spikingjelly_neuron(module, self._sampler)
        return mask_module_input(module, self._sampler)

    # ------------------------------------------------------------------- optimizer mode
    def wrap(self, optimizer: torch.optim.Optimizer) -> "MaskedGradient":
        """Mask every ``param.grad`` before each ``optimizer.step()``.

        The masks come from a generator seeded identically on every rank (``seed``, or
        a seed broadcast from rank 0 when ``torch.distributed`` is initialised), so
        data-parallel replicas stay identical. A ``schedule`` reads
        [step_count][sparsegrad.masked.MaskedGradient.step_count]: call
        [step][sparsegrad.masked.MaskedGradient.step] once per optimizer step
        (``sparsegrad.train`` does). Accelerate's prepared optimizer is unwrapped.

        Returns:
            ``self``.

        Raises:
            TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
            ValueError: this optimizer is wrapped already; at ``step(closure)``, since the
                gradients a closure computes inside the step cannot be masked.
        """
        inner = getattr(optimizer, "optimizer", None)  # accelerate's AcceleratedOptimizer
        optimizer = inner if isinstance(inner, torch.optim.Optimizer) else optimizer
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"MaskedGradient.wrap: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if id(optimizer) in self._claimed:
            raise ValueError("MaskedGradient.wrap: this optimizer is wrapped by this object already")
        sampler = self._sampler
        if not sampler.generators and sampler.seed is None:
            sampler.seed = _shared_seed()
        self._handles.append(mask_optimizer_grads(optimizer, sampler))
        self._claimed.add(id(optimizer))
        return self

    # ------------------------------------------------------------------------ lifecycle
    def remove(self) -> None:
        """Undo every [attach][sparsegrad.masked.MaskedGradient.attach] and
        [wrap][sparsegrad.masked.MaskedGradient.wrap]."""
        while self._handles:
            self._handles.pop().remove()
        self._claimed.clear()

    def __enter__(self) -> "MaskedGradient":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        s = self._sampler
        return (
            f"MaskedGradient(p={s.fixed_p}, rescale={s.rescale}, granularity={s.granularity!r}, "
            f"seed={s.seed}, schedule={s.schedule!r}, hooks={len(self._handles)})"
        )


def _spike_function_of(module: nn.Module) -> nn.Module | None:
    """The spike function a neuron holds (sparsegrad's ``surrogate``, spikingjelly's
    ``surrogate_function``), or None for anything else, surrogates themselves included."""
    if isinstance(module, Surrogate):
        return None
    if _is_spikingjelly_neuron(module):
        return module.surrogate_function
    return _own_surrogate(module)


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


def _default_target(module: nn.Module) -> bool:
    return (
        _own_surrogate(module) is not None
        or _is_spikingjelly_neuron(module)
        or _is_spikingjelly_surrogate(module)
    )


def _selector(targets: Targets | None) -> Callable[[nn.Module], bool]:
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


def _shared_seed() -> int:
    """A seed drawn on rank 0 and broadcast, so every data-parallel rank agrees."""
    seed = torch.randint(0, 2**62, (1,))
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        seed = seed.to(device)
        dist.broadcast(seed, src=0)
    return int(seed)
