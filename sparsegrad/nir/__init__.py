"""NIR export and import: a trained network leaves sparsegrad for simulators and chips.

NIR, the Neuromorphic Intermediate Representation, is the exchange format that snnTorch,
Norse, Sinabs, Rockpool, Lava-DL and SpiNNaker2 read. [to_nir][sparsegrad.nir.to_nir] writes
one timestep of a network (no batch axis) with its batch norms folded in;
[from_nir][sparsegrad.nir.from_nir] builds a sparsegrad network from a graph;
[write][sparsegrad.nir.write] and [read][sparsegrad.nir.read] wrap ``nir.write`` and
``nir.read``. ``python -m sparsegrad.nir RUN_FOLDER`` exports a trained run. Install with
``pip install "sparsegrad[nir]"``. The LIF mapping, the metadata keys and the limits are in
docs/design.md §10.

Example:
    ```python
    import timm, torch
    import sparsegrad.nir

    model = timm.create_model("spiking_convnet_s", T=10).eval()
    sample = torch.rand(4, 10, 2, 34, 34)                   # [B, T, C, H, W]
    sparsegrad.nir.write("model.nir", model, sample)         # dt = 1e-4 s
    net = sparsegrad.nir.from_nir(sparsegrad.nir.read("model.nir"))
    net(sample.transpose(0, 1)).shape                         # [T=10, B=4, 10]
    ```
"""

from __future__ import annotations

import os

from sparsegrad._extras import require

require("nir", __name__)  # before the imports that need the extra

import nir
import torch
from torch import nn

from .export import POOLINGS, to_nir
from .import_ import NIRNetwork, from_nir
from .mapping import METADATA_DT, METADATA_INPUT, METADATA_T, METADATA_TWO, NIRExportError

__all__ = ["to_nir", "from_nir", "write", "read", "NIRNetwork", "NIRExportError", "POOLINGS",
           "METADATA_DT", "METADATA_T", "METADATA_INPUT", "METADATA_TWO"]


def write(path: str | os.PathLike, model: nn.Module, sample: torch.Tensor, *, dt: float = 1e-4,
          pooling: str = "avg") -> nir.NIRGraph:
    """[to_nir][sparsegrad.nir.to_nir], then ``nir.write(path, graph)``; returns the graph.

    The graph is built (and any refusal raised) before the file is opened.
    """
    graph = to_nir(model, sample, dt=dt, pooling=pooling)
    nir.write(os.fspath(path), graph)
    return graph


def read(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read(path)``: the graph of a ``.nir`` file (pass it to [from_nir][sparsegrad.nir.from_nir])."""
    return nir.read(os.fspath(path))
