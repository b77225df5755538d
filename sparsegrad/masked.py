"""MSG, the Masked Surrogate Gradient (paper Eq. 10-14), as a model-agnostic tool.

``MaskedGradient(p)`` multiplies the surrogate gradient of every spiking activation by
a Bernoulli(1 - p) mask ``M`` (``p`` is the drop probability)::

    dL/dx = dL/dS * SG'(x) * M,        x = H - v_threshold            (Eq. 10-11)

optionally rescaled by ``1 / (1 - p)`` so that the mean is kept (Eq. 13-14).

How each kind of activation is masked (activation mode, :meth:`MaskedGradient.attach`):

- sparsegrad surrogates, and the neurons built on them (:class:`~sparsegrad.neuron.LIF`):
  a surrogate hook multiplies ``SG'(x)`` inside the fused backward. Exact.
- spikingjelly neurons: their fused multi-step kernels never call the surrogate module,
  so a hook there would never fire. The neuron's ``surrogate_function`` is wrapped for
  the lifetime of the attachment; spikingjelly then runs its reference path, which
  calls the wrapper at every step. Same spikes; exact masking; slower.
- spikingjelly surrogate modules used on their own, and any user target: a forward
  pre-hook routes the module's first input through an identity whose backward applies
  the mask, i.e. the gradient *leaving* the module w.r.t. its input is masked, as a full
  backward hook would, but the module's output stays a plain tensor, so in-place
  operations downstream (a SEW ``out += identity``) keep working (a full backward hook
  makes them raise). For a whole neuron whose spike function is out of reach (snntorch's
  ``Leaky``) this masks ``dL/dX`` of the input current, an approximation of Eq. 11.

Optimizer mode (:meth:`MaskedGradient.wrap`) masks every ``param.grad`` before each
optimizer step, with the same mask on every data-parallel rank.

Masks are drawn as random 8- or 16-bit integers compared with a threshold straight into a
0/1 mask of the gradient's dtype (``p`` is exact to 2**-16): several times cheaper than
``torch.bernoulli`` on the CPU.
"""

from __future__ import annotations

import math
import sys
from typing import Callable, Iterable, Union

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .surrogate import Surrogate

__all__ = ["MaskedGradient"]

Targets = Union[type, "tuple[type, ...]", Callable[[nn.Module], bool]]


