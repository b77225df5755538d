"""Where MSG bites: the masked against the unmasked gradient of the same batch, per LIF layer.

The parameters of a network are grouped by depth: group ``l`` (``0 <= l < L``) holds the
parameters that run after LIF layer ``l - 1`` and before LIF layer ``l`` (the conv and batch
norm feeding LIF ``l``, a ResNet block's downsample conv), group ``L`` the readout after the last
LIF layer. In a plain stack, every path from the loss to group ``l`` crosses the surrogates of
LIF layers ``l .. L-1``; MSG keeps each with probability ``1 - p``, so a path survives all of
them with probability ``(1 - p)^(L - l)``, the *paths-kept* prediction. In expectation the
masked gradient is that fraction of the unmasked one (exactly so when each path crosses each
layer's surrogate once, e.g. ``detach_reset=True``); ``rescale=True`` (Eq. 13) restores it to 1.
What the expectation hides is the noise: one mask's gradient points elsewhere, the more so the
deeper the layer. A ResNet's shortcuts skip LIF layers (SEW's identity path crosses none), so
there the count is an upper bound.

[gradient_probe][sparsegrad.study.probe.gradient_probe] measures, per group, over ``masks``
independent masks of one forward:

- ``cosine``: the mean cosine between one mask's gradient and the unmasked gradient;
- ``norm_ratio``: the mean of ``|g_mask| / |g|``;
- ``gain``: the mean of ``<g_mask, g> / |g|^2``, whose expectation is the paths-kept fraction.

Reference: paper Eq. 10-14 (MSG); issue 19 of this project; docs/results.md (depth study).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable

import torch
from torch import nn

from sparsegrad.masked import MaskedGradient
from sparsegrad.neuron import LIF

__all__ = ["depth_groups", "gradient_probe"]


def depth_groups(net: nn.Module, x: torch.Tensor, neurons: type | tuple[type, ...] = LIF) -> list[list[str]]:
    """Names of the parameters of ``net`` grouped by the LIF layer they feed (module docstring).

    One forward of ``x`` (no gradient) records the order in which the modules run.

    Returns:
        ``L + 1`` lists of parameter names: group ``l < L`` feeds LIF layer ``l`` (in execution
        order), group ``L`` runs after the last one. Groups may be empty.

    Raises:
        ValueError: ``net`` holds no ``neurons`` module.
    """
    order: list[nn.Module] = []
    owners = {m: n for n, m in net.named_modules()
              if isinstance(m, neurons) or any(True for _ in m.parameters(recurse=False))}
    handles = [m.register_forward_pre_hook(lambda m, _: order.append(m) if m not in order else None)
               for m in owners]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    if not any(isinstance(m, neurons) for m in order):
        raise ValueError(f"depth_groups: no {neurons} module ran in {type(net).__name__}'s forward")
    groups: list[list[str]] = [[]]
    for module in order:
        if isinstance(module, neurons):
            groups.append([])
        else:
            prefix = owners[module]
            groups[-1] += [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
    return groups


def _mean_logits_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.mean(0), y)


def _flat(grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n].reshape(-1) for n in names]).double()


def gradient_probe(net: nn.Module, x: torch.Tensor, y: torch.Tensor, p: float, *, masks: int = 8,
                   rescale: bool = False, seed: int = 0, last: int | None = None,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _mean_logits_loss) -> dict:
    """Per LIF layer: how far MSG's gradient of one batch is from the plain surrogate gradient.

    The unmasked gradient comes from one forward without MSG, the masked ones from one forward
    with ``MaskedGradient(p, rescale=rescale, seed=seed)`` attached, differentiated ``masks``
    times (each backward draws a fresh mask). Both forwards run in training mode on the same
    batch and weights, so they are the same forward; the state (batch-norm statistics) is
    restored afterwards.

    Args:
        net: a network mapping ``x`` to per-timestep logits ``[T, B, K]``.
        x: one batch, as ``net`` takes it.
        y: class indices ``[B]``.
        p: MSG's drop probability in ``[0, 1]``.
        masks: masks to average over, ``>= 1``.
        rescale: MSG's Eq. 13 rescaling.
        seed: seed of MSG's masks.
        last: mask only the last ``last`` LIF layers (``attach(last=..., example=x)``), so that
            group ``l`` crosses ``min(last, L - l)`` masks. Default None: every layer.
        loss_fn: ``loss_fn(logits [T, B, K], y) -> scalar``; default cross-entropy of the
            mean over time (TWO off).

    Returns:
        ``{"p", "rescale", "masks", "depth": L, "last", "layers": [...]}``, one layer row per group ``l``
        with ``layer``, ``module`` (the first parameter's module), ``masks_crossed``
        (``L - l``, at most ``last``), ``paths_kept`` (``(1 - p)^masks_crossed``), ``cosine``, ``cosine_sd``,
        ``norm_ratio``, ``norm_ratio_sd`` and ``gain`` (module docstring). Groups without
        parameters or with a zero unmasked gradient are left out.

    Raises:
        ValueError: ``masks`` < 1, or a bad ``p`` / ``rescale`` / ``last`` (as MaskedGradient says).
    """
    if not isinstance(masks, int) or isinstance(masks, bool) or masks < 1:
        raise ValueError(f"gradient_probe: masks must be an int >= 1, got {masks!r}")
    msg = MaskedGradient(p, rescale=rescale, seed=seed)  # checks p and rescale first
    was_training, state = net.training, copy.deepcopy(net.state_dict())
    net.train()
    groups = depth_groups(net, x)
    named = dict(net.named_parameters())
    names = [n for group in groups for n in group if named[n].requires_grad]
    params = [named[n] for n in names]
    try:
        plain = dict(zip(names, torch.autograd.grad(loss_fn(net(x), y), params, allow_unused=True)))
        msg.attach(net, last=last, example=None if last is None else x)
        loss = loss_fn(net(x), y)
        draws = [dict(zip(names, torch.autograd.grad(loss, params, retain_graph=k < masks - 1, allow_unused=True)))
                 for k in range(masks)]
    finally:
        msg.remove()
        net.load_state_dict(state)
        net.train(was_training)
    return {"p": float(p), "rescale": rescale, "masks": masks, "depth": len(groups) - 1, "last": last,
            "layers": _layer_rows(groups, plain, draws, p, rescale, last)}


def _layer_rows(groups: list[list[str]], plain: dict, draws: list[dict], p: float, rescale: bool,
                last: int | None) -> list[dict]:
    depth, rows = len(groups) - 1, []
    for layer, group in enumerate(groups):
        group = [n for n in group if n in plain and plain[n] is not None]
        if not group:
            continue
        g = _flat(plain, group)
        norm = g.norm()
        if norm == 0:
            continue
        zero = {n: torch.zeros_like(plain[n]) for n in group}
        ks = [_flat({n: d[n] if d[n] is not None else zero[n] for n in group}, group) for d in draws]
        cos = [float(torch.nn.functional.cosine_similarity(k, g, dim=0)) for k in ks]
        ratio = [float(k.norm() / norm) for k in ks]
        gain = [float(k @ g / norm**2) for k in ks]
        crossed = depth - layer if last is None else min(last, depth - layer)
        rows.append({"layer": layer, "module": group[0].rsplit(".", 1)[0], "masks_crossed": crossed,
                     "paths_kept": 1.0 if rescale else (1 - p) ** crossed,
                     "cosine": statistics.fmean(cos), "cosine_sd": _sd(cos),
                     "norm_ratio": statistics.fmean(ratio), "norm_ratio_sd": _sd(ratio),
                     "gain": statistics.fmean(gain)})
    return rows


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0
