"""From a configuration to datasets, a model and loaders, through the registries.

Datasets come from [load_splits][sparsegrad.data.registry.load_splits] (or are given by the
caller); what the model must fit (input channels, image size, classes) is read from the data;
the model is ``timm.create_model`` of any registered name, with ``img_size`` for models whose
classifier depends on it (timm's ``fixed_input_size``). [check_model][sparsegrad.train.build.check_model]
runs it once on two test samples before anything is written.

Reference: docs/design.md §4 (models), §5 (data) and §6 (engine).
"""

from __future__ import annotations

import copy
import inspect
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from accelerate import Accelerator
from timm.models import get_pretrained_cfg_value, model_entrypoint
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

import sparsegrad.models
from sparsegrad.data import DATASETS, class_balanced_sampler, load_splits, targets_of
from sparsegrad.masked import MaskedGradient
from sparsegrad.train.config import RecipeConfig, per_process_batch
from sparsegrad.train.neurons import msg_targets, reset_states, stateful_neurons

__all__ = ["InputSpec", "build_datasets", "build_model", "check_model", "input_spec", "make_loaders",
           "needs_img_size"]


@dataclass(frozen=True)
class InputSpec:
    """What the model must fit: input channels, ``(height, width)`` and classes."""

    in_chans: int
    img_size: tuple[int, int]
    num_classes: int


def _limit(dataset: Dataset, limit: int | None) -> Dataset:
    """A fixed random subset (the same for every seed and process), sorted by index."""
    if limit is None or limit >= len(dataset):
        return dataset
    picked = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit]
    return Subset(dataset, sorted(picked.tolist()))


def build_datasets(cfg: RecipeConfig, accelerator: Accelerator | None = None) -> tuple[Dataset, Dataset]:
    """The training and test sets of ``cfg``: its dataset, split (or fold), transforms and limits.

    With ``download`` the main process reads (and downloads) first. With several processes each
    keeps its own frame cache (``<cache>/rank<r>``).
    """
    cache = None
    if cfg.frame_cache and DATASETS[cfg.dataset].kind == "event":
        cache = cfg.cache_dir if cfg.cache_dir is not None else cfg.out_dir / "frame_cache"
        if accelerator is not None and accelerator.num_processes > 1:
            # tonic's HDF5 cache files cannot take two writers at once (both ranks meet the
            # samples an even last batch repeats), so each process keeps its own cache.
            cache = Path(cache) / f"rank{accelerator.process_index}"
    make = partial(load_splits, cfg.dataset, cfg.data_root, T=cfg.T, size=cfg.img_size, augment=cfg.augment,
                   autoaugment=cfg.autoaugment, cache_dir=cache, download=cfg.download, folds=cfg.folds,
                   fold=cfg.fold)
    if accelerator is not None and cfg.download:
        with accelerator.main_process_first():
            train, test = make()
    else:
        train, test = make()
    return limit_datasets(cfg, train, test)


def limit_datasets(cfg: RecipeConfig, train: Dataset, test: Dataset) -> tuple[Dataset, Dataset]:
    """``train_limit`` / ``eval_limit`` fixed random subsets of a dataset pair."""
    return _limit(train, cfg.train_limit), _limit(test, cfg.eval_limit)


def _num_classes(cfg: RecipeConfig, train: Dataset, test: Dataset, from_registry: bool) -> int:
    if cfg.num_classes is not None:
        return cfg.num_classes
    if from_registry and DATASETS[cfg.dataset].num_classes is not None:
        return DATASETS[cfg.dataset].num_classes
    try:
        return 1 + max(targets_of(train) + targets_of(test))
    except TypeError as err:
        raise ValueError(f"{err}; set --num-classes (num_classes=) for this dataset") from None


def input_spec(cfg: RecipeConfig, train: Dataset, test: Dataset, *, from_registry: bool = True) -> InputSpec:
    """Channels and size from the first test sample (``[C, H, W]`` or ``[T, C, H, W]``), and classes.

    Raises:
        ValueError: a sample of another rank, event frames whose T is not ``cfg.T``, or no way
            to know the classes (no ``targets`` and no ``--num-classes``).
    """
    x = test[0][0]
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        raise ValueError(f"samples must be tensors [C, H, W] or [T, C, H, W], got {getattr(x, 'shape', type(x))}")
    if x.ndim == 4 and x.shape[0] != cfg.T:
        raise ValueError(f"the data holds {x.shape[0]} frames per sample but --T is {cfg.T}")
    return InputSpec(int(x.shape[-3]), (int(x.shape[-2]), int(x.shape[-1])),
                     _num_classes(cfg, train, test, from_registry))


