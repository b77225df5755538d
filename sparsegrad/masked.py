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
- spikingjelly ``IFNode``/``LIFNode``/``ParametricLIFNode`` with ``detach_reset=True``,
  and snntorch ``Leaky``/``Synaptic`` with ``reset_delay=True`` (their default): the
  gradient arriving at the spike output, ``dL/dS``, is masked. The reset carries no
  gradient there, so ``SG'`` is reached only from the output and this is Eq. 11 exactly;
  the neuron is untouched and spikingjelly keeps its fused kernels. snntorch's ``mem``
  output is not masked.
- other spikingjelly neurons (``detach_reset=False``: the reset carries gradient) and
  snntorch ``reset_delay=False``: during each training forward the spike function
  (``surrogate_function``, ``spike_grad``) is swapped for one that masks the gradient
  entering it. Exact; spikingjelly runs its reference path meanwhile (not at ``p = 0``).
- norse ``LIFCell``/``LIFBoxCell``/``LIF``/``LIFBox``: ``dL/dS`` at the output, with a
  warning: norse's reset uses the spike with its gradient, whose ``SG'`` term stays
  unmasked (approximate).
- spikingjelly surrogate modules used on their own, and any other user target: a forward
  pre-hook routes the module's first input through an identity whose backward applies
  the mask, i.e. the gradient *leaving* the module w.r.t. its input is masked (exact for a
  bare spike function).

The table and the derivation: docs/interop.md ("Which path each neuron gets") and
docs/design.md §2.3.1. Hooks do not travel: a copy of a masked model is not masked.

Optimizer mode ([wrap][sparsegrad.masked.MaskedGradient.wrap]) masks every ``param.grad``
before each optimizer step, with the same mask on every data-parallel rank.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from ._masks.installers import mask_optimizer_grads
from ._masks.sampler import MaskSampler
from ._masks.targets import (
    OWNERS,
    Targets,
    nothing_found,
    plan,
    plan_last,
    selector,
    warn_approximate,
    warn_missed,
)
from ._validate import check_bool

__all__ = ["MaskedGradient"]


