"""NIR graph -> a sparsegrad network over time-first sequences."""

from __future__ import annotations

import functools
import numbers
import operator
from graphlib import CycleError, TopologicalSorter

import nir
import numpy as np
import torch
from torch import nn

from ..layers import SeqToANN
from ..temporal import TemporalWeightedHead
from .mapping import METADATA_DT, METADATA_TWO, NIRExportError, lif_from_nir

__all__ = ["from_nir", "NIRNetwork"]


def _torch_linear(node: nir.NIRNode) -> nn.Linear:
    weight = np.asarray(node.weight)
    bias = getattr(node, "bias", None)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.as_tensor(np.asarray(bias)))
    return layer


def _torch_conv(node: nir.Conv2d) -> nn.Conv2d:
    weight = np.asarray(node.weight)
    padding = node.padding if isinstance(node.padding, str) else tuple(int(p) for p in np.atleast_1d(node.padding))
    layer = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
                      tuple(int(s) for s in np.atleast_1d(node.stride)), padding,
                      tuple(int(d) for d in np.atleast_1d(node.dilation)), int(node.groups))
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(np.asarray(node.bias)))
    return layer


def _pool_args(node) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in np.broadcast_to(np.atleast_1d(a), (2,)))
                 for a in (node.kernel_size, node.stride, node.padding))


class Scale(nn.Module):
    """NIR ``Scale``: multiply by a per-neuron factor."""

    def __init__(self, scale: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _module(name: str, node: nir.NIRNode, dt: float) -> nn.Module:
    """The sparsegrad module of one node; per-frame maps run on the merged ``[T*B, ...]``."""
    if isinstance(node, (nir.Input, nir.Output)):
        return nn.Identity()
    if isinstance(node, nir.LIF):
        return lif_from_nir(name, node, dt)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return SeqToANN(_torch_linear(node))
    if isinstance(node, nir.Conv2d):
        return SeqToANN(_torch_conv(node))
    if isinstance(node, nir.AvgPool2d):
        return SeqToANN(nn.AvgPool2d(*_pool_args(node)))
    if isinstance(node, nir.SumPool2d):
        return SeqToANN(nn.AvgPool2d(*_pool_args(node), divisor_override=1))
    if isinstance(node, nir.Flatten):
        # NIR's dims skip the batch axis; on the merged [T*B, ...] tensor they are one further.
        start, end = int(node.start_dim), int(node.end_dim)
        return SeqToANN(nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))
    if isinstance(node, nir.Scale):
        return Scale(node.scale)
    raise NIRExportError(name, node, "no sparsegrad counterpart (imported: Input, Output, Affine, Linear, "
                         "Conv2d, AvgPool2d, SumPool2d, Flatten, Scale, LIF)")


class NIRNetwork(nn.Module):
    """A NIR graph run as a sparsegrad network: whole sequences, time first.

    Each node is a module (``nodes[name]``, with ``.`` in NIR names written ``_``); a node's
    input is the sum of the outputs of the nodes with an edge into it. Neurons are
    sparsegrad's [LIF][sparsegrad.neuron.LIF], so
    [MaskedGradient][sparsegrad.masked.MaskedGradient] attaches and the network trains.

    Shape:
        - Input: ``[T, B, *input_type]`` (the graph's per-step input, time first).
        - Output: ``[T, B, *output_type]``: the graph's output at every step.
    """

    def __init__(self, graph: nir.NIRGraph, dt: float):
        super().__init__()
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise ValueError(f"from_nir: need one Input and one Output node, got inputs {list(graph.inputs)} "
                             f"and outputs {list(graph.outputs)}")
        self.keys = {name: name.replace(".", "_") for name in graph.nodes}
        self.nodes = nn.ModuleDict({self.keys[n]: _module(n, node, dt) for n, node in graph.nodes.items()})
        self.sources = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
        try:
            self.order = list(TopologicalSorter(self.sources).static_order())
        except CycleError as err:
            raise ValueError(f"from_nir: the graph has a recurrent loop ({err.args[1]}); sparsegrad's LIF "
                             "has no recurrent weights") from None
        (self.input,) = graph.inputs
        (self.output,) = graph.outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {}
        for name in self.order:
            srcs = self.sources[name]
            inp = x if name == self.input else functools.reduce(operator.add, (values[s] for s in srcs))
            values[name] = self.nodes[self.keys[name]](inp)
        return values[self.output]


def _metadata_dt(graph: nir.NIRGraph) -> float | None:
    value = (graph.metadata or {}).get(METADATA_DT)
    return None if value is None else float(value)


def from_nir(graph: nir.NIRGraph, *, dt: float | None = None) -> nn.Module:
    """A sparsegrad network that runs a NIR graph, with TWO's factors restored.

    Args:
        graph: a NIR graph of the nodes listed under Raises (from [to_nir][sparsegrad.nir.to_nir],
            snnTorch's ``export_to_nir``, or [read][sparsegrad.nir.read]).
        dt: the Euler step in seconds; each LIF's ``tau / dt`` becomes sparsegrad's ``tau``
            (in timesteps). Default: the graph's ``dt`` metadata, else 1e-4 (snnTorch's
            export step).

    Returns:
        A [NIRNetwork][sparsegrad.nir.NIRNetwork] mapping ``[T, B, ...]`` to ``[T, B, K]``;
        when the graph carries TWO's factors (metadata ``sparsegrad.two_factors``), a
        [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] around it holding
        them, whose output is ``sum_t factors[t] I_L[t]``.

    Raises:
        NIRExportError: a node with no sparsegrad counterpart (``CubaLIF``, ``IF``,
            ``Delay``, a subgraph, ...), or a LIF whose ``tau``, ``v_threshold`` or
            ``v_reset`` differ between neurons, or with ``tau < dt``.
        ValueError: a bad ``dt``, a recurrent loop, or not one input and one output.

    Reference: docs/design.md §10.
    """
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"from_nir: expected a nir.NIRGraph, got {type(graph).__name__}")
    dt = _metadata_dt(graph) if dt is None else dt
    dt = 1e-4 if dt is None else dt
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"from_nir: dt must be a positive number of seconds, got {dt!r}")
    net = NIRNetwork(graph, float(dt))
    factors = (graph.metadata or {}).get(METADATA_TWO)
    if factors is None:
        return net
    factors = torch.as_tensor(np.asarray(factors, dtype=np.float64))
    head = TemporalWeightedHead(net, T=len(factors))
    head.factors.copy_(factors)
    return head
