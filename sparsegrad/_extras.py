"""The optional parts of sparsegrad and the ``pip install 'sparsegrad[extra]'`` each needs.

The core (MSG, TWO, neurons, surrogates, kernels, models) needs torch, numpy, ninja, timm and
einops. Each subpackage below calls `require` first thing, so that an
import without its extra fails with the command that fixes it, not with a bare
``ModuleNotFoundError`` from deep inside. ``tests/test_packaging.py`` checks that these lists
match ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "require"]

_DATA = ("tonic", "torchvision", "PIL")
_TRAIN = (*_DATA, "accelerate", "tyro", "tqdm", "matplotlib", "tensorboard", "safetensors")

EXTRAS: dict[str, tuple[str, ...]] = {
    "data": _DATA,
    "train": _TRAIN,
    "study": (*_TRAIN, "scipy"),
    "nir": ("nir",),
}
"""Each extra and the top-level modules it brings (the engine needs the datasets, the study
needs the engine)."""


def require(extra: str, subpackage: str) -> None:
    """Raises if a module of ``extra`` is missing, before ``subpackage`` imports it.

    Args:
        extra: a key of `EXTRAS`.
        subpackage: the importing subpackage, for the message (``"sparsegrad.train"``).

    Raises:
        ImportError: naming the missing modules and ``pip install 'sparsegrad[extra]'``.
    """
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"{subpackage} needs {', '.join(missing)}, which the core install leaves out: "
            f"pip install 'sparsegrad[{extra}]'"
        )
