"""What an MSG hook becomes in a copy of a masked model: nothing.

A hook lives in its module's hook dictionaries, so ``copy.deepcopy``, ``pickle`` and
``torch.save(model)`` would copy it, and with it a private copy of the
[MaskSampler][sparsegrad._masks.sampler.MaskSampler] frozen at the ``p``, step and statistics
of the moment: masks that ``remove()``, ``step()`` and ``stats`` never reach. Every hook MSG
stores on a module is [Portable][sparsegrad._masks.copies.Portable] instead: its copy is an
[Inert][sparsegrad._masks.copies.Inert] hook that does nothing, so a copy is a plain,
unmasked model (attach a [MaskedGradient][sparsegrad.masked.MaskedGradient] to it to mask
it). Attaching drops the inert hooks it finds first.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from torch import nn

__all__ = ["Inert", "Portable", "drop_inert"]


class Inert:
    """A hook that does nothing, for every hook signature MSG uses.

    As a surrogate hook it is MSG's own (``kernel_mask`` returns None), so the native LIF
    kernels keep their fast path and mask nothing.
    """

    def __call__(self, *args, **kwargs) -> None:
        return None

    def kernel_mask(self, grad_shape) -> None:
        return None

    def count(self, seen, dropped) -> None:
        return None


class Portable:
    """Mixin for MSG hooks: copied, deep-copied or pickled, a hook becomes [Inert][sparsegrad._masks.copies.Inert]."""

    def __deepcopy__(self, memo) -> Inert:
        return Inert()

    def __reduce__(self):
        return (Inert, ())


_MODULE_HOOKS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
_HOOK_FLAGS = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


def drop_inert(owner: object, attr: str | None = None) -> None:
    """Remove the inert hooks a copy carries: from ``owner.<attr>`` (a hook dictionary), or,
    with ``attr=None``, from every forward and backward hook dictionary of a module."""
    names = (attr,) if attr is not None else _MODULE_HOOKS
    for name in names:
        hooks = getattr(owner, name, None)
        if not isinstance(hooks, MutableMapping):
            continue
        for key in [k for k, hook in hooks.items() if isinstance(hook, Inert)]:
            del hooks[key]
            if isinstance(owner, nn.Module):
                for flag in _HOOK_FLAGS:
                    getattr(owner, flag, {}).pop(key, None)
