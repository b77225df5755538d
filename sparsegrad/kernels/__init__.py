"""LIF kernel backends behind [lif_multistep][sparsegrad.functional.lif_multistep].

- ``"torch"``: torch operations, any device and dtype, runs any surrogate hook
  ([lif_torch][sparsegrad.kernels.lif_torch]).
- ``"cpp"``: a C++ CPU kernel (float32, float64), built on first use and cached
  ([cpp][sparsegrad.kernels.cpp]).
- ``"triton"``: a Triton GPU kernel (float32, float16, bfloat16 storage, float32
  arithmetic) ([lif_triton][sparsegrad.kernels.lif_triton]).

The native backends run the six built-in surrogates (selected by their id in
[KERNEL_SURROGATES][sparsegrad.surrogate.KERNEL_SURROGATES], ``alpha`` at run time) and MSG's
mask inside the kernel. ``"auto"`` runs ``"torch"`` instead for a call they cannot run:

- a tensor on neither a CPU nor a CUDA device (meta, MPS, XPU...);
- a dtype the kernel does not store (float16 or bfloat16 on the CPU, as under autocast;
  float64 on CUDA);
- a surrogate hook other than MSG's, or a surrogate that is not one of the six built-in
  classes (a subclass included);
- no compiler for ``"cpp"``, or no Triton for CUDA tensors.

The results are the same to rounding, and so are MSG's masks: every backend draws them from
one mask stream ([mask_stream][sparsegrad.kernels.mask_stream]), bit for bit for one seed.
"""

from __future__ import annotations

import importlib.util
import os

import torch

__all__ = ["BACKENDS", "available_backends", "native_kernels"]

BACKENDS = ("auto", "torch", "cpp", "triton")


def _triton_usable() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def available_backends() -> list[str]:
    """The backends that work in this process, ``"torch"`` first.

    Asking builds the C++ extension if it is not cached yet (see
    [cpp][sparsegrad.kernels.cpp]). ``"triton"`` is listed when Triton is importable and
    CUDA is available (or ``TRITON_INTERPRET=1``, Triton's CPU interpreter, for tests).
    """
    from . import cpp

    names = ["torch"]
    if cpp.load() is not None:
        names.append("cpp")
    if _triton_usable():
        names.append("triton")
    return names


def native_kernels(backend: str, x: torch.Tensor):
    """The native kernels to run ``x`` on, or None for the torch backend.

    Raises:
        ValueError: an unknown backend name; ``"cpp"`` asked for a tensor not on the CPU or
            of a dtype other than float32/float64; ``"triton"`` asked for a tensor Triton
            cannot run (a CPU tensor outside the interpreter, an unsupported dtype).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown LIF backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend == "torch":
        return None
    if backend == "triton" or (backend == "auto" and x.is_cuda):
        return _triton_kernels(x, required=backend == "triton")
    if x.device.type != "cpu":
        if backend == "cpp":
            raise ValueError(f"the 'cpp' LIF backend runs CPU tensors; got a tensor on {x.device}")
        return None  # "auto" on meta, MPS, XPU...: torch
    from . import cpp

    if x.dtype not in cpp.CppKernels.dtypes:
        if backend == "cpp":
            raise ValueError(f"the 'cpp' LIF backend takes float32 or float64, got {x.dtype}")
        return None
    module = cpp.load()
    return None if module is None else cpp.CppKernels(module)


def _triton_kernels(x: torch.Tensor, required: bool):
    if not _triton_usable():
        if required:
            raise ValueError(
                "the 'triton' LIF backend needs Triton and a CUDA device (or TRITON_INTERPRET=1)"
            )
        return None
    from . import lif_triton

    if x.dtype not in lif_triton.TritonKernels.dtypes:
        if required:
            raise ValueError(f"the 'triton' LIF backend takes float32, float16 or bfloat16, got {x.dtype}")
        return None
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"the 'triton' LIF backend runs CUDA tensors; got a tensor on {x.device}")
    return lif_triton.TritonKernels()
