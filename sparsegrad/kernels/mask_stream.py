"""MSG's mask stream in torch: the reference the ``"torch"`` LIF backend runs and the tests use.

The native kernels regenerate the same bits (``mask_stream.h`` in C++, ``lif_triton.py``),
so one seed draws the same masks on every backend (docs/design.md §8, "The mask stream"):

- **One Philox4x32-10 call per group of 8 neurons.** For neuron ``i`` of timestep ``t`` of a
  call over ``[T, B, ...]`` with ``n`` neurons per timestep (``n = B * C * H * W``), the
  counter is ``offset + t * ceil(n / 8) + i // 8`` (Triton's ``randint4x(key, counter)``:
  counter words ``(lo, hi, 0, 0)``, key words ``(key lo, key hi)``).
- **Eight 16-bit lanes per call.** Word ``w`` of the output holds lanes ``2w`` (its low half)
  and ``2w + 1`` (its high half); neuron ``i`` reads lane ``i % 8``.
- **Keep when lane >= cut**, ``cut = round(p * 65536)``: the drop probability is
  ``p_eff = cut / 65536``, ``|p_eff - p| <= 2**-17``; ``p = 1`` keeps nothing.
- **"neuron" granularity**: one lane per neuron ``j`` of ``[C, H, W]``, lane ``j % 8`` of
  counter ``offset + j // 8``, shared over time and batch.
- **Skipping**: a group whose 8 ``SG'`` are all exactly 0 draws nothing ("element"
  granularity); its entries are not counted in ``seen`` (nor ``dropped``), since no mask can
  change a zero gradient. Skipping changes no one else's bits: counters do not depend on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "LANES", "LEVELS", "cut_of", "philox4x32", "lanes", "neurons_of", "element_keep",
    "neuron_keep", "StreamMask",
]

LANES = 8  # keep decisions per Philox call
LEVELS = 1 << 16  # a lane's values
MASK_NONE, MASK_ELEMENT, MASK_NEURON = 0, 1, 2  # the native kernels' mask modes

_M32 = 0xFFFFFFFF
_ROUND_A, _ROUND_B = 0xD2511F53, 0xCD9E8D57
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85


def cut_of(p: float) -> int:
    """The lane threshold of drop probability ``p``: ``round(p * 65536)`` (half to even)."""
    return round(p * LEVELS)


def neurons_of(shape: torch.Size) -> int:
    """Neurons per (timestep, sample) of a ``[T, B, ...]`` shape (1 for ``[T, B]``)."""
    return math.prod(shape[2:])


def philox4x32(key: int, counters: torch.Tensor) -> list[torch.Tensor]:
    """Philox4x32-10 of counters ``(c lo, c hi, 0, 0)`` and key ``(key lo, key hi)``: the four
    output words (int64 tensors holding uint32 values) of ``randint4x(key, counters)``.

    uint32 arithmetic is emulated in int64: a product of two uint32 wraps modulo 2**64 but
    keeps its low 64 bits, which hold both 32-bit halves exactly.
    """
    c0, c1 = counters & _M32, (counters >> 32) & _M32
    c2 = c3 = torch.zeros_like(counters)
    k0, k1 = key & _M32, (key >> 32) & _M32
    for _ in range(10):
        pb, pa = c2 * _ROUND_B, c0 * _ROUND_A
        c0, c2 = ((pb >> 32) & _M32) ^ c1 ^ k0, ((pa >> 32) & _M32) ^ c3 ^ k1
        c1, c3 = pb & _M32, pa & _M32
        k0, k1 = (k0 + _KEY_A) & _M32, (k1 + _KEY_B) & _M32
    return [c0, c1, c2, c3]


def lanes(key: int, counters: torch.Tensor) -> torch.Tensor:
    """The 16-bit lanes of each counter, ``[..., 8]`` int32 in neuron order."""
    words = torch.stack(philox4x32(key, counters.to(torch.int64)), dim=-1)
    return torch.stack((words & 0xFFFF, words >> 16), dim=-1).flatten(-2).to(torch.int32)


def element_keep(key: int, offset: int, cut: int, t0: int, sg: torch.Tensor):
    """The keep mask of the timesteps ``t0 ..`` of ``sg`` (``[Tb, B, ...]``) under "element"
    granularity, and its counts: ``(keep, seen, dropped)``, ``keep`` bool shaped like ``sg``;
    skipped groups (all ``SG'`` exactly 0) are False and not counted."""
    steps, n = sg.shape[0], sg[0].numel()
    groups = -(-n // LANES)
    grouped = F.pad(sg.reshape(steps, n), (0, groups * LANES - n)).view(steps, groups, LANES)
    live = (grouped != 0).any(-1)
    keep = torch.zeros((steps, groups, LANES), dtype=torch.bool, device=sg.device)
    t, g = live.nonzero(as_tuple=True)
    if cut < LEVELS and t.numel():
        counters = offset + (t0 + t) * groups + g
        keep[t, g] = lanes(key, counters) >= cut
    valid = torch.arange(groups * LANES, device=sg.device).view(groups, LANES) < n
    counted = live[..., None] & valid
    seen = counted.sum()
    dropped = seen - (keep & counted).sum()
    return keep.view(steps, groups * LANES)[:, :n].view(sg.shape), seen, dropped


def neuron_keep(key: int, offset: int, cut: int, neurons: int, device) -> torch.Tensor:
    """The keep mask of ``neurons`` neurons under "neuron" granularity (bool ``[neurons]``)."""
    if cut >= LEVELS:
        return torch.zeros(neurons, dtype=torch.bool, device=device)
    groups = -(-neurons // LANES)
    counters = offset + torch.arange(groups, dtype=torch.int64, device=device)
    return lanes(key, counters).flatten()[:neurons] >= cut


class StreamMask:
    """MSG's mask for one backward pass of the torch LIF backend.

    ``hook`` is MSG's surrogate hook (it has ``kernel_mask`` and ``count``); ``apply`` masks a
    block of timesteps of ``SG'`` in place, as the native kernels do, and ``finish`` reports
    the counts to the hook. With ``p = 0`` the hook gives no mask and nothing is done.
    """

    def __init__(self, hook, shape: torch.Size, device: torch.device):
        self.hook = hook
        self.mask = hook.kernel_mask(shape)
        self.shape = shape
        self.counts = torch.zeros(2, dtype=torch.int64, device=device)
        self.neuron_factor = None

    def apply(self, sg: torch.Tensor, t0: int) -> None:
        mask = self.mask
        if mask is None:
            return
        if mask.per_neuron:
            neurons = neurons_of(self.shape)
            if self.neuron_factor is None:
                keep = neuron_keep(mask.key, mask.offset, mask.cut, neurons, sg.device)
                self.neuron_factor = keep.to(sg.dtype).mul_(mask.scale)
                numel = math.prod(self.shape)
                self.counts[0] += numel
                self.counts[1] += (neurons - keep.sum()) * (numel // max(neurons, 1))
            sg.view(sg.shape[0], sg.shape[1], neurons).mul_(self.neuron_factor)
            return
        keep, seen, dropped = element_keep(mask.key, mask.offset, mask.cut, t0, sg)
        sg.mul_(keep.to(sg.dtype).mul_(mask.scale))
        self.counts += torch.stack((seen, dropped))

    def finish(self) -> None:
        if self.mask is not None:
            self.hook.count(self.counts[0], self.counts[1])