def needs_img_size(model: str) -> bool:
    """Whether ``model``'s classifier depends on the input size (timm's ``fixed_input_size``)."""
    try:
        return bool(get_pretrained_cfg_value(model, "fixed_input_size"))
    except RuntimeError:  # a model registered without a pretrained_cfg
        return False


def _model_kwargs(cfg: RecipeConfig, spec: InputSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": spec.num_classes, "in_chans": spec.in_chans, "T": cfg.T,
                              "surrogate": cfg.surrogate}
    for field, unset in (("alpha", None), ("stem", None), ("bn_mode", "merged")):
        if getattr(cfg, field) != unset:
            kwargs[field] = getattr(cfg, field)
    if needs_img_size(cfg.model):
        h, w = spec.img_size
        kwargs["img_size"] = h if h == w else (h, w)
    if cfg.model in sparsegrad.models.MODEL_NAMES:
        return kwargs
    named = inspect.signature(model_entrypoint(cfg.model)).parameters
    return {k: v for k, v in kwargs.items() if k in ("num_classes", "in_chans") or k in named}


def build_model(cfg: RecipeConfig, spec: InputSpec) -> nn.Module:
    """``timm.create_model(cfg.model, ...)`` for ``spec``: classes, channels, T, surrogate; stem,
    alpha and BN mode when set; ``img_size`` when the model's classifier depends on it.

    A model registered outside sparsegrad gets ``num_classes`` and ``in_chans`` (timm's own)
    and, of the others, only those its entrypoint names as parameters."""
    return timm.create_model(cfg.model, **_model_kwargs(cfg, spec))


def _expected(cfg: RecipeConfig, spec: InputSpec, batch: int) -> str:
    return f"per-timestep logits [T, B, K] = [{cfg.T}, {batch}, {spec.num_classes}]"


def check_model(cfg: RecipeConfig, spec: InputSpec, model: nn.Module, test: Dataset, accelerator: Accelerator) -> None:
    """Runs a copy of ``model`` once (``eval()``, no gradient) on the first two test samples and
    refuses what cannot train: an output that is not ``[T, B, K]`` for ``cfg.T`` and ``spec``'s
    classes, or, with ``cfg.msg``, no spiking activation [MaskedGradient][sparsegrad.masked.MaskedGradient]
    can attach to.

    Raises:
        ValueError: the message names the model, the shape it returned and the one expected.
    """
    probe = copy.deepcopy(model).to(accelerator.device).eval()
    x = torch.stack([test[i][0] for i in range(min(2, len(test)))]).to(accelerator.device)
    stateful = stateful_neurons(probe)
    reset_states(stateful)
    where = f"--model {cfg.model} on {x.shape[0]} samples of shape {tuple(x.shape[1:])}"
    try:
        with torch.no_grad(), accelerator.autocast():
            out = probe(x)
    except (RuntimeError, TypeError, ValueError) as err:  # what a module raises on an input it cannot take
        raise ValueError(f"{where} failed ({type(err).__name__}: {err}); the engine trains "
                         f"{_expected(cfg, spec, x.shape[0])}") from err
    reset_states(stateful)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (cfg.T, x.shape[0], spec.num_classes):
        raise ValueError(f"{where} returned {shape}; the engine trains {_expected(cfg, spec, x.shape[0])} "
                         "(time first, one output per class)")
    if cfg.msg:
        try:
            MaskedGradient(p=cfg.p, seed=0).attach(probe, msg_targets(probe)).remove()
        except ValueError as err:
            raise ValueError(f"--msg: --model {cfg.model} has no spiking neuron MSG can attach to ({err}); "
                             "train it with --no-msg, or build it with sparsegrad, spikingjelly or snntorch neurons"
                             ) from None


def _seed_worker(rank: int, worker_id: int) -> None:
    # Workers are seeded from the loader's generator, identical on every process; add the
    # rank so that processes draw different augmentations.
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def make_loaders(cfg: RecipeConfig, accelerator: Accelerator, train: Dataset, test: Dataset,
                 generator: torch.Generator) -> tuple[DataLoader, DataLoader]:
    """Training loader (shuffled, or class-balanced, by ``generator``) and test loader."""
    per = per_process_batch(cfg, accelerator.num_processes)
    sampler = class_balanced_sampler(targets_of(train), generator=generator) if cfg.balanced_sampler else None
    common = {"num_workers": cfg.num_workers, "pin_memory": accelerator.device.type == "cuda"}
    init = partial(_seed_worker, accelerator.process_index) if cfg.num_workers else None
    train_loader = DataLoader(train, per, shuffle=sampler is None, sampler=sampler, generator=generator,
                              worker_init_fn=init, **common)
    return train_loader, DataLoader(test, per, shuffle=False, **common)
