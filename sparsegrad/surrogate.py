"""Surrogate gradients for the Heaviside spike function (paper Eq. 6-8).

Every surrogate fires exactly where ``x >= 0`` in the forward pass, with
``x = H - v_threshold`` the membrane potential above threshold, and replaces the
derivative of the step by a smooth pseudo-derivative ``SG'(x)`` in the backward pass.

Each surrogate is a ``torch.nn.Module`` (so that model-agnostic tools such as
[MaskedGradient][sparsegrad.masked.MaskedGradient] can find it) backed by one autograd
Function, [SpikeFunction][sparsegrad.surrogate.SpikeFunction]. Build one from its name with
[build][sparsegrad.surrogate.build]. The six built-in classes also run inside the native LIF
kernels; [KERNEL_SURROGATES][sparsegrad.surrogate.KERNEL_SURROGATES] is the one table of their
names, formulas and kernel ids.

Hooks: [register_surrogate_hook][sparsegrad.surrogate.Surrogate.register_surrogate_hook] registers ``fn(sg, t0) -> Tensor | None``
called in the backward pass on the pseudo-derivative ``SG'(x)`` before it multiplies
``dL/dS``; MSG uses it to mask the surrogate gradient (Eq. 11).
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = [
    "Surrogate",
    "SpikeFunction",
    "Atan",
    "PiecewiseLinear",
    "Sigmoid",
    "Rectangular",
    "PiecewiseExp",
    "FastSigmoid",
    "build",
    "NAMES",
    "KERNEL_SURROGATES",
    "KernelSurrogate",
    "kernel_call",
]

SurrogateHook = Callable[[torch.Tensor, int], "torch.Tensor | None"]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Spike where ``x >= 0``, in the dtype of ``x`` (0. or 1.)."""
    return (x >= 0).to(x.dtype)


def apply_hooks(sg: torch.Tensor, hooks: tuple[SurrogateHook, ...], t0: int = 0) -> torch.Tensor:
    """Pass the pseudo-derivative through each hook in order (a hook may return None)."""
    for hook in hooks:
        out = hook(sg, t0)
        if out is not None:
            sg = out
    return sg


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``grad * SG'(x)`` backward, for any [Surrogate][sparsegrad.surrogate.Surrogate]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: "Surrogate", hooks: tuple) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        ctx.hooks = hooks
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = apply_hooks(ctx.surrogate.derivative(x), ctx.hooks)
        return grad_spike * sg, None, None


