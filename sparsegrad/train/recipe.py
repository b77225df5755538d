"""The runner behind every script in ``recipes/``: a typed configuration and :func:`run`.

A recipe is a :class:`RecipeConfig` whose defaults are one row of the paper's Table 1 or 2;
the script hands it to ``tyro`` (every field becomes a ``--flag``) and to :func:`run`, which
trains one model per seed and returns the run folder::

    <out-dir>/<name>-<YYYYmmdd-HHMMSS>/
        config.json                  requested and effective configuration, environment, resumes
        results.json, results.csv    per seed: final and best test accuracy, per-timestep
                                     accuracy, TWO factors, firing rates; mean and sd over seeds
        seed-<s>/
            metrics.csv              one row per epoch (loss, accuracy, accuracy of every
                                     timestep, TWO factors, lr, epoch time, MSG statistics)
            result.json, firing_rate.json
            checkpoints/             model-e<N>.safetensors + state-e<N>.pt (sparsegrad.train.checkpoint)
            tensorboard/             the same scalars for TensorBoard
            plots/                   curves, accuracy per timestep, TWO factors (Fig. 3),
                                     firing rate per LIF layer (Fig. 6a), time per epoch (Fig. 6b)

The same code runs as ``python recipes/<row>.py`` (one process) and under
``accelerate launch`` / ``torchrun`` (one process per GPU, or several CPU processes).
``batch_size`` is the global batch of one optimizer step, split over processes and
gradient-accumulation steps, so a row trains with the same hyperparameters on any hardware.

Resume is exact: a state file holds the optimizer, the scheduler, the epoch, every process's
global RNG states, MSG generator state and TWO state (factors, epoch count and the per-rank
counts kept as extra state); the loaders' order depends only on (seed, epoch). Training
two epochs straight and one epoch, resume, one epoch give bitwise-equal weights on CPU (on
GPU, up to the nondeterminism of cuDNN kernels).

Reference: DESIGN §5 (data, optimiser, recipes) and §6 (engine, run folder).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import accelerate
import numpy as np
import timm
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms as TV
from tqdm.auto import tqdm

import sparsegrad
from sparsegrad.data import EventFrameDataset, build_dataset, class_balanced_sampler, static_transform
from sparsegrad.masked import MaskedGradient
from sparsegrad.models.vgg import LAYOUTS as _FIXED_SIZE_MODELS
from sparsegrad.neuron import LIF
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train.checkpoint import (
    checkpoint_epoch,
    fingerprint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_path,
)
from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.loop import train_one_epoch
from sparsegrad.train.plots import plot_run
from sparsegrad.train.run_dir import create_run_dir, write_csv, write_json

__all__ = [
    "NUM_CLASSES",
    "RecipeConfig",
    "build_datasets",
    "build_model",
    "effective_config",
    "firing_rates",
    "learning_rate",
    "make_accelerator",
    "run",
    "run_variants",
]

DatasetName = Literal["cifar10", "cifar100", "imagenet", "cifar10dvs", "ncaltech101", "dvsgesture", "nmnist"]
SurrogateName = Literal["atan", "pl", "sigmoid", "rect", "pexp", "fast_sigmoid"]

NUM_CLASSES: dict[str, int] = {
    "cifar10": 10, "cifar100": 100, "imagenet": 1000,
    "cifar10dvs": 10, "ncaltech101": 101, "dvsgesture": 11, "nmnist": 10,
}
"""Classes of each dataset (the model's output size unless ``num_classes`` is set)."""
_STATIC_SIZE = {"cifar10": 32, "cifar100": 32, "imagenet": 224}
_SMOKE_BATCH = 2  # per process


@dataclass
class RecipeConfig:
    """One experiment: dataset, network, the paper's training recipe, MSG and TWO.

    The defaults are the settings the paper shares across its experiments (§5; DESIGN §5):
    AdamW at ``0.05 * batch / 1024``, cosine decay per epoch, weight decay 0.01, label
    smoothing 0.1, 300 epochs, p = 0.5, beta = 0.7, three seeds. Each script in ``recipes/``
    sets its row's dataset, network, T and batch size.
    """

    # ------------------------------------------------------------------ what and where
    name: str = "recipe"
    """Run folder prefix: <out-dir>/<name>-<time> (smoke runs add -smoke)."""
    dataset: DatasetName = "cifar10"
    """Dataset (sparsegrad.data.build_dataset name)."""
    model: str = "spiking_cifarnet"
    """timm model name (a sparsegrad.models entry)."""
    data_root: Path | None = None
    """Folder of the dataset (layouts: sparsegrad.data); for nmnist, default the embedded subset."""
    download: bool = False
    """Let torchvision / tonic download a missing dataset into --data-root (never ImageNet)."""
    out_dir: Path = Path("runs")
    """Parent folder of the run folder."""
    resume: Path | None = None
    """Continue a run folder (each seed from its newest checkpoint, finished seeds kept), or
    restart one seed from a checkpoint file <run>/seed-<s>/checkpoints/state-e<N>.pt (its
    later checkpoints are deleted)."""
    smoke: bool = False
    """Check the set-up in seconds on whatever data is given: 1 epoch, 2 optimizer steps and 1
    evaluation batch, 2 samples per process and step, first seed only, no frame cache."""

    # ------------------------------------------------------------------ optimisation
    epochs: int = 300
    """Training epochs (paper: 300 for every experiment but ImageNet)."""
    batch_size: int = 128
    """Global batch per optimizer step, split over processes and accumulation steps."""
    base_lr: float = 0.05
    """Learning rate at a batch of 1024 (paper: 0.05); the rate used is base_lr * batch_size / 1024."""
    lr: float | None = None
    """Initial learning rate, replacing the scaling rule when set."""
    weight_decay: float = 0.01
    """AdamW weight decay (paper)."""
    label_smoothing: float = 0.1
    """Label smoothing of the training loss (paper)."""
    grad_accum: int = 1
    """Gradient-accumulation steps per optimizer step."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One training run per seed (paper: three repetitions)."""
    checkpoint_every: int = 1
    """Write a checkpoint every N epochs (and always after the last)."""
    keep_checkpoints: int = 1
    """Checkpoints kept per seed (the newest)."""

    # ------------------------------------------------------------------ the method
    msg: bool = True
    """Masked surrogate gradient (Eq. 10-14) on every LIF layer."""
    two: bool = True
    """Temporally weighted output (Eq. 15-17): update the factors from per-timestep accuracy."""
    p: float = 0.5
    """MSG drop probability (paper: 0.5)."""
    beta: float = 0.7
    """TWO momentum (paper: 0.7)."""
    msg_granularity: Literal["element", "neuron"] = "element"
    """MSG mask per element (the authors' code) or per neuron (the paper's §4.2 wording)."""
    msg_rescale: bool = False
    """Scale kept gradients by 1/(1-p) (Eq. 13)."""
    two_update: Literal["epoch", "step"] = "epoch"
    """TWO factor update at each epoch's end (the authors' code) or at every step."""

    # ------------------------------------------------------------------ network
    T: int = 4
    """Timesteps (paper: 4 static, 10 neuromorphic)."""
    surrogate: SurrogateName = "pl"
    """Surrogate gradient (paper Table 2: atan for ResNet18, pl for VGGSNN)."""
    alpha: float | None = None
    """Surrogate sharpness (default: the surrogate's, 2.0 for atan and pl)."""
    stem: Literal["imagenet", "cifar"] | None = None
    """ResNet stem (default: the model's); 'cifar' is a 3x3 stride-1 conv without pooling."""
    bn_mode: Literal["merged", "per_step"] = "merged"
    """Batch norm over time and batch ('merged') or per timestep."""
    num_classes: int | None = None
    """Classifier outputs (default: the dataset's classes)."""

    # ------------------------------------------------------------------ data
    img_size: int | None = None
    """Event frame side (default 48 for cifar10dvs / ncaltech101, the sensor's otherwise) or
    ImageNet crop (default 224; smaller only for cheap smoke runs)."""
    autoaugment: bool = True
    """Static data: AutoAugment and Cutout on (Table 1 'w/ AutoAugment') or both off."""
    augment: bool | None = None
    """Event data: crop / flip / rotation (default: on for cifar10dvs and ncaltech101, DESIGN §5)."""
    balanced_sampler: bool = False
    """Draw training samples class-balanced (N-Caltech101)."""
    train_limit: int | None = None
    """Train on a fixed random subset of N samples."""
    eval_limit: int | None = None
    """Evaluate on a fixed random subset of N samples."""
    num_workers: int = 4
    """DataLoader workers per process."""
    frame_cache: bool = True
    """Cache event frames on disk."""
    cache_dir: Path | None = None
    """Frame cache folder (default: <out-dir>/frame_cache)."""

    # ------------------------------------------------------------------ engine and outputs
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    """Autocast precision (default: as accelerate launch / accelerate config say)."""
    tensorboard: bool = True
    """Also log the per-epoch scalars to TensorBoard (if installed)."""
    plots: bool = True
    """Draw the figures at the end of each seed."""
    paper_result: str | None = None
    """Top-1 accuracy (%) the paper reports for this row, printed beside ours."""


# ============================================================================== configuration
def effective_config(cfg: RecipeConfig, num_processes: int = 1) -> RecipeConfig:
    """``cfg`` as it will run: ``smoke`` shrinks it to a few steps (see the field's help)."""
    if not cfg.smoke:
        return cfg
    batch = _SMOKE_BATCH * num_processes * cfg.grad_accum
    return dataclasses.replace(
        cfg, epochs=1, seeds=cfg.seeds[:1], batch_size=batch,
        train_limit=min(2 * batch, cfg.train_limit or 2 * batch),
        eval_limit=min(_SMOKE_BATCH * num_processes, cfg.eval_limit or batch),
        num_workers=0, frame_cache=False,
    )


def learning_rate(cfg: RecipeConfig) -> float:
    """``cfg.lr``, or the paper's rule ``base_lr * batch_size / 1024`` (DESIGN §5)."""
    return cfg.lr if cfg.lr is not None else cfg.base_lr * cfg.batch_size / 1024


def _per_process_batch(cfg: RecipeConfig, num_processes: int) -> int:
    split = num_processes * cfg.grad_accum
    if cfg.batch_size % split:
        raise ValueError(
            f"batch_size={cfg.batch_size} (global, per optimizer step) must be a multiple of "
            f"processes x grad_accum = {num_processes} x {cfg.grad_accum}"
        )
    return cfg.batch_size // split


def _check(cfg: RecipeConfig, num_processes: int) -> None:
    if cfg.epochs < 1 or not cfg.seeds:
        raise ValueError("need epochs >= 1 and at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"seeds must be distinct, got {cfg.seeds}")
    if cfg.T < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.checkpoint_every < 1:
        raise ValueError("T, batch_size, grad_accum and checkpoint_every must be >= 1")
    if cfg.dataset not in NUM_CLASSES:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of {tuple(NUM_CLASSES)}")
    if cfg.data_root is None and cfg.dataset != "nmnist":
        raise ValueError(f"--data-root is required for {cfg.dataset} (only nmnist has embedded data)")
    if not timm.is_model(cfg.model):
        raise ValueError(f"unknown model {cfg.model!r}; sparsegrad registers {sparsegrad.models.MODEL_NAMES}")
    if cfg.dataset in ("cifar10", "cifar100") and cfg.img_size not in (None, 32):
        raise ValueError(f"CIFAR images are 32x32; img_size={cfg.img_size} is not supported")
    _per_process_batch(cfg, num_processes)


def _jsonable(cfg: RecipeConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def make_accelerator(cfg: RecipeConfig) -> Accelerator:
    """The Accelerator a recipe runs on: a per-epoch scheduler, ``cfg``'s accumulation and precision."""
    return Accelerator(step_scheduler_with_optimizer=False, gradient_accumulation_steps=cfg.grad_accum,
                       mixed_precision=cfg.mixed_precision)


# ============================================================================== data and model
def _static_transform(cfg: RecipeConfig, train: bool) -> TV.Compose:
    steps = list(static_transform(cfg.dataset, train, cutout=16 if cfg.autoaugment else None).transforms)
    if not cfg.autoaugment:
        steps = [s for s in steps if not isinstance(s, TV.AutoAugment)]
    size = cfg.img_size
    if size is not None and size != _STATIC_SIZE[cfg.dataset]:  # ImageNet only (checked)
        resized = []
        for s in steps:
            if isinstance(s, TV.RandomResizedCrop):
                s = TV.RandomResizedCrop(size, scale=s.scale, ratio=s.ratio)
            elif isinstance(s, TV.Resize):
                s = TV.Resize(round(size * 256 / 224))
            elif isinstance(s, TV.CenterCrop):
                s = TV.CenterCrop(size)
            resized.append(s)
        steps = resized
    return TV.Compose(steps)


def _subset(dataset: Dataset, limit: int | None) -> Dataset:
    """A fixed random subset (the same for every seed and process), sorted by index."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise ValueError(f"limits must be >= 1, got {limit}")
    picked = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:limit]
    return Subset(dataset, sorted(picked.tolist()))


def _targets(dataset: Dataset) -> list[int]:
    if isinstance(dataset, Subset):
        base = _targets(dataset.dataset)
        return [base[i] for i in dataset.indices]
    return [int(t) for t in dataset.targets]


def _base(dataset: Dataset) -> Dataset:
    return _base(dataset.dataset) if isinstance(dataset, Subset) else dataset


def build_datasets(cfg: RecipeConfig, accelerator: Accelerator | None = None) -> tuple[Dataset, Dataset]:
    """The training and test sets of ``cfg`` (the paper's preprocessing, DESIGN §5).

    Static data go through :func:`~sparsegrad.data.static_transform` (AutoAugment and
    Cutout unless ``autoaugment=False``; ImageNet crops resized to ``img_size`` if set);
    event data through :func:`~sparsegrad.data.build_dataset` with ``T`` frames of
    ``img_size`` and the frame cache. ``train_limit`` / ``eval_limit`` take fixed random
    subsets. With ``download``, the main process downloads first.
    """
    cache = None
    if cfg.dataset in _STATIC_SIZE:
        def make(train):
            return build_dataset(cfg.dataset, cfg.data_root, train, cfg.T,
                                 transform=_static_transform(cfg, train), download=cfg.download)
    else:
        if cfg.frame_cache:
            cache = cfg.cache_dir if cfg.cache_dir is not None else cfg.out_dir / "frame_cache"
        size = {} if cfg.img_size is None else {"size": cfg.img_size}

        def make(train):
            return build_dataset(cfg.dataset, cfg.data_root, train, cfg.T, augment=cfg.augment if train else False,
                                 cache_dir=cache, download=cfg.download, **size)
    if accelerator is not None and cfg.download:
        with accelerator.main_process_first():
            train, test = make(True), make(False)
    else:
        train, test = make(True), make(False)
    return _subset(train, cfg.train_limit), _subset(test, cfg.eval_limit)


def _input_size(cfg: RecipeConfig, dataset: Dataset) -> tuple[int, int]:
    base = _base(dataset)
    if isinstance(base, EventFrameDataset):
        return tuple(base.frame_shape[2:])
    side = cfg.img_size or _STATIC_SIZE[cfg.dataset]
    return side, side


def build_model(cfg: RecipeConfig, img_size: tuple[int, int] | None = None) -> nn.Module:
    """``timm.create_model(cfg.model, ...)`` for ``cfg``'s dataset: classes, input channels
    (2 event polarities or 3 colours), T, surrogate, stem, BN mode; VGG-style models get the
    input size their classifier depends on."""
    kwargs: dict[str, Any] = {
        "num_classes": cfg.num_classes or NUM_CLASSES[cfg.dataset],
        "in_chans": 3 if cfg.dataset in _STATIC_SIZE else 2,
        "T": cfg.T, "surrogate": cfg.surrogate, "alpha": cfg.alpha, "bn_mode": cfg.bn_mode,
    }
    if cfg.stem is not None:
        kwargs["stem"] = cfg.stem
    if cfg.model in _FIXED_SIZE_MODELS:
        kwargs["img_size"] = img_size or (cfg.img_size or _STATIC_SIZE.get(cfg.dataset, 48))
    return timm.create_model(cfg.model, **kwargs)


def _seed_worker(rank: int, worker_id: int) -> None:
    # Workers are seeded from the loader's generator, identical on every process; add the
    # rank so that processes draw different augmentations.
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _loaders(cfg, accelerator, train_set, test_set, generator) -> tuple[DataLoader, DataLoader]:
    per = _per_process_batch(cfg, accelerator.num_processes)
    sampler = class_balanced_sampler(_targets(train_set), generator=generator) if cfg.balanced_sampler else None
    common = {"num_workers": cfg.num_workers, "pin_memory": accelerator.device.type == "cuda"}
    init = partial(_seed_worker, accelerator.process_index) if cfg.num_workers else None
    train = DataLoader(train_set, per, shuffle=sampler is None, sampler=sampler, generator=generator,
                       worker_init_fn=init, **common)
    test = DataLoader(test_set, per, shuffle=False, **common)
    return train, test


@torch.no_grad()
def firing_rates(model: nn.Module, x: torch.Tensor, autocast=None) -> dict[str, float]:
    """Mean spike rate of every :class:`~sparsegrad.LIF` layer of ``model`` on the batch ``x``.

    A forward hook on each LIF records the mean of its output spikes (the fraction of neurons
    firing per timestep and sample); ``model`` runs once in ``eval()`` mode and is put back.

    Returns:
        ``{module name: rate in [0, 1]}`` in network order (paper Fig. 6a).
    """
    rates: dict[str, float] = {}

    def record(name, module, args, out):
        rates[name] = out.float().mean().item()

    hooks = [m.register_forward_hook(partial(record, name)) for name, m in model.named_modules()
             if isinstance(m, LIF)]
    was_training = model.training
    model.eval()
    try:
        if autocast is not None:
            with autocast():
                model(x)
        else:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rates


# ============================================================================== run folders
def _resume_points(path: Path, seeds: tuple[int, ...]) -> tuple[Path, dict[int, Path | None], int | None]:
    """(run folder, seed -> state file to resume from, seed given explicitly by a file)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--resume {path}: no such file or folder")
    explicit_seed, explicit = None, None
    if path.is_file():
        checkpoint_epoch(path)  # validates the name
        seed_dir = path.parent.parent
        if path.parent.name != "checkpoints" or not seed_dir.name.startswith("seed-"):
            raise ValueError(f"--resume {path}: expected <run>/seed-<s>/checkpoints/state-e<N>.pt")
        explicit_seed, explicit, run_dir = int(seed_dir.name[5:]), path, seed_dir.parent
    elif path.name == "checkpoints":
        run_dir = path.parent.parent
    elif path.name.startswith("seed-") and not (path / "config.json").exists():
        run_dir = path.parent
    else:
        run_dir = path
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"--resume {path}: {run_dir} is not a run folder (no config.json)")
    if explicit_seed is not None and explicit_seed not in seeds:
        raise ValueError(f"--resume {path} is a checkpoint of seed {explicit_seed}, not among --seeds {seeds}")
    points = {s: latest_checkpoint(run_dir / f"seed-{s}" / "checkpoints") for s in seeds}
    if explicit_seed is not None:
        points[explicit_seed] = explicit
    return run_dir, points, explicit_seed


def _environment(accelerator: Accelerator) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"sparsegrad": sparsegrad.__version__, "git_commit": commit, "torch": torch.__version__,
            "accelerate": accelerate.__version__, "timm": timm.__version__, "python": platform.python_version(),
            "device": str(accelerator.device), "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision, "torch_threads": torch.get_num_threads(),
            "argv": sys.argv, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _write_config(accelerator, run_dir: Path, cfg: RecipeConfig, eff: RecipeConfig, resuming: bool,
                  resumed_from: dict) -> None:
    if not accelerator.is_main_process:
        return
    record = {"config": _jsonable(cfg), "effective": _jsonable(eff), "lr": learning_rate(eff),
              "per_process_batch": _per_process_batch(eff, accelerator.num_processes),
              "environment": _environment(accelerator), "resumes": []}
    path = run_dir / "config.json"
    if resuming and path.is_file():
        old = json.loads(path.read_text())
        ignore = {"resume", "out_dir", "smoke"}
        changed = {k: [v, record["effective"].get(k)] for k, v in old.get("effective", {}).items()
                   if k not in ignore and record["effective"].get(k) != v}
        if changed:
            accelerator.print("warning: resuming with a configuration that differs from the run's: "
                              + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        old.setdefault("resumes", []).append({"time": record["environment"]["time"], "argv": sys.argv,
                                              "from": resumed_from, "changed": changed,
                                              "processes": accelerator.num_processes})
        record = old
    write_json(path, record)


# ============================================================================== one seed
def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _two_state(head: TemporalWeightedHead) -> dict:
    return {k: v for k, v in head.state_dict().items() if not k.startswith("model.")}


def _save(accelerator, cfg, folder, epoch, seed, net, head, optimizer, scheduler, msg, history) -> None:
    weights = accelerator.unwrap_model(net).state_dict()
    mine = _to_cpu({"rng": rng_state(), "msg": msg.state_dict() if msg is not None else None,
                    "two": _two_state(head), "weights_sha256": fingerprint(weights),
                    "factors": head.factors.tolist()})
    ranks = gather_object([mine]) if accelerator.num_processes > 1 else [mine]
    if len({r["weights_sha256"] for r in ranks}) > 1 or len({tuple(r["factors"]) for r in ranks}) > 1:
        accelerator.print(f"warning: after epoch {epoch} the processes hold different weights or TWO factors")
    if accelerator.is_main_process:
        state = {"epoch": epoch, "seed": seed, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "ranks": ranks, "history": history,
                 "num_processes": accelerator.num_processes, "config": _jsonable(cfg),
                 "versions": {"sparsegrad": sparsegrad.__version__, "torch": str(torch.__version__)}}
        save_checkpoint(folder, epoch, weights, state, keep=cfg.keep_checkpoints,
                        metadata={"model": cfg.model, "seed": str(seed)})


def _restore(accelerator, path, net, head, optimizer, scheduler, msg) -> tuple[int, list[dict]]:
    weights, state = load_checkpoint(path)
    accelerator.unwrap_model(net).load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    ranks, rank = state["ranks"], accelerator.process_index
    if len(ranks) != accelerator.num_processes:
        accelerator.print(f"warning: the checkpoint was written by {len(ranks)} process(es), resuming on "
                          f"{accelerator.num_processes}: the run continues, but not bit for bit")
    mine = ranks[rank % len(ranks)]
    missing, unexpected = head.load_state_dict(mine["two"], strict=False)
    if unexpected or any(not k.startswith("model.") for k in missing):
        raise RuntimeError(f"TWO state of {path} does not fit: missing {missing}, unexpected {unexpected}")
    if msg is not None:
        if mine["msg"] is None:
            accelerator.print("warning: MSG is on now but was off in the checkpoint; its masks start afresh")
        else:
            msg.load_state_dict(mine["msg"])
    set_rng_state(mine["rng"])  # last: nothing may draw random numbers before training resumes
    return int(state["epoch"]), list(state["history"])


def _tensorboard(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def _steps(values, prefix) -> dict[str, float]:
    return {f"{prefix}{t + 1}": v for t, v in enumerate(values)}


def _train_seed(accelerator: Accelerator, cfg: RecipeConfig, seed: int, seed_dir: Path, train_set, test_set,
                resume_from: Path | None, tag: str) -> dict:
    main = accelerator.is_main_process
    if main:
        seed_dir.mkdir(parents=True, exist_ok=True)
    set_seed(seed, device_specific=True)  # process r draws from seed + r; process 0 as a single process
    net = build_model(cfg, _input_size(cfg, train_set))
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate(cfg), weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    shuffle = torch.Generator()
    train_loader, test_loader = _loaders(cfg, accelerator, train_set, test_set, shuffle)
    raw_test_loader = test_loader  # for the firing-rate batch, outside Accelerate's bookkeeping
    net, optimizer, scheduler, train_loader, test_loader = accelerator.prepare(
        net, optimizer, scheduler, train_loader, test_loader)
    # The head holds no parameters: it wraps the prepared (possibly DDP) network.
    head = TemporalWeightedHead(net, cfg.T, beta=cfg.beta, update_every=cfg.two_update).to(accelerator.device)
    msg = None
    if cfg.msg:
        msg = MaskedGradient(p=cfg.p, rescale=cfg.msg_rescale, granularity=cfg.msg_granularity,
                             seed=1_000_003 * seed + accelerator.process_index).attach(net)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    start, history = 0, []
    if resume_from is not None:
        start, history = _restore(accelerator, resume_from, net, head, optimizer, scheduler, msg)
        accelerator.print(f"{tag}: resumed from {resume_from} (epoch {start})")
    writer = None
    if main and cfg.tensorboard:
        writer = _tensorboard(seed_dir / "tensorboard", purge_step=start + 1 if start else None)
    bar = tqdm(total=cfg.epochs, initial=start, desc=tag, dynamic_ncols=True, disable=not main)
    for epoch in range(start + 1, cfg.epochs + 1):
        shuffle.manual_seed(_epoch_seed(seed, epoch))  # batch order: a function of (seed, epoch)
        before = msg.stats if msg is not None else {"seen": 0, "dropped": 0}
        train = train_one_epoch(accelerator, head, optimizer, train_loader, loss_fn, scheduler=scheduler,
                                msg=msg, two=cfg.two, desc=f"epoch {epoch} train")
        test = evaluate(accelerator, head, test_loader, desc=f"epoch {epoch} eval")
        after = msg.stats if msg is not None else before
        counts = torch.tensor([after["seen"] - before["seen"], after["dropped"] - before["dropped"]],
                              dtype=torch.float64, device=accelerator.device)
        seen, dropped = accelerator.reduce(counts, reduction="sum").tolist()
        best = max([h["test_acc"] for h in history] + [test["acc"]])
        row = {"epoch": epoch, "lr": train["lr"], "train_loss": train["loss"], "train_acc": train["acc"],
               "test_loss": test["loss"], "test_acc": test["acc"], "best_test_acc": best,
               **_steps(test["acc_per_step"], "test_acc_t"), **_steps(head.factors.tolist(), "factor_t"),
               "train_time_s": train["time_s"], "eval_time_s": test["time_s"],
               "epoch_time_s": train["time_s"] + test["time_s"], "msg_p": msg.p if msg is not None else 0.0,
               "msg_seen": int(seen), "msg_dropped": int(dropped),
               "msg_drop_frac": dropped / seen if seen else 0.0}
        history.append(row)
        if main:
            write_csv(seed_dir / "metrics.csv", history)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            bar.update(1)
            bar.write(f"{tag} epoch {epoch}/{cfg.epochs}: train loss {train['loss']:.3f} acc "
                      f"{100 * train['acc']:.2f} | test acc {100 * test['acc']:.2f} (best {100 * best:.2f}) | "
                      f"lr {train['lr']:.3g} | {row['epoch_time_s']:.1f}s")
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
            _save(accelerator, cfg, seed_dir / "checkpoints", epoch, seed, net, head, optimizer, scheduler,
                  msg, history)
    bar.close()
    if writer is not None:
        writer.close()

    result = _seed_result(cfg, seed, history)
    if main:
        x, _ = next(iter(raw_test_loader))
        rates = firing_rates(accelerator.unwrap_model(net), x.to(accelerator.device), accelerator.autocast)
        result["firing_rate"] = rates
        result["msg_stats"] = msg.stats if msg is not None else None
        write_json(seed_dir / "firing_rate.json", rates)
        write_json(seed_dir / "result.json", result)
        if cfg.plots:
            plot_run(seed_dir / "plots", history, rates, title=tag)
    if msg is not None:
        msg.remove()
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return result


def _seed_result(cfg: RecipeConfig, seed: int, history: list[dict]) -> dict:
    last = history[-1]
    best = max(history, key=lambda h: h["test_acc"])
    return {"seed": seed, "epochs": cfg.epochs, "complete": last["epoch"] == cfg.epochs,
            "test_acc": last["test_acc"], "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
            "acc_per_step": [last[f"test_acc_t{t + 1}"] for t in range(cfg.T)],
            "factors": [last[f"factor_t{t + 1}"] for t in range(cfg.T)],
            "time_s": sum(h["epoch_time_s"] for h in history),
            "mean_epoch_time_s": statistics.fmean(h["epoch_time_s"] for h in history)}


def _finished(seed_dir: Path, cfg: RecipeConfig) -> dict | None:
    path = seed_dir / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("complete") and result.get("epochs") == cfg.epochs else None


# ============================================================================== summary
def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: list[dict]) -> dict:
    """Mean and sd over seeds of the final and best test accuracy; mean per-timestep
    accuracy and factors."""
    acc, acc_sd = _mean_sd([r["test_acc"] for r in results])
    best, best_sd = _mean_sd([r["best_test_acc"] for r in results])
    return {"seeds": [r["seed"] for r in results], "test_acc": acc, "test_acc_sd": acc_sd,
            "best_test_acc": best, "best_test_acc_sd": best_sd,
            "acc_per_step": [statistics.fmean(a) for a in zip(*(r["acc_per_step"] for r in results))],
            "factors": [statistics.fmean(f) for f in zip(*(r["factors"] for r in results))],
            "time_s": statistics.fmean(r["time_s"] for r in results)}


def format_table(results: list[dict], summary: dict, paper: str | None = None) -> str:
    """seed | final test acc | best (epoch) | accuracy of each timestep | TWO factors | time."""
    rows = [("seed", "test acc %", "best % (epoch)", "acc % of timestep t = 1..T", "TWO factors t = 1..T", "time")]
    for r in results:
        minutes = r["time_s"] / 60
        rows.append((str(r["seed"]), f"{100 * r['test_acc']:.2f}",
                     f"{100 * r['best_test_acc']:.2f} ({r['best_epoch']})",
                     " ".join(f"{100 * a:.0f}" for a in r["acc_per_step"]),
                     " ".join(f"{f:.3f}".lstrip("0") for f in r["factors"]), f"{minutes:.1f} min"))
    if len(results) > 1:
        rows.append(("mean", f"{100 * summary['test_acc']:.2f} ± {100 * summary['test_acc_sd']:.2f}",
                     f"{100 * summary['best_test_acc']:.2f} ± {100 * summary['best_test_acc_sd']:.2f}",
                     " ".join(f"{100 * a:.0f}" for a in summary["acc_per_step"]),
                     " ".join(f"{f:.3f}".lstrip("0") for f in summary["factors"]),
                     f"{summary['time_s'] / 60:.1f} min"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    if paper:
        lines.append(f"paper: {paper} %")
    return "\n".join(lines)


# ============================================================================== entry points
def run(cfg: RecipeConfig, accelerator: Accelerator | None = None, *, run_dir: Path | None = None) -> Path:
    """Trains ``cfg`` once per seed and writes the run folder (module docstring); returns it.

    Args:
        cfg: the recipe.
        accelerator: an Accelerator built with ``step_scheduler_with_optimizer=False`` and
            ``gradient_accumulation_steps=cfg.grad_accum`` (default: :func:`make_accelerator`).
        run_dir: write into this folder instead of a new timestamped one; if it already
            holds a run, that run is resumed (how :func:`run_variants` continues).

    Returns:
        The run folder (the same path on every process).

    Raises:
        ValueError: an inconsistent configuration (the message names the field).
        FileNotFoundError: missing data (the message gives the expected layout) or a
            ``resume`` path that is not a run folder or checkpoint.
    """
    accelerator = accelerator or make_accelerator(cfg)
    if accelerator.step_scheduler_with_optimizer or accelerator.gradient_accumulation_steps != cfg.grad_accum:
        raise ValueError("run() needs an Accelerator(step_scheduler_with_optimizer=False, "
                         f"gradient_accumulation_steps={cfg.grad_accum}); see make_accelerator")
    eff = effective_config(cfg, accelerator.num_processes)
    _check(eff, accelerator.num_processes)
    resume = eff.resume
    if resume is None and run_dir is not None and (Path(run_dir) / "config.json").is_file():
        resume = Path(run_dir)
    if resume is not None:
        run_dir, points, explicit_seed = _resume_points(resume, eff.seeds)
        if explicit_seed is not None and accelerator.is_main_process:
            _truncate(run_dir / f"seed-{explicit_seed}", points[explicit_seed])
    else:
        points, explicit_seed = {}, None
        if run_dir is None:
            run_dir = create_run_dir(accelerator, eff.out_dir, eff.name + ("-smoke" if eff.smoke else ""))
        elif accelerator.is_main_process:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
    run_dir = Path(run_dir)
    accelerator.wait_for_everyone()
    _write_config(accelerator, run_dir, cfg, eff, resume is not None,
                  {str(s): str(p) for s, p in points.items() if p is not None})

    train_set, test_set = build_datasets(eff, accelerator)
    accelerator.print(
        f"{eff.name}: {eff.model} on {eff.dataset} ({len(train_set)} train / {len(test_set)} test), T={eff.T}, "
        f"MSG {'p=' + str(eff.p) if eff.msg else 'off'}, TWO {'beta=' + str(eff.beta) if eff.two else 'off'}; "
        f"batch {eff.batch_size} ({_per_process_batch(eff, accelerator.num_processes)} x "
        f"{accelerator.num_processes} process(es) x {eff.grad_accum}), lr {learning_rate(eff):.4g}, "
        f"{eff.epochs} epoch(s), seeds {list(eff.seeds)}; {accelerator.device}; run folder {run_dir}"
        + ("\nsmoke run: 1 epoch, 2 optimizer steps, 1 evaluation batch" if eff.smoke else ""))

    results = []
    for seed in eff.seeds:
        seed_dir = run_dir / f"seed-{seed}"
        done = _finished(seed_dir, eff) if seed != explicit_seed else None
        if done is not None:
            accelerator.print(f"seed {seed}: finished earlier, kept")
            results.append(done)
            continue
        results.append(_train_seed(accelerator, eff, seed, seed_dir, train_set, test_set, points.get(seed),
                                   tag=f"{eff.name} seed {seed}"))
    summary = summarise(results)
    table = format_table(results, summary, eff.paper_result)
    accelerator.print(f"\n{table}\n\nrun folder: {run_dir}")
    if accelerator.is_main_process:
        write_json(run_dir / "results.json", {"name": eff.name, "summary": summary, "runs": results,
                                              "table": table, "paper_result": eff.paper_result})
        write_csv(run_dir / "results.csv", [
            {"seed": r["seed"], "test_acc": r["test_acc"], "best_test_acc": r["best_test_acc"],
             "best_epoch": r["best_epoch"], **_steps(r["acc_per_step"], "acc_t"),
             **_steps(r["factors"], "factor_t"), "time_s": r["time_s"]} for r in results])
    accelerator.wait_for_everyone()
    return run_dir


def _truncate(seed_dir: Path, state_path: Path) -> None:
    """Resuming from an older checkpoint: drop the later ones and the seed's result."""
    epoch = checkpoint_epoch(state_path)
    for later in list_checkpoints(seed_dir / "checkpoints"):
        if checkpoint_epoch(later) > epoch:
            weights_path(later).unlink(missing_ok=True)
            later.unlink(missing_ok=True)
    (seed_dir / "result.json").unlink(missing_ok=True)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in label.replace("&", "-")).strip("-").lower()


def run_variants(cfg: RecipeConfig, variants: Mapping[str, Mapping[str, Any]], *, kind: str,
                 accelerator: Accelerator | None = None) -> tuple[Path, list[dict]]:
    """Runs ``cfg`` once per variant (a set of field overrides) in one folder.

    The folder is ``<out-dir>/<kind>-<name>-<time>/`` with one run folder per variant
    (``<folder>/<variant slug>/``, as :func:`run` writes it) and ``variants.json``. With
    ``cfg.resume`` set to such a folder, finished variants are kept and the others resumed.

    Args:
        cfg: the recipe (its ``resume``, if set, is the folder of an earlier call).
        variants: ``{label: {field: value}}``, e.g. ``{"MSG": {"msg": True, "two": False}}``.
        kind: folder prefix (``"ablation"``, ``"sweep_p"``).
        accelerator: as for :func:`run`.

    Returns:
        ``(folder, rows)``; a row is ``{"variant", "overrides", "run_dir", **summary}`` with
        the summary of :func:`summarise`.
    """
    accelerator = accelerator or make_accelerator(cfg)
    if cfg.resume is not None:
        folder = Path(cfg.resume)
        if not (folder / "variants.json").is_file():
            raise FileNotFoundError(f"--resume {folder}: not a {kind} folder (no variants.json)")
    else:
        folder = create_run_dir(accelerator, cfg.out_dir, f"{kind}-{cfg.name}" + ("-smoke" if cfg.smoke else ""))
    rows = []
    for label, overrides in variants.items():
        sub = dataclasses.replace(cfg, **overrides, resume=None, out_dir=folder, name=f"{cfg.name}-{_slug(label)}")
        run_dir = run(sub, accelerator, run_dir=folder / _slug(label))
        summary = json.loads((run_dir / "results.json").read_text())["summary"]
        rows.append({"variant": label, "overrides": dict(overrides), "run_dir": str(run_dir), **summary})
        if accelerator.is_main_process:
            write_json(folder / "variants.json", {"kind": kind, "name": cfg.name, "rows": rows})
    accelerator.wait_for_everyone()
    return folder, rows