class MaskedGradient:
    """Masked Surrogate Gradient (MSG): sparse, random surrogate gradients.

    Attach it to a model (activation mode, the method of the paper) or wrap an optimizer
    (masks parameter gradients). Both can be undone with [remove][sparsegrad.masked.MaskedGradient.remove],
    and the object is a context manager.

    On deep networks MSG on every layer slows learning: a path from the loss to a layer crosses
    one mask per spiking layer above it, so with ``L`` of them the layer keeps ``(1 - p)^L`` of its
    paths, and its gradient's direction drifts from the surrogate gradient's. In this project's
    depth study (docs/results.md, "MSG on deep networks": CIFAR-10 subset, 6 epochs, 5 paired
    seeds) ``p = 0.5`` cost nothing on 2 LIF layers (+1.2 points) but 5.5 to 7.9 points from 6 on
    (Spiking ResNet18: -7.4), and the first layer's gradient kept a cosine of 0.16 (10 layers) and
    -0.02 (ResNet18) with the unmasked one; ``rescale=True`` restored its scale, not its direction,
    and did not help. ``attach(model, last=2, example=x)`` (at most two masks per path) kept that
    cosine at 0.60 and 0.50 and cut the cost to 3.3 (10 layers) and 2.0 points (ResNet18); no
    variant beat plain training on a deep network there, so the safe default is no MSG on one.

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
            time-first ``[T, B, ...]``; a single-step neuron (spikingjelly ``step_mode="s"``,
            snntorch, norse cells) keeps one mask from a state without autograd history
            (after ``reset_net``, ``init_leaky()``) to the next. In optimizer mode it is one
            draw per output unit (first dimension of the parameter).
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

    Reference: paper Eq. 10-14 and §4.2; docs/design.md §2.3; docs/results.md (depth study).
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
        self._handles: list = []  # (what is masked: a module, or an optimizer; its handle)
        self._token = object()  # marks what this object masks in OWNERS

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
    def attach(self, model: nn.Module, targets: Targets | None = None, *, last: int | None = None,
               example: torch.Tensor | tuple | None = None, stack: bool = False) -> MaskedGradient:
        """Mask the surrogate gradient of every spiking activation in ``model``.

        Each neuron kind gets the path of docs/interop.md ("Which path each neuron gets"):
        exact wherever one exists, with one warning per kind where none does (norse).
        The neurons themselves are left as they are (spikingjelly keeps its fused kernels).

        Args:
            model: any module.
            targets: ``None`` (default) finds sparsegrad surrogates and neurons and
                spikingjelly neurons and surrogate modules. Otherwise a class, a tuple of
                classes, or a predicate ``f(module) -> bool`` choosing the modules to mask
                instead: snntorch ``Leaky``/``Synaptic``, norse ``LIFCell``/``LIFBoxCell``/
                ``LIF``/``LIFBox``, any of the above, or your own activation (its input
                gradient is masked), e.g. ``targets=(snntorch.Leaky,)``.
            last: mask only the last ``last`` of them in the order the forward runs them,
                so that no path from the loss crosses more than ``last`` masks (deep networks,
                below). The order is the order in which one forward of ``example`` first calls
                each activation, not the order the modules are registered in; activations that
                forward does not call are not masked. Default None: all of them.
            example: one input of ``model`` (a tensor, or a tuple of positional arguments),
                required with ``last`` and refused without it. It runs once, without gradient,
                through a copy of ``model``, so the model's own state is untouched.
            stack: allow masking a neuron another ``MaskedGradient`` masks already (the
                masks then multiply: ``p = 1 - (1 - p1)(1 - p2)``). Default False.

        Returns:
            ``self``, so that ``msg = MaskedGradient(0.5).attach(model)`` works.

        Raises:
            ValueError: no module matches (the message names any snntorch or norse neuron
                found, and the ``targets=`` to pass); an snntorch, norse or spikingjelly
                neuron kind with no masking path (the message names it and what
                ``targets=`` accepts); a neuron another ``MaskedGradient`` masks, without
                ``stack=True``; ``last`` not an int >= 1, larger than the number of
                activations the forward of ``example`` calls, or given without ``example``
                (or ``example`` without ``last``); one of the last ``last`` neurons sharing a
                sparsegrad surrogate instance with an earlier one. Nothing is attached then.
            TypeError: ``model`` is not a module.
            RuntimeError: at a training forward, a masked spikingjelly neuron starting from
                the state of a step already backpropagated (``reset_net`` forgotten).

        Attaching twice, or to a surrogate shared by several neurons, masks each spike
        function once; neurons sharing one spikingjelly surrogate are each masked. A copy
        of an attached model (``copy.deepcopy``, ``pickle``, ``torch.save``) is not masked:
        attach to it to mask it.

        Example:
            ```python
            msg = MaskedGradient(0.5).attach(resnet, last=2, example=images)  # 2 masks per path at most
            ```

        Reference: paper Eq. 10-11; docs/design.md §2.3; ``last``: docs/results.md, "MSG on deep
        networks" (the depth study).
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"MaskedGradient.attach: model must be an nn.Module, got {type(model).__name__}")
        stack = check_bool("MaskedGradient.attach: stack", stack)
        if (last is None) != (example is None):
            raise ValueError(
                f"MaskedGradient.attach: last= and example= go together (example runs one forward to find "
                f"the order of the spiking activations), got last={last!r} and "
                f"example={'None' if example is None else type(example).__name__}"
            )
        select = selector(targets)
        found = [(name, m) for name, m in model.named_modules() if select(m)]
        if not found:
            raise ValueError(nothing_found(model, targets))
        chosen = plan(found) if last is None else plan_last(model, found, last, example)
        plans = [each for each in chosen if self._token not in OWNERS.get(each.point, ())]
        for each in plans:
            if OWNERS.get(each.point) and not stack:
                raise ValueError(
                    f"MaskedGradient.attach: {each.label} at {each.name or 'the model'!r} is masked by "
                    "another MaskedGradient already; the masks would multiply (p = 1 - (1 - p1)(1 - p2)). "
                    "remove() that one first, or pass stack=True to mask it twice on purpose"
                )
        for each in plans:
            self._handles.append((each.point, each.install(self._sampler)))
            OWNERS.setdefault(each.point, set()).add(self._token)
        warn_approximate(plans)
        if targets is None:
            warn_missed(model)
        if last is None:
            _warn_deep(len(chosen), self._sampler.p)
        return self

    # ------------------------------------------------------------------- optimizer mode
    def wrap(self, optimizer: torch.optim.Optimizer) -> MaskedGradient:
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
        if self._token in OWNERS.get(optimizer, ()):
            raise ValueError("MaskedGradient.wrap: this optimizer is wrapped by this object already")
        sampler = self._sampler
        if not sampler.generators and sampler.seed is None:
            sampler.seed = _shared_seed()
        self._handles.append((optimizer, mask_optimizer_grads(optimizer, sampler)))
        OWNERS.setdefault(optimizer, set()).add(self._token)
        return self

    # ------------------------------------------------------------------------ lifecycle
    def remove(self) -> None:
        """Undo every [attach][sparsegrad.masked.MaskedGradient.attach] and
        [wrap][sparsegrad.masked.MaskedGradient.wrap]."""
        while self._handles:
            point, handle = self._handles.pop()
            handle.remove()
            OWNERS.get(point, set()).discard(self._token)

    def __enter__(self) -> MaskedGradient:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        s = self._sampler
        return (
            f"MaskedGradient(p={s.fixed_p}, rescale={s.rescale}, granularity={s.granularity!r}, "
            f"seed={s.seed}, schedule={s.schedule!r}, hooks={len(self._handles)})"
        )


def _shared_seed() -> int:
    """A seed drawn on rank 0 and broadcast, so every data-parallel rank agrees."""
    seed = torch.randint(0, 2**62, (1,))
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        seed = seed.to(device)
        dist.broadcast(seed, src=0)
    return int(seed)


DEEP = 6
"""From this many masked spiking activations on, ``attach`` warns (the depth study's threshold)."""


def _warn_deep(count: int, p: float) -> None:
    """One warning when MSG masks every layer of a deep network: a gradient path to the first
    layer crosses ``count`` masks and keeps ``(1 - p) ** count`` of its paths."""
    if count >= DEEP and p > 0:
        warnings.warn(
            f"MaskedGradient(p={p:g}) masks {count} spiking activations: a gradient path to the first "
            f"crosses {count} masks and keeps (1-p)^{count} = {(1 - p) ** count:.2g} of its paths. In the "
            "depth study MSG p=0.5 on every layer of 6 or more LIF layers cost 5-8 accuracy points "
            "(docs/results.md, 'MSG on deep networks'); consider p=0.25 or attach(model, last=2, example=x)",
            UserWarning,
            stacklevel=3,
        )