class Surrogate(nn.Module, metaclass=ABCMeta):
    """Base class: Heaviside forward, ``derivative(x)`` backward.

    Args:
        alpha: sharpness of the pseudo-derivative (dimensionless; see each subclass).

    Shape:
        - Input: ``x = H - v_threshold``, any shape.
        - Output: spikes (0. or 1.) of the same shape and dtype.

    Raises:
        ValueError: if ``alpha`` is not a positive finite number.
    """

    default_alpha: float = 1.0

    def __init__(self, alpha: float | None = None):
        super().__init__()
        alpha = self.default_alpha if alpha is None else float(alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(
                f"{type(self).__name__}: alpha must be a positive finite number, got {alpha!r}"
            )
        self.alpha = alpha
        self._surrogate_hooks: OrderedDict[int, SurrogateHook] = OrderedDict()

    @abstractmethod
    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The pseudo-derivative ``SG'(x)``, elementwise, in the dtype of ``x``."""

    def register_surrogate_hook(self, hook: SurrogateHook) -> RemovableHandle:
        """Register ``hook(sg, t0) -> Tensor | None`` applied to ``SG'(x)`` in backward.

        ``sg`` is a fresh tensor the hook may modify in place; what it returns (if not
        None) replaces it. Called on its own, the surrogate passes the whole ``SG'(x)`` with
        ``t0 = 0``. Inside a multi-step neuron ([lif_multistep][sparsegrad.functional.lif_multistep])
        the hook is called once per block of timesteps, from the last block to the first:
        ``sg`` is ``[Tb, B, ...]`` for timesteps ``t0 .. t0 + Tb - 1``, and the call with
        ``t0 = 0`` ends that backward pass. Hooks captured at forward time run only for
        forwards made in training mode. A neuron with a hook runs on the ``"torch"``
        backend (MSG's own hook excepted: the native kernels apply its mask themselves).

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._surrogate_hooks)
        self._surrogate_hooks[handle.id] = hook
        return handle

    def active_hooks(self) -> tuple[SurrogateHook, ...]:
        """The hooks a forward made now would apply in its backward."""
        return tuple(self._surrogate_hooks.values()) if self.training else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SpikeFunction.apply(x, self, self.active_hooks())

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Atan(Surrogate):
    """Arctangent surrogate, the paper's Eq. 7.

    ``SG'(x) = alpha / (1 + (pi/2 * alpha * x)^2)``, peak ``alpha`` at ``x = 0``,
    integral 2. Default ``alpha = 2.0``.

    Note: this is **twice** spikingjelly's and snntorch's ``ATan`` at the same ``alpha``
    (they use ``alpha / 2`` as the numerator, integral 1). We follow the paper and the
    authors' released code.

    Reference: paper Eq. 7; Fang et al., "Incorporating learnable membrane time
    constant to enhance learning of spiking neural networks", ICCV 2021.
    """

    default_alpha = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return x.square().mul_((math.pi / 2 * self.alpha) ** 2).add_(1).reciprocal_().mul_(self.alpha)


class PiecewiseLinear(Surrogate):
    """Piecewise-linear (triangle) surrogate, PLGrad, the paper's Eq. 8.

    ``SG'(x) = max(0, alpha * (1 - alpha * |x|))``: support ``|x| < 1/alpha``, peak
    ``alpha``, integral 1. Default ``alpha = 2.0`` (the authors' default).

    Reference: paper Eq. 8; Esser et al., "Convolutional networks for fast,
    energy-efficient neuromorphic computing", PNAS 2016.
    """

    default_alpha = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().mul_(-self.alpha * self.alpha).add_(self.alpha).clamp_min_(0)


class Sigmoid(Surrogate):
    """Sigmoid surrogate: ``SG'(x) = alpha * s * (1 - s)`` with ``s = sigmoid(alpha x)``.

    Peak ``alpha / 4``, integral 1. Default ``alpha = 4.0`` (spikingjelly's default).

    Reference: spikingjelly ``surrogate.Sigmoid``; Zenke & Vogels, Neural Comput. 2021.
    """

    default_alpha = 4.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.alpha * x)
        return s.sub_(s.square()).mul_(self.alpha)


class Rectangular(Surrogate):
    """Rectangular surrogate (STBP): ``SG'(x) = alpha`` where ``|x| < 1/(2 alpha)``, else 0.

    Width ``1/alpha``, height ``alpha``, integral 1. Default ``alpha = 1.0``.

    Reference: Wu et al., "Spatio-temporal backpropagation for training
    high-performance spiking neural networks", Front. Neurosci. 2018 (curve h1, a = 1/alpha).
    """

    default_alpha = 1.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.lt(x.abs(), 0.5 / self.alpha, out=torch.empty_like(x)).mul_(self.alpha)


class PiecewiseExp(Surrogate):
    """Exponential (SLAYER) surrogate: ``SG'(x) = alpha/2 * exp(-alpha |x|)``.

    Peak ``alpha / 2``, integral 1. Default ``alpha = 1.0``.

    Reference: Shrestha & Orchard, "SLAYER: Spike layer error reassignment in time",
    NeurIPS 2018; spikingjelly ``surrogate.PiecewiseExp``.
    """

    default_alpha = 1.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().mul_(-self.alpha).exp_().mul_(0.5 * self.alpha)


class FastSigmoid(Surrogate):
    """Fast-sigmoid (SuperSpike) surrogate: ``SG'(x) = 1 / (1 + alpha |x|)^2``.

    Peak 1, integral ``2 / alpha``. Default ``alpha = 25.0`` (snntorch's ``slope``).

    Reference: Zenke & Ganguli, "SuperSpike: Supervised learning in multilayer spiking
    neural networks", Neural Comput. 2018; snntorch ``surrogate.fast_sigmoid``.
    """

    default_alpha = 25.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().mul_(self.alpha).add_(1).square_().reciprocal_()


class KernelSurrogate(NamedTuple):
    """One row of [KERNEL_SURROGATES][sparsegrad.surrogate.KERNEL_SURROGATES].

    Attributes:
        names: the name first, then its aliases, as [build][sparsegrad.surrogate.build] takes them.
        cls: the surrogate class.
        kernel_id: the id the native kernels know it by (the C++ kernel's ``SurrogateId``
            enum, the Triton kernel's constants).
        formula: ``SG'(x)``.
        constant: ``c(alpha)``, the constant the kernels' formula takes.
    """

    names: tuple[str, ...]
    cls: type[Surrogate]
    kernel_id: int
    formula: str
    constant: Callable[[float], float]


KERNEL_SURROGATES: tuple[KernelSurrogate, ...] = (
    KernelSurrogate(("atan",), Atan, 0, "alpha / (1 + (pi/2 alpha x)^2)", lambda a: (math.pi / 2 * a) ** 2),
    KernelSurrogate(("pl", "piecewise_linear"), PiecewiseLinear, 1, "max(0, alpha (1 - alpha |x|))", lambda a: -a * a),
    KernelSurrogate(("sigmoid",), Sigmoid, 2, "alpha s (1 - s), s = sigmoid(alpha x)", lambda a: 0.0),
    KernelSurrogate(("rect", "rectangular"), Rectangular, 3, "alpha if |x| < 1/(2 alpha) else 0", lambda a: 0.5 / a),
    KernelSurrogate(("pexp", "piecewise_exp"), PiecewiseExp, 4, "alpha/2 exp(-alpha |x|)", lambda a: 0.5 * a),
    KernelSurrogate(("fast_sigmoid",), FastSigmoid, 5, "1 / (1 + alpha |x|)^2", lambda a: 0.0),
)
"""Every built-in surrogate: its names, class, kernel id and formula, the one owner of each.
The C++ kernel's enum and the Triton kernel's constants carry these ids; a test checks them
against this table."""

NAMES: dict[str, type[Surrogate]] = {name: row.cls for row in KERNEL_SURROGATES for name in row.names}

_ROWS: dict[type[Surrogate], KernelSurrogate] = {row.cls: row for row in KERNEL_SURROGATES}


class KernelCall(NamedTuple):
    """What a native LIF kernel needs to run a surrogate: its id, ``alpha`` and ``c(alpha)``."""

    kernel_id: int
    alpha: float
    constant: float


def kernel_call(surrogate: Surrogate) -> KernelCall | None:
    """How the native LIF kernels run this surrogate; None for any other class (subclasses
    included, as they may change ``derivative``)."""
    row = _ROWS.get(type(surrogate))
    return None if row is None else KernelCall(row.kernel_id, surrogate.alpha, row.constant(surrogate.alpha))


def kernel_id(surrogate: Surrogate) -> int | None:
    """The id the native LIF kernels know this surrogate by; None for any other class."""
    call = kernel_call(surrogate)
    return None if call is None else call.kernel_id


def build(name: str | Surrogate, alpha: float | None = None) -> Surrogate:
    """Build a surrogate from its name, or return a [Surrogate][sparsegrad.surrogate.Surrogate] instance as is.

    Args:
        name: one of ``"atan"``, ``"pl"`` (``"piecewise_linear"``), ``"sigmoid"``,
            ``"rect"`` (``"rectangular"``), ``"pexp"`` (``"piecewise_exp"``),
            ``"fast_sigmoid"``; or a [Surrogate][sparsegrad.surrogate.Surrogate].
        alpha: sharpness; ``None`` takes the surrogate's default. Must be ``None`` when
            ``name`` is already a module.

    Raises:
        ValueError: for an unknown name (the accepted names are listed), or an alpha
            given together with a module.
    """
    if isinstance(name, Surrogate):
        if alpha is not None:
            raise ValueError(f"alpha={alpha!r} given with a built surrogate {name!r}; set it there")
        return name
    try:
        cls = NAMES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown surrogate {name!r}; accepted: {', '.join(sorted(NAMES))} "
            "or a sparsegrad.surrogate.Surrogate instance"
        ) from None
    return cls(alpha)
