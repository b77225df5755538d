"""sparsegrad model -> NIR graph: one graph for one timestep, without the batch axis.

The exporter walks the model's modules (no tracing): conv/linear with their batch norm
folded in, sparsegrad's LIF, average pooling, flatten, the readout, dropout as identity,
and residual sums as several edges into one node (NIR sums a node's inputs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nir
import numpy as np
import torch
from torch import nn

from ..layers import Classifier, ConvBN, SpikingEncoder, TimeAvgPool2d
from ..models.resnet import BasicBlock
from ..models.sew_resnet import SEWBasicBlock, SEWBottleneck
from ..neuron import LIF
from ..temporal import TemporalWeightedHead
from .mapping import METADATA_DT, METADATA_INPUT, METADATA_T, METADATA_TWO, NIRExportError, fold_batch_norm, lif_to_nir

__all__ = ["to_nir", "POOLINGS"]

POOLINGS = ("avg", "sum")

_PASS = (nn.Dropout, nn.Identity)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class Ref:
    """A value in the graph: the sum of the outputs of ``names``, of per-frame ``shape``,
    still to be multiplied by ``scale`` (a sum pool's ``1 / k^2``, folded into the next
    conv or linear)."""

    names: tuple[str, ...]
    shape: tuple[int, ...]
    scale: float = 1.0


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _pair(value) -> np.ndarray:
    return np.array(value if isinstance(value, (tuple, list)) else (value, value), dtype=np.int64)


class _Builder:
    def __init__(self, dt: float, pooling: str):
        self.dt, self.pooling = dt, pooling
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: nir.NIRNode, ref: Ref, shape: tuple[int, ...], scale: float = 1.0) -> Ref:
        if name in self.nodes:
            raise RuntimeError(f"two NIR nodes named {name!r}")
        self.nodes[name] = node
        self.edges += [(src, name) for src in ref.names]
        return Ref((name,), tuple(int(s) for s in shape), scale)

    # ------------------------------------------------------------------ leaves

    def affine(self, path: str, layer: nn.Module, ref: Ref, bn: nn.Module | None) -> Ref:
        """Conv2d or Linear, with ``bn`` folded in and ``ref``'s pending scale."""
        if bn is not None and (bn.running_mean is None or bn.running_var is None):
            raise NIRExportError(path, bn, "a batch norm without running statistics cannot be folded")
        weight, bias = fold_batch_norm(layer.weight * ref.scale, layer.bias, bn)
        with torch.no_grad():
            probe = layer.weight.new_zeros(1, *ref.shape)
            shape = tuple(layer(probe).shape[1:])
        if isinstance(layer, nn.Linear):
            return self.add(path, nir.Affine(weight=weight, bias=bias), ref, shape)
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise NIRExportError(path, layer, f"padding={layer.padding!r} with padding_mode={layer.padding_mode!r}; "
                                 "only numeric zero padding is exported")
        node = nir.Conv2d(input_shape=tuple(ref.shape[1:]), weight=weight, stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias)
        return self.add(path, node, ref, shape)

    def lif(self, path: str, lif: nn.Module, ref: Ref) -> Ref:
        if not isinstance(lif, LIF):
            raise NIRExportError(path, lif, _foreign_neuron(lif))
        if ref.scale != 1.0:
            raise NIRExportError(path, lif, "a sum pool feeds this neuron directly, so its 1/k^2 cannot be "
                                 "folded into a weight; export with pooling='avg'")
        return self.add(path, lif_to_nir(lif, ref.shape, self.dt), ref, ref.shape)

    def pool(self, path: str, pool: nn.Module, ref: Ref) -> Ref:
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            if _pair(pool.output_size).tolist() != [1, 1]:
                raise NIRExportError(path, pool, f"output_size={pool.output_size!r}; only a global pool (1) is exported")
            kernel, stride, padding = _pair(ref.shape[1:]), _pair(ref.shape[1:]), _pair(0)
        else:
            if pool.ceil_mode or pool.divisor_override is not None or (
                    not pool.count_include_pad and _pair(pool.padding).any()):
                raise NIRExportError(path, pool, "ceil_mode, divisor_override and count_include_pad=False with "
                                     "padding have no NIR counterpart")
            kernel = _pair(pool.kernel_size)
            stride = kernel if pool.stride is None else _pair(pool.stride)
            padding = _pair(pool.padding)
        with torch.no_grad():
            shape = tuple(nn.functional.avg_pool2d(torch.zeros(1, *ref.shape), tuple(kernel), tuple(stride),
                                                   tuple(padding)).shape[1:])
        if self.pooling == "avg":
            if ref.scale != 1.0:
                raise NIRExportError(path, pool, "a pending sum-pool scale reaches an average pool")
            return self.add(path, nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding), ref, shape)
        node = nir.SumPool2d(kernel_size=kernel, stride=stride, padding=padding)
        return self.add(path, node, ref, shape, ref.scale / float(np.prod(kernel)))

    def flatten(self, path: str, ref: Ref, start_dim: int = 1, end_dim: int = -1) -> Ref:
        """torch's ``Flatten(start_dim, end_dim)`` counts the batch axis; NIR's does not."""
        if start_dim == 0:
            raise NIRExportError(path, nn.Flatten(start_dim, end_dim), "start_dim=0 flattens the batch axis")
        start, end = start_dim - 1 if start_dim > 0 else start_dim, end_dim - 1 if end_dim > 0 else end_dim
        node = nir.Flatten(input_type={"input": np.array(ref.shape)}, start_dim=start, end_dim=end)
        return self.add(path, node, ref, tuple(node.output_type["output"]), ref.scale)

    # ------------------------------------------------------------------ containers

    def module(self, path: str, m: nn.Module, ref: Ref) -> Ref:
        join = functools.partial(_join, path)
        if isinstance(m, _PASS):
            return ref
        if isinstance(m, LIF) or _is_neuron(m):
            return self.lif(path, m, ref)
        if isinstance(m, ConvBN):
            return self.affine(join("conv"), m.conv, ref, m.bn)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            return self.affine(path, m, ref, None)
        if isinstance(m, (TimeAvgPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(path, m, ref)
        if isinstance(m, nn.Flatten):
            return self.flatten(path, ref, m.start_dim, m.end_dim)
        if isinstance(m, SpikingEncoder):
            return self.module(join("neuron"), m.neuron, self.module(join("conv_bn"), m.conv_bn, ref))
        if isinstance(m, Classifier):
            ref = self.module(join("pool"), m.pool, ref)
            ref = self.flatten(join("flatten"), ref) if len(ref.shape) > 1 else ref
            return self.module(join("fc"), m.fc, ref)
        if isinstance(m, (BasicBlock, SEWBasicBlock, SEWBottleneck)):
            return self.block(path, m, ref)
        if all(hasattr(m, a) for a in ("stem", "stem_pool", "stages", "head")):
            for name in ("stem", "stem_pool", "stages", "head"):
                ref = self.module(join(name), getattr(m, name), ref)
            return ref
        if isinstance(m, nn.Sequential):
            return self.sequence(path, m, ref)
        if isinstance(m, _NORMS):
            raise NIRExportError(path, m, "a batch norm that does not follow a conv or linear cannot be folded")
        raise NIRExportError(path, m, "no NIR mapping (exported: Conv2d, Linear, BatchNorm after them, "
                             "sparsegrad's LIF, AvgPool2d, global average pool, Flatten, Dropout, Identity, "
                             "the blocks of sparsegrad.layers and sparsegrad.models)")

    def sequence(self, path: str, seq: nn.Sequential, ref: Ref) -> Ref:
        items = list(seq.named_children())
        i = 0
        while i < len(items):
            name, m = items[i]
            child = _join(path, name)
            after = items[i + 1][1] if i + 1 < len(items) else None
            if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(after, _NORMS):
                ref = self.affine(child, m, ref, after)
                i += 2
                continue
            ref = self.module(child, m, ref)
            i += 1
        return ref

    def block(self, path: str, block: nn.Module, ref: Ref) -> Ref:
        """Residual blocks: the shortcut joins as extra edges into the node that sums it."""
        join = functools.partial(_join, path)
        shortcut = ref if block.downsample is None else self.module(join("downsample"), block.downsample, ref)
        if shortcut.scale != 1.0:
            raise NIRExportError(path, block, "a sum pool feeds the identity shortcut, so its 1/k^2 cannot be "
                                 "folded; export with pooling='avg'")
        if isinstance(block, BasicBlock):
            out = self.module(join("neuron1"), block.neuron1, self.module(join("conv1"), block.conv1, ref))
            out = self.module(join("conv2"), block.conv2, out)
            return self.lif(join("neuron2"), block.neuron2, Ref(out.names + shortcut.names, out.shape))
        if block.cnf != "ADD":
            raise NIRExportError(path, block, f"the SEW connect function {block.cnf!r} multiplies spikes, and NIR "
                                 "has no product node; only cnf='ADD' is exported")
        depth = 3 if isinstance(block, SEWBottleneck) else 2
        out = ref
        for k in range(1, depth + 1):
            out = self.module(join(f"neuron{k}"), getattr(block, f"neuron{k}"),
                              self.module(join(f"conv{k}"), getattr(block, f"conv{k}"), out))
        return Ref(out.names + shortcut.names, out.shape)


def _is_neuron(m: nn.Module) -> bool:
    return any(hasattr(m, a) for a in ("v_threshold", "threshold")) and not isinstance(m, nn.Threshold)


def _foreign_neuron(m: nn.Module) -> str:
    if getattr(m, "v_reset", 0.0) is None or getattr(m, "reset_mechanism", "zero") == "subtract":
        return ("it resets by subtraction (a soft reset); NIR's LIF resets to v_reset, so the spikes would "
                "differ; train with sparsegrad's LIF (hard reset)")
    return (f"a neuron from {type(m).__module__}, not sparsegrad's LIF, whose equations the exporter cannot "
            "vouch for; export that library's model with its own NIR exporter")


def _split_head(model: nn.Module) -> tuple[nn.Module, np.ndarray | None]:
    if isinstance(model, TemporalWeightedHead):
        if model.time_dim != 0:
            raise NIRExportError("", model, f"time_dim={model.time_dim}; only time-first outputs are exported")
        return model.model, model.factors.detach().double().cpu().numpy()
    return model, None


def _frame_shape(sample: torch.Tensor) -> tuple[tuple[int, ...], str]:
    """The per-step input shape ``(C, H, W)`` and how the input is driven."""
    if not isinstance(sample, torch.Tensor) or sample.ndim not in (4, 5):
        got = list(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
        raise ValueError(f"to_nir: sample must be images [B, C, H, W] or event frames [B, T, C, H, W] "
                         f"(one batch as the model takes it), got {got}")
    if sample.ndim == 5:
        return tuple(sample.shape[2:]), "frames"
    return tuple(sample.shape[1:]), "direct"


def to_nir(model: nn.Module, sample: torch.Tensor, *, dt: float = 1e-4, pooling: str = "avg") -> nir.NIRGraph:
    """The NIR graph of a sparsegrad network in eval mode: one timestep, no batch axis.

    Batch norms are folded into the conv or linear before them with their running
    statistics (either ``bn_mode``), so the graph computes the eval-mode forward. Each LIF
    becomes NIR's ``LIF`` with ``tau = tau * dt``, ``r = 1``, ``v_leak = v_reset``; the
    readout's output at each step is the graph's output ``I_L[t]``. A residual sum becomes
    several edges into one node. Metadata (keys in [sparsegrad.nir][sparsegrad.nir]): ``dt``,
    ``T``, how the input is driven (``"frames"``: one event frame per step; ``"direct"``: the
    same image at every step) and, for a [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead],
    TWO's factors.

    Args:
        model: a registered model, a ``TemporalWeightedHead`` around one, or an
            ``nn.Sequential`` of the supported modules (time-first).
        sample: one input batch as the model takes it, ``[B, C, H, W]`` images or
            ``[B, T, C, H, W]`` event frames; only its shape is read.
        dt: the Euler step in seconds that the time constants assume. Default 1e-4
            (snnTorch's import step); Norse imports at the ``dt`` it is given.
        pooling: ``"avg"`` (default) writes ``nir.AvgPool2d``; ``"sum"`` writes
            ``nir.SumPool2d`` and folds ``1 / k^2`` into the next conv or linear (for
            simulators without average pooling, such as Norse).

    Returns:
        The graph; ``nir.write`` saves it.

    Raises:
        NIRExportError: a module with no exact NIR counterpart (a foreign or soft-reset
            neuron, a SEW ``AND``/``IAND`` connection, max pooling, ...); the message names
            its path, class and why.
        ValueError: a bad ``sample``, ``dt`` or ``pooling``.

    Reference: docs/design.md §10; NIR (Pedersen et al., Nature Communications 2024).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"to_nir: pooling must be one of {POOLINGS}, got {pooling!r}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"to_nir: dt must be a positive number of seconds, got {dt!r}")
    net, factors = _split_head(model)
    shape, encoding = _frame_shape(sample)
    T = len(factors) if factors is not None else getattr(net, "T", None)
    builder = _Builder(float(dt), pooling)
    builder.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    out = builder.module("", net, Ref(("input",), shape))
    if out.scale != 1.0:
        raise NIRExportError("", net, "the graph ends in a sum pool whose 1/k^2 has no layer to fold into; "
                             "export with pooling='avg'")
    builder.add("output", nir.Output(output_type={"output": np.array(out.shape)}), out, out.shape)
    metadata = {METADATA_DT: float(dt), METADATA_INPUT: encoding}
    if T is not None:
        metadata[METADATA_T] = int(T)
    if factors is not None:
        metadata[METADATA_TWO] = factors
    return nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=metadata)
