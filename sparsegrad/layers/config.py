"""The neuron and normalisation settings of a spiking network, declared once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from torch import nn

from .._validate import check_choice, check_timesteps
from ..neuron import LIF
from ..surrogate import Surrogate
from .norm import BN_MODES

__all__ = ["LIF_CONSTANTS", "SpikingConfig"]

LIF_CONSTANTS = ("tau", "v_threshold", "v_reset", "surrogate", "alpha", "detach_reset")


@dataclass(frozen=True)
class SpikingConfig:
    """Timesteps, neuron and batch-norm mode shared by every layer of a network.

    Every model of [sparsegrad.models][sparsegrad.models] takes these fields as keyword
    arguments. ``neuron_layer`` is timm's ``act_layer`` idea: each spiking layer calls
    ``neuron_layer(**kwargs)``, where ``kwargs`` holds the LIF constants that are set (not
    None), so any multi-step neuron mapping ``[T, B, ...]`` currents to ``[T, B, ...]``
    spikes can be used. Constants left at None keep the neuron's own defaults; for
    [LIF][sparsegrad.neuron.LIF] these are the paper's (tau 2.0, v_threshold 0.5,
    v_reset 0.0, the ``"pl"`` surrogate, no detached reset).

    Args:
        T: timesteps, an int ``>= 1`` (numpy and torch integers accepted).
        neuron_layer: a class or ``functools.partial`` building one multi-step neuron
            module. Default [LIF][sparsegrad.neuron.LIF].
        tau: membrane time constant, in timesteps.
        v_threshold: firing threshold.
        v_reset: reset and resting potential.
        surrogate: surrogate name or [Surrogate][sparsegrad.surrogate.Surrogate].
        alpha: surrogate sharpness.
        detach_reset: stop the gradient through the reset.
        bn_mode: ``"merged"`` (default) or ``"per_step"``, see
            [TimeBatchNorm2d][sparsegrad.layers.TimeBatchNorm2d].

    Raises:
        ValueError: a bad ``T`` or ``bn_mode``, a ``neuron_layer`` that is not callable,
            or one that cannot be built with the constants set (checked here, once, with
            the neuron's own message).

    Reference: docs/design.md §2.1 (LIF) and §4 (models).

    Example:
        ```python
        from functools import partial
        from spikingjelly.activation_based import neuron

        sj_lif = partial(neuron.LIFNode, step_mode="m", v_threshold=0.5)
        model = timm.create_model("spiking_convnet_s", neuron_layer=sj_lif, tau=2.0)
        ```
    """

    T: int = 4
    neuron_layer: Callable[..., nn.Module] = LIF
    tau: float | None = None
    v_threshold: float | None = None
    v_reset: float | None = None
    surrogate: str | Surrogate | None = None
    alpha: float | None = None
    detach_reset: bool | None = None
    bn_mode: str = "merged"

    def __post_init__(self):
        object.__setattr__(self, "T", check_timesteps("T", self.T))
        check_choice("bn_mode", self.bn_mode, BN_MODES)
        if not callable(self.neuron_layer):
            raise ValueError(f"neuron_layer must be a class or a partial, got {self.neuron_layer!r}")
        self.neuron()  # check the neuron arguments now, not at the first layer

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keyword arguments a model passes on to this config."""
        return tuple(f.name for f in fields(cls))

    def neuron(self) -> nn.Module:
        """A new neuron module: ``neuron_layer(**constants set)``."""
        kwargs = {name: getattr(self, name) for name in LIF_CONSTANTS if getattr(self, name) is not None}
        try:
            module = self.neuron_layer(**kwargs)
        except TypeError as err:
            raise ValueError(f"neuron_layer={self.neuron_layer!r} cannot be built with {kwargs}: {err}") from err
        if not isinstance(module, nn.Module):
            raise ValueError(f"neuron_layer={self.neuron_layer!r} must build an nn.Module, got {module!r}")
        return module
