"""The mask sampler behind [MaskedGradient][sparsegrad.masked.MaskedGradient].

One object holds everything random about MSG: the drop probability ``p`` (read from the
schedule once per [step][sparsegrad.masked.MaskedGradient.step]), the seed and
generators, the statistics, and the state that resumes the mask stream exactly. The
installers ask it for masks; they hold no randomness of their own.

Two ways to draw:

- torch kernels, spikingjelly and snntorch neurons, module inputs and optimizer gradients
  get a materialised 0/1 mask from torch's generators (``draw_keep``), except where the
  mask has the gradient's shape and the gradient is a contiguous CPU float32/float64
  tensor: there the C++ extension multiplies it in place by the mask stream's keep bits
  (``mask_``, one pass, no mask tensor), the key drawn as for the LIF backends;
- the LIF backends (``torch``, ``cpp``, ``triton``) get a [KernelMask][sparsegrad._masks.sampler.KernelMask]:
  ``p`` and a Philox4x32-10 (key, offset) pair, the key drawn from the same generators,
  from which each backend regenerates the keep bits of the mask stream in its backward
  ([mask_stream][sparsegrad.kernels.mask_stream]), the same bits on every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .._validate import check_bool, check_int, check_real
from ..kernels import cpp
from ..kernels.mask_stream import cut_of

__all__ = ["MaskSampler", "KernelMask", "NeuronMaskCache"]


def check_p(p, rescale: bool, where: str) -> float:
    """``p`` as a float in ``[0, 1]``; ``p = 1`` is refused with ``rescale``."""
    p = check_real(f"{where}: p", p, 0.0, 1.0, what="(the drop probability)")
    if rescale and p == 1:
        raise ValueError(f"{where}: p=1 with rescale=True would scale by 1/(1-p) = inf; use p < 1")
    return p


@dataclass(frozen=True)
class KernelMask:
    """What a LIF backend needs to mask ``SG'`` without a mask tensor: the mask stream's
    key and first counter ``offset`` ([mask_stream][sparsegrad.kernels.mask_stream] gives the
    layout), ``p`` and the lane threshold ``cut`` it is quantised to; kept entries are
    multiplied by ``scale``.
    """

    p: float
    scale: float
    per_neuron: bool
    key: int
    offset: int

    @property
    def cut(self) -> int:
        """Lanes ``>= cut`` are kept: ``round(p * 65536)``, so ``p_eff = cut / 65536``."""
        return cut_of(self.p)


class NeuronMaskCache:
    """Holds one ``"neuron"``-granularity mask for the duration of one neuron forward."""

    __slots__ = ("keep", "dropped")

    def __init__(self):
        self.clear()

    def clear(self, *_) -> None:
        """Forget the mask (also usable as a forward pre-hook)."""
        self.keep = None
        self.dropped = None


class MaskSampler:
    """Draws MSG's keep masks and counts what they drop. Arguments as
    [MaskedGradient][sparsegrad.masked.MaskedGradient], validated here."""

    def __init__(
        self,
        p: float,
        rescale: bool,
        granularity: str,
        seed: int | None,
        generator: torch.Generator | None,
        schedule: Callable[[int], float] | None,
    ):
        self.rescale = check_bool("MaskedGradient: rescale", rescale)
        self.fixed_p = check_p(p, self.rescale, "MaskedGradient")
        if granularity not in ("element", "neuron"):
            raise ValueError(
                f"MaskedGradient: granularity must be 'element' or 'neuron', got {granularity!r}"
            )
        if seed is not None and generator is not None:
            raise ValueError("MaskedGradient: give either seed or generator, not both")
        if seed is not None:
            seed = check_int("MaskedGradient: seed", seed, 0, 2**64 - 1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"MaskedGradient: generator must be a torch.Generator, got {generator!r}")
        if schedule is not None and not callable(schedule):
            raise ValueError(f"MaskedGradient: schedule must be callable(step) -> p, got {schedule!r}")
        self.granularity = granularity
        self.seed = seed
        self.schedule = schedule
        self.generators: dict[str, torch.Generator] = {}
        if generator is not None:
            self.generators[str(generator.device)] = generator
        self.step_count = 0
        self.seen = 0
        self.seen_on: dict[str, torch.Tensor] = {}  # counts the kernels report as tensors
        self.dropped: dict[str, torch.Tensor] = {}
        self.p = self._read_p()

    # ------------------------------------------------------------------------- p, state
    def _read_p(self) -> float:
        if self.schedule is None:
            return self.fixed_p
        return check_p(self.schedule(self.step_count), self.rescale, f"schedule({self.step_count})")

    def step(self) -> None:
        """Advance the step counter and read the schedule's ``p`` for the new step."""
        self.step_count += 1
        self.p = self._read_p()

    def stats(self) -> dict[str, int]:
        """``seen``: gradient elements given a keep decision; ``dropped``: those dropped. The
        LIF backends skip groups of 8 whose ``SG'`` is exactly 0 and count none of them
        (docs/design.md §8); everything else counts every element."""
        seen = self.seen + sum(int(s) for s in self.seen_on.values())
        return {"seen": seen, "dropped": sum(int(d) for d in self.dropped.values())}

    def state_dict(self) -> dict:
        return {
            "step_count": self.step_count,
            "stats": self.stats(),
            "generators": {k: g.get_state() for k, g in self.generators.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.seen = int(state["stats"]["seen"])
        self.seen_on = {}
        self.dropped = {"cpu": torch.tensor(int(state["stats"]["dropped"]))}
        for key, gen_state in state["generators"].items():
            self.generators.setdefault(key, torch.Generator(key)).set_state(gen_state)
        self.p = self._read_p()

    def count(self, seen: int | torch.Tensor, dropped: torch.Tensor, device: torch.device) -> None:
        """Add ``seen`` gradient elements (an int, or an int64 tensor on ``device``) and
        ``dropped`` (an int64 tensor) to the stats, without waiting for a device."""
        key = str(device)
        if isinstance(seen, torch.Tensor):
            self.seen_on[key] = self.seen_on.get(key, 0) + seen
        else:
            self.seen += seen
        self.dropped[key] = self.dropped.get(key, 0) + dropped

    # ------------------------------------------------------------------ native kernels
    def kernel_mask(self) -> KernelMask:
        """The mask of one LIF backward: a fresh Philox key drawn from the masks' CPU
        generator (seeded by ``seed``, or the given generator), else torch's global RNG, so
        ``seed`` reproduces the masks and ``state_dict`` resumes them. The counter starts
        at 0 for each call; consecutive calls differ by their keys."""
        generator = self._generator(torch.device("cpu"))
        key = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        scale = 1 / (1 - self.p) if self.rescale else 1.0
        return KernelMask(self.p, scale, self.granularity == "neuron", key, 0)

    # ----------------------------------------------------------------- materialised
    def _generator(self, device: torch.device) -> torch.Generator | None:
        key = str(device)
        if key not in self.generators:
            if self.seed is None and not self.generators:
                return None
            seed = self.seed if self.seed is not None else next(iter(self.generators.values())).initial_seed()
            self.generators[key] = torch.Generator(device).manual_seed(seed)
        return self.generators[key]

    def draw_keep(self, shape: torch.Size, like: torch.Tensor, p: float) -> torch.Tensor:
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

    def mask(
        self,
        grad: torch.Tensor,
        shape: torch.Size,
        inplace: bool,
        cache: NeuronMaskCache | None = None,
    ) -> torch.Tensor:
        """Multiply ``grad`` by a fresh keep mask of ``shape`` (broadcast to ``grad``),
        rescaled by ``1/(1-p)`` if asked. ``cache`` keeps one mask across calls."""
        p = self.p
        if p == 0:
            self.seen += grad.numel()
            return grad
        if cache is None and shape == grad.shape and self._fused(grad):
            return self._mask_in_place(grad if inplace else grad.clone(), p)
        if cache is not None and cache.keep is not None:
            keep, dropped = cache.keep, cache.dropped
        else:
            keep = self.draw_keep(shape, grad, p)
            # Sums of 0/1 in float32 are exact below 2**24 elements; counts are kept in int64.
            kept = keep.sum(dtype=torch.float64 if keep.numel() >= 1 << 24 else torch.float32)
            dropped = (keep.numel() - kept).to(torch.int64)
            if self.rescale:
                keep.mul_(1 / (1 - p))
            if cache is not None:
                cache.keep, cache.dropped = keep, dropped
        self.count(grad.numel(), dropped * (grad.numel() // keep.numel()), grad.device)
        return grad.mul_(keep) if inplace else grad * keep

    @staticmethod
    def _fused(grad: torch.Tensor) -> bool:
        """Whether the C++ extension masks ``grad`` in place (CPU, float32/64, contiguous)."""
        if grad.device.type != "cpu" or grad.dtype not in (torch.float32, torch.float64):
            return False
        return grad.is_contiguous() and grad.numel() > 0 and cpp.load() is not None

    def _mask_in_place(self, grad: torch.Tensor, p: float) -> torch.Tensor:
        """One pass over ``grad`` with the mask stream's keep bits (docs/design.md §8), no
        mask tensor: element ``i`` reads lane ``i % 8`` of counter ``i // 8`` under a fresh
        key from the masks' generator, as [kernel_mask][sparsegrad._masks.sampler.MaskSampler.kernel_mask]
        draws it, so ``seed`` reproduces it and ``state_dict`` resumes it."""
        mask = self.kernel_mask()
        key = mask.key - 2**64 if mask.key >= 2**63 else mask.key
        dropped = cpp.load().mask_(grad, mask.cut, mask.scale, key, 0)
        self.count(grad.numel(), dropped, grad.device)
        return grad

    def activation_shape(self, shape: torch.Size, shared_dims: int) -> torch.Size:
        """Mask shape for an activation: ``"neuron"`` shares it over ``shared_dims`` leading dims."""
        if self.granularity == "element":
            return shape
        if len(shape) <= shared_dims:
            raise ValueError(
                f"MaskedGradient(granularity='neuron') shares one mask over the first {shared_dims} "
                f"dims of an activation (time-first [T, B, ...]), but got a gradient of shape "
                f"{list(shape)}; use granularity='element' for this activation"
            )
        return torch.Size((1,) * shared_dims + shape[shared_dims:])

    def mask_activation(self, grad, shared_dims, inplace, cache=None) -> torch.Tensor:
        shape = self.activation_shape(grad.shape, shared_dims)
        return self.mask(grad, shape, inplace, cache if shape != grad.shape else None)

    def param_shape(self, grad: torch.Tensor) -> torch.Size:
        """Mask shape for a parameter: ``"neuron"`` draws one value per output unit (dim 0)."""
        if self.granularity == "element" or grad.ndim == 0:
            return grad.shape
        return torch.Size((grad.shape[0],) + (1,) * (grad.ndim - 1))
