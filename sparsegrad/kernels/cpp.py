"""The ``"cpp"`` LIF backend: a C++ CPU kernel built on first use and cached.

The source, ``sparsegrad/kernels/lif_cpu.cpp`` (with the mask stream's
``mask_stream.h``), is compiled with
``torch.utils.cpp_extension.load`` the first time the backend is used (one line on
stderr says so; it takes under a minute) into

    ~/.cache/sparsegrad/torch_extensions/<python>-torch<version>-<cpu>-<source and flags>/sparsegrad_lif_cpu/

(``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set). Later processes load it from there in
well under a second; a new source, torch or CPU gets its own folder and build. To
force a rebuild, delete that folder or call
[build][sparsegrad.kernels.cpp.build] with ``rebuild=True``:

    python -c "from sparsegrad.kernels import cpp; cpp.build(rebuild=True)"

Without a working compiler the backend is unavailable: ``"auto"`` (and an explicit
``"cpp"``) use ``"torch"`` instead, after one warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

from .mask_stream import MASK_ELEMENT, MASK_NEURON, MASK_NONE, neurons_of

__all__ = ["build", "load", "CppKernels"]

_SOURCE = Path(__file__).with_name("lif_cpu.cpp")
_SOURCES = (_SOURCE, _SOURCE.with_name("mask_stream.h"))  # the .cpp first, then what it includes
_NAME = "sparsegrad_lif_cpu"
_lock = threading.Lock()
_state: dict = {}  # "module" once loaded, "error" once failed


def _cpu_tag() -> str:
    """A short tag of this CPU: the build uses -march=native, so it must not be shared."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
        ident = "\n".join(lines)
    except OSError:
        ident = platform.processor()
    return hashlib.sha1(f"{platform.machine()}\n{ident}".encode()).hexdigest()[:10]


_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp"]


def build_directory() -> Path:
    """Where the compiled extension is cached (one folder per source, flags, torch, CPU)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    text = b"".join(path.read_bytes() for path in _SOURCES)
    source = hashlib.sha1(text + " ".join(_FLAGS).encode()).hexdigest()[:8]
    tag = f"{python}-torch{torch.__version__.replace('+', '_')}-{_cpu_tag()}-{source}"
    return cache / "sparsegrad" / "torch_extensions" / tag / _NAME


def _copy_sources(directory: Path) -> Path:
    """The sources, copied into the build folder (returns the .cpp's copy): every checkout of
    the same source then compiles the same path, so one does not make ninja rebuild another's."""
    for source in _SOURCES:
        target = directory / source.name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            partial = directory / f".{source.name}.{os.getpid()}"
            partial.write_bytes(source.read_bytes())
            os.replace(partial, target)
    return directory / _SOURCE.name


def build(rebuild: bool = False):
    """Compile (or load the cached) C++ extension and return it.

    Args:
        rebuild: delete the cached build first.

    Raises:
        RuntimeError: no compiler, or the build failed (the message says why).
    """
    directory = build_directory()
    if rebuild and directory.exists():
        shutil.rmtree(directory)
    fresh = not any(directory.glob(f"{_NAME}*.so"))
    if fresh:
        print(f"sparsegrad: building the C++ LIF kernel once (about a minute) in {directory}", file=sys.stderr)
    directory.mkdir(parents=True, exist_ok=True)
    return _cpp_extension().load(
        name=_NAME,
        sources=[str(_copy_sources(directory))],
        extra_cflags=_FLAGS,
        extra_ldflags=["-fopenmp"],
        build_directory=str(directory),
        verbose=False,
    )


def _cpp_extension():
    """torch.utils.cpp_extension, without its import-time note that no CUDA runtime is
    found (irrelevant to a CPU extension)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def load():
    """The compiled extension, or None (after one warning) when it cannot be built."""
    with _lock:
        if "module" not in _state and "error" not in _state:
            try:
                _state["module"] = build()
            except Exception as error:  # no compiler, no headers, a failed build: all fall back
                _state["error"] = error
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                warnings.warn(
                    f"sparsegrad: the C++ LIF kernel could not be built ({first_line}); "
                    "using the 'torch' backend",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _state.get("module")


class CppKernels:
    """[LIFKernels][sparsegrad.kernels.native.LIFKernels] over the compiled extension."""

    dtypes = (torch.float32, torch.float64)

    def __init__(self, module):
        self.module = module

    def forward(self, x, tau, v_threshold, v_reset):
        return self.module.forward(x, tau, v_threshold, v_reset)

    def backward(self, grad, h, tau, v_threshold, v_reset, surrogate, detach_reset, mask):
        if mask is None:
            args = (MASK_NONE, 0, 1.0, 1, 0, 0)
        else:
            key = mask.key - 2**64 if mask.key >= 2**63 else mask.key  # as int64 bits
            mode = MASK_NEURON if mask.per_neuron else MASK_ELEMENT
            args = (mode, mask.cut, mask.scale, neurons_of(h.shape), key, mask.offset)
        return self.module.backward(
            grad, h, tau, v_threshold, v_reset, surrogate.kernel_id, surrogate.alpha,
            surrogate.constant, detach_reset, *args,
        )