def _check_p(p: float, rescale: bool, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{where}: p must be a number in [0, 1] (the drop probability), got {p!r}")
    if rescale and p == 1:
        raise ValueError(f"{where}: p=1 with rescale=True would scale by 1/(1-p) = inf; use p < 1")
    return float(p)


class _MaskGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by a fresh mask."""

    @staticmethod
    def forward(ctx, x, msg, shared_dims, cache):
        ctx.set_materialize_grads(False)
        ctx.args = (msg, shared_dims, cache)
        # A copy, not a view: the target may modify its input in place.
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if grad is None:
            return None, None, None, None
        msg, shared_dims, cache = ctx.args
        return msg._mask_activation(grad, shared_dims, inplace=False, cache=cache), None, None, None


class _NeuronMaskCache:
    """Holds one ``"neuron"``-granularity mask for the duration of one neuron forward."""

    __slots__ = ("keep", "dropped")

    def __init__(self):
        self.clear()

    def clear(self, *_) -> None:
        """Forget the mask (also usable as a forward pre-hook)."""
        self.keep = None
        self.dropped = None


class _SurrogateMasker:
    """Surrogate hook masking ``SG'`` in place; under ``"neuron"`` granularity one mask serves
    every block of timesteps of a backward pass (the call with ``t0 == 0`` is its last)."""

    def __init__(self, msg: "MaskedGradient"):
        self.msg = msg
        self.cache = _NeuronMaskCache()

    def __call__(self, sg: torch.Tensor, t0: int) -> torch.Tensor:
        out = self.msg._mask_activation(sg, shared_dims=2, inplace=True, cache=self.cache)
        if t0 == 0:
            self.cache.clear()
        return out


class _MaskedSurrogate(nn.Module):
    """Wraps a spikingjelly surrogate: masks the gradient w.r.t. ``x = H - v_threshold``."""

    def __init__(self, surrogate: nn.Module, msg: "MaskedGradient", shared_dims: int):
        super().__init__()
        self.surrogate = surrogate
        self.msg = msg
        self.shared_dims = shared_dims
        self.cache = _NeuronMaskCache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and x.requires_grad:
            x = _MaskGrad.apply(x, self.msg, self.shared_dims, self.cache)
        return self.surrogate(x)


class MaskedGradient:
    """Masked Surrogate Gradient (MSG): sparse, random surrogate gradients.

    Attach it to a model (activation mode, the method of the paper) or wrap an optimizer
    (masks parameter gradients). Both can be undone with :meth:`remove`, and the object
    is a context manager.

    Args:
        p: drop probability in ``[0, 1]``; ``M ~ Bernoulli(1 - p)``. Default 0.5 (paper).
            ``p = 0`` is plain surrogate training bit for bit (no random numbers drawn).
        rescale: multiply kept entries by ``1 / (1 - p)`` (Eq. 13), giving
            ``E[G] = mu`` and ``Var[G] = sigma^2 + p/(1-p) (mu^2 + sigma^2)`` (Eq. 14).
            Default False: kept entries unscaled (Eq. 11, the authors' code),
            ``E[G] = (1 - p) mu``.
        granularity: ``"element"`` (default): an independent draw per element (sample,
            neuron, timestep), per layer, per backward, as the released code.
            ``"neuron"``: one draw per neuron shared over batch and time, per forward of the
            activation (the paper's §4.2 wording). It reads activation inputs as
            time-first ``[T, B, ...]`` (a spikingjelly neuron in single-step mode gets a
            fresh mask per timestep); in optimizer mode it is one draw per output unit
            (first dimension of the parameter).
        seed: seed of the masks' own generator(s), one per device. Default None: the
            global RNG in activation mode; in optimizer mode a seed shared by all ranks.
        generator: a ``torch.Generator`` to draw from on its device (exclusive with seed).
        schedule: ``schedule(step) -> p`` giving the drop probability at each training
            step (:attr:`step_count`, advanced by :meth:`step` once per optimizer step;
            ``sparsegrad.train`` calls it). Overrides ``p``.

    Raises:
        ValueError: ``p`` outside ``[0, 1]``, ``p = 1`` with ``rescale``, an unknown
            granularity, both ``seed`` and ``generator``, a schedule that returns a bad ``p``,
            or :meth:`attach` finding no spiking activation.
        TypeError: a hooked activation called with a non-tensor first input.

    Example::

        msg = MaskedGradient(p=0.5).attach(model)   # every LIF / spikingjelly neuron
        ...
        msg.remove()

    Reference: paper Eq. 10-14 and §4.2; DESIGN §2.3.
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
        self.rescale = bool(rescale)
        self._p = _check_p(p, self.rescale, "MaskedGradient")
        if granularity not in ("element", "neuron"):
            raise ValueError(
                f"MaskedGradient: granularity must be 'element' or 'neuron', got {granularity!r}"
            )
        if seed is not None and generator is not None:
            raise ValueError("MaskedGradient: give either seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise ValueError(f"MaskedGradient: seed must be an int in [0, 2**64), got {seed!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"MaskedGradient: generator must be a torch.Generator, got {generator!r}")
        if schedule is not None and not callable(schedule):
            raise ValueError(f"MaskedGradient: schedule must be callable(step) -> p, got {schedule!r}")
        self.granularity = granularity
        self.seed = seed
        self.schedule = schedule
        self.step_count = 0
        self._generators: dict[str, torch.Generator] = {}
        if generator is not None:
            self._generators[str(generator.device)] = generator
        self._handles: list = []
        self._claimed: set[int] = set()  # what this object masks already: never twice
        self._seen = 0
        self._dropped: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------------------- state
    @property
    def p(self) -> float:
        """The drop probability in force now (``schedule(step_count)`` if scheduled)."""
        if self.schedule is None:
            return self._p
        return _check_p(self.schedule(self.step_count), self.rescale, f"schedule({self.step_count})")

    @property
    def stats(self) -> dict[str, int]:
        """Gradient elements seen and dropped since construction (``{"seen", "dropped"}``)."""
        dropped = sum(int(d) for d in self._dropped.values())
        return {"seen": self._seen, "dropped": dropped}

    def step(self) -> None:
        """Advance the training-step counter that ``schedule`` reads."""
        self.step_count += 1

    def state_dict(self) -> dict:
        """Step counter, statistics and generator states, for exact resume."""
        return {
            "step_count": self.step_count,
            "stats": self.stats,
            "generators": {k: g.get_state() for k, g in self._generators.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (generators are recreated as needed)."""
        self.step_count = int(state["step_count"])
        self._seen = int(state["stats"]["seen"])
        self._dropped = {"cpu": torch.tensor(int(state["stats"]["dropped"]))}
        for key, gen_state in state["generators"].items():
            self._generators.setdefault(key, torch.Generator(key)).set_state(gen_state)

    # ----------------------------------------------------------------------------- masks
    def _generator(self, device: torch.device) -> torch.Generator | None:
        key = str(device)
        if key not in self._generators:
            if self.seed is None and not self._generators:
                return None
            seed = self.seed if self.seed is not None else next(iter(self._generators.values())).initial_seed()
            self._generators[key] = torch.Generator(device).manual_seed(seed)
        return self._generators[key]

    def _draw_keep(self, shape: torch.Size, like: torch.Tensor, p: float) -> torch.Tensor:
        """Keep mask in ``like``'s dtype and device: 1 with probability ``1 - p``, else 0.

        Random bytes compared with a threshold (one ``torch.ge`` into the mask) cost a
        fraction of ``bernoulli_``. 8 random bits per element when ``p`` is a multiple of
        1/256 (0.5 is), otherwise 16 bits: ``p`` is exact to 2**-16.
        """
        bits = 8 if (p * 256).is_integer() else 16
        levels = 1 << bits
        cut = round(p * levels)
        if cut == levels:
            return torch.zeros(shape, dtype=like.dtype, device=like.device)
        numel = math.prod(shape)
        words = torch.empty((numel * bits + 63) // 64, dtype=torch.int64, device=like.device)
        words.random_(-(1 << 63), None, generator=self._generator(like.device))
        uniform = words.view(torch.int8 if bits == 8 else torch.int16)[:numel].view(shape)
        keep = torch.empty(shape, dtype=like.dtype, device=like.device)
        return torch.ge(uniform, cut - levels // 2, out=keep)

    def _mask(
        self,
        grad: torch.Tensor,
        shape: torch.Size,
        inplace: bool,
        cache: _NeuronMaskCache | None = None,
    ) -> torch.Tensor:
        """Multiply ``grad`` by a fresh keep mask of ``shape`` (broadcast to ``grad``),
        rescaled by ``1/(1-p)`` if asked. ``cache`` keeps one mask across calls."""
        p = self.p
        self._seen += grad.numel()
        if p == 0:
            return grad
        if cache is not None and cache.keep is not None:
            keep, dropped = cache.keep, cache.dropped
        else:
            keep = self._draw_keep(shape, grad, p)
            # Sums of 0/1 in float32 are exact below 2**24 elements; counts are kept in int64.
            kept = keep.sum(dtype=torch.float64 if keep.numel() >= 1 << 24 else torch.float32)
            dropped = (keep.numel() - kept).to(torch.int64)
            if self.rescale:
                keep.mul_(1 / (1 - p))
            if cache is not None:
                cache.keep, cache.dropped = keep, dropped
        key = str(grad.device)
        self._dropped[key] = self._dropped.get(key, 0) + dropped * (grad.numel() // keep.numel())
        return grad.mul_(keep) if inplace else grad * keep

    def _activation_shape(self, grad: torch.Tensor, shared_dims: int) -> torch.Size:
        """Mask shape for an activation: ``"neuron"`` shares it over ``shared_dims`` leading dims."""
        if self.granularity == "element":
            return grad.shape
        if grad.ndim <= shared_dims:
            raise ValueError(
                f"MaskedGradient(granularity='neuron') shares one mask over the first {shared_dims} "
                f"dims of an activation (time-first [T, B, ...]), but got a gradient of shape "
                f"{list(grad.shape)}; use granularity='element' for this activation"
            )
        return torch.Size((1,) * shared_dims + grad.shape[shared_dims:])

    def _mask_activation(self, grad, shared_dims, inplace, cache=None) -> torch.Tensor:
        shape = self._activation_shape(grad, shared_dims)
        return self._mask(grad, shape, inplace, cache if shape != grad.shape else None)

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
            self._handles.extend(self._hook(module))
            self._claimed.update(id(m) for m in module.modules())
            self._claimed.add(id(point))
        return self

    def _hook(self, module: nn.Module) -> list:
        """Install the masking for one activation; return removable handles."""
        surrogate = _own_surrogate(module)
        if surrogate is not None:  # sparsegrad: mask inside the (fused) backward
            return [surrogate.register_surrogate_hook(_SurrogateMasker(self))]
        if _is_spikingjelly_neuron(module):
            return [_WrappedSurrogate(module, self)]
        return [module.register_forward_pre_hook(self._input_pre_hook)]

    def _input_pre_hook(self, module: nn.Module, args: tuple):
        if not (module.training and torch.is_grad_enabled()):
            return None
        if not args or not isinstance(args[0], torch.Tensor):
            got = type(args[0]).__name__ if args else "no positional input"
            raise TypeError(
                f"MaskedGradient: {type(module).__name__} was called with {got} as its first "
                "input; it can mask only a tensor passed positionally"
            )
        if not args[0].requires_grad:
            return None
        return (_MaskGrad.apply(args[0], self, 2, None),) + tuple(args[1:])

    # ------------------------------------------------------------------- optimizer mode
    def wrap(self, optimizer: torch.optim.Optimizer) -> "MaskedGradient":
        """Mask every ``param.grad`` before each ``optimizer.step()``.

        The masks come from a generator seeded identically on every rank (``seed``, or
        a seed broadcast from rank 0 when ``torch.distributed`` is initialised), so
        data-parallel replicas stay identical. A ``schedule`` reads :attr:`step_count`:
        call :meth:`step` once per optimizer step (``sparsegrad.train`` does).
        Accelerate's prepared optimizer is unwrapped.

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
        if not self._generators:
            self.seed = self.seed if self.seed is not None else _shared_seed()
        self._handles.append(optimizer.register_step_pre_hook(self._mask_params))
        self._claimed.add(id(optimizer))
        return self

    def _mask_params(self, optimizer, args, kwargs) -> None:
        closure = args[1] if len(args) > 1 else kwargs.get("closure")  # args[0] is the optimizer
        if closure is not None:
            raise ValueError(
                "MaskedGradient.wrap cannot mask gradients computed by a step(closure) inside the "
                "step; compute the gradients before optimizer.step() or use attach()"
            )
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.grad = self._mask(param.grad, self._param_shape(param.grad), inplace=True)

    def _param_shape(self, grad: torch.Tensor) -> torch.Size:
        """Mask shape for a parameter: ``"neuron"`` draws one value per output unit (dim 0)."""
        if self.granularity == "element" or grad.ndim == 0:
            return grad.shape
        return torch.Size((grad.shape[0],) + (1,) * (grad.ndim - 1))

    # ------------------------------------------------------------------------ lifecycle
    def remove(self) -> None:
        """Undo every :meth:`attach` and :meth:`wrap`."""
        while self._handles:
            self._handles.pop().remove()
        self._claimed.clear()

    def __enter__(self) -> "MaskedGradient":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (
            f"MaskedGradient(p={self._p}, rescale={self.rescale}, granularity={self.granularity!r}, "
            f"seed={self.seed}, schedule={self.schedule!r}, hooks={len(self._handles)})"
        )


class _WrappedSurrogate:
    """Swaps a spikingjelly neuron's surrogate for a masking wrapper; ``remove()`` restores."""

    def __init__(self, neuron: nn.Module, msg: MaskedGradient):
        self.neuron = neuron
        # Multi-step spikingjelly neurons call the surrogate once per step on [B, ...].
        self.wrapper = _MaskedSurrogate(neuron.surrogate_function, msg, shared_dims=1).train(neuron.training)
        neuron.surrogate_function = self.wrapper
        self.pre_hook = neuron.register_forward_pre_hook(self.wrapper.cache.clear)

    def remove(self) -> None:
        self.pre_hook.remove()
        # Unlink this wrapper from the chain neuron -> wrapper -> ... -> original, wherever
        # it is: another MaskedGradient may have wrapped it since.
        holder, attr = self.neuron, "surrogate_function"
        while isinstance(getattr(holder, attr), _MaskedSurrogate):
            current = getattr(holder, attr)
            if current is self.wrapper:
                setattr(holder, attr, current.surrogate)
                return
            holder, attr = current, "surrogate"


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
