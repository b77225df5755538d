"""The configuration of one experiment, and every check on it, done before anything is written.

[RecipeConfig][sparsegrad.train.config.RecipeConfig] is a dataclass whose fields are the
command-line flags of every recipe and of ``python -m sparsegrad.train``.
[validate][sparsegrad.train.config.validate] rejects a bad value with a message naming the flag
the user typed (``--data-root``, ``--model``, ``--p``), so a failed run leaves no folder.

Reference: docs/design.md §5 (optimiser, recipes) and §6 (engine).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import timm
from torch import nn

from sparsegrad import surrogate
from sparsegrad.data import DATASETS
from sparsegrad.masked import MaskedGradient
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train.defaults import data_defaults

__all__ = ["RecipeConfig", "effective_config", "learning_rate", "per_process_batch", "validate"]

# The choices are the registries' keys, so a dataset or surrogate added there is a flag value here.
DatasetName = Literal[tuple(DATASETS)]
SurrogateName = Literal[tuple(surrogate.NAMES)]
_SMOKE_BATCH = 2  # per process


@dataclass
class RecipeConfig:
    """One experiment: dataset, network, the paper's training recipe, MSG and TWO.

    The defaults are the settings the paper shares across its experiments (§5; docs/design.md §5):
    AdamW at ``0.05 * batch / 1024``, cosine decay per epoch, weight decay 0.01, label
    smoothing 0.1, 300 epochs, p = 0.5, beta = 0.7, three seeds. Each script in ``recipes/``
    sets its row's dataset, network, T and batch size; [RECIPES][sparsegrad.train.paper.RECIPES]
    holds them all. Every field is a command-line flag (``--batch-size``, ``--no-msg``);
    [validate][sparsegrad.train.config.validate] checks them all before anything is written.

    Example:
        ```python
        cfg = RecipeConfig(dataset="nmnist", model="vggsnn", T=4, epochs=2, folds=5, fold=0)
        run(cfg)  # sparsegrad.train.run
        ```
    """

    # ------------------------------------------------------------------ what and where
    name: str = "recipe"
    """Run folder prefix: <out-dir>/<name>-<time> (smoke runs add -smoke)."""
    dataset: DatasetName = "cifar10"
    """Dataset (a key of sparsegrad.data.DATASETS; imagefolder: any --data-root of class folders)."""
    model: str = "spiking_cifarnet"
    """Any timm-registered model (sparsegrad.models.MODEL_NAMES, or one you register) returning
    per-timestep logits [T, B, K]; checked on two test samples before the run starts."""
    data_root: Path | None = None
    """Folder of the dataset (layouts: sparsegrad.data); None: nmnist's embedded subset."""
    download: bool = False
    """Let torchvision / tonic download a missing dataset into --data-root (never ImageNet)."""
    out_dir: Path = Path("runs")
    """Parent folder of the run folder."""
    resume: Path | None = None
    """Continue a run folder (each seed from its newest checkpoint, finished seeds kept), or
    restart one seed from a checkpoint file <run>/seed-<s>/checkpoints/state-e<N>.pt (its
    later checkpoints are deleted). On the command line the run's own configuration is the
    starting point; only what cannot change the result may differ (sparsegrad.train.resume.MUTABLE)."""
    smoke: bool = False
    """Check the set-up in seconds on whatever data is given: 1 epoch, 2 optimizer steps and 1
    evaluation batch, 2 samples per process and step, first seed only, no frame cache."""

    # ------------------------------------------------------------------ optimisation
    epochs: int = 300
    """Training epochs (paper: 300 for every experiment but ImageNet). Resuming with more epochs
    than a run was planned for re-plans the cosine over the new total from the checkpoint on:
    epoch e trains at lr * (1 + cos(pi * (e - 1) / epochs)) / 2; fewer is an error."""
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
    """Surrogate sharpness; None: the surrogate's own, 2.0 for atan and pl."""
    stem: Literal["imagenet", "cifar"] | None = None
    """ResNet stem; None: the model's own. 'cifar' is a 3x3 stride-1 conv without pooling."""
    bn_mode: Literal["merged", "per_step"] = "merged"
    """Batch norm over time and batch ('merged') or per timestep."""
    num_classes: int | None = None
    """Classifier outputs; None: the dataset's classes."""

    # ------------------------------------------------------------------ data
    img_size: int | None = None
    """Event frame side, ImageNet crop (smaller than 224 only for cheap smoke runs) or the side
    imagefolder images are resized to. None: 48 for cifar10dvs / ncaltech101, the sensor's for
    other event data, 224 for ImageNet, the first image's size for imagefolder."""
    autoaugment: bool = True
    """Static data: AutoAugment and Cutout on (Table 1 'w/ AutoAugment') or both off."""
    augment: bool | None = None
    """Event data: crop / flip / rotation; imagefolder: crop / flip. None: on for cifar10dvs and
    ncaltech101 (docs/design.md §5), off otherwise."""
    balanced_sampler: bool = False
    """Draw training samples class-balanced (N-Caltech101)."""
    train_limit: int | None = None
    """Train on a fixed random subset of N samples."""
    eval_limit: int | None = None
    """Evaluate on a fixed random subset of N samples."""
    folds: int | None = None
    """k-fold split: pool the training and test samples, cut each class (in index order) into
    k contiguous chunks; chunk --fold tests, the rest train. None: the dataset's own split (a
    single-split imagefolder: --folds 10 --fold 9)."""
    fold: int = 0
    """The chunk that tests, in [0, folds)."""
    num_workers: int = 4
    """DataLoader workers per process."""
    frame_cache: bool = True
    """Cache event frames on disk."""
    check_data: bool = False
    """Read every file of the data once before training and list each unreadable one (the run
    stops if any is)."""
    cache_dir: Path | None = None
    """Frame cache folder; None: <out-dir>/frame_cache."""

    # ------------------------------------------------------------------ engine and outputs
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    """Autocast precision; None: as accelerate launch / accelerate config say."""
    tensorboard: bool = True
    """Also log the per-epoch scalars to TensorBoard (if installed)."""
    plots: bool = True
    """Draw the figures at the end of each seed."""
    paper_result: str | None = None
    """Top-1 accuracy (%) the paper reports for this row, printed beside ours."""

    def __post_init__(self) -> None:
        # Paths given as str (RecipeConfig(out_dir="runs")) or read back from JSON.
        for field in ("data_root", "out_dir", "resume", "cache_dir"):
            value = getattr(self, field)
            if isinstance(value, (str, os.PathLike)):
                setattr(self, field, Path(value))

    def jsonable(self) -> dict[str, Any]:
        """The fields as JSON values (paths as strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _need(ok: bool, field: str, value: Any, accepted: str) -> None:
    if not ok:
        raise ValueError(f"{_flag(field)} must be {accepted}, got {value!r}")


def _check_numbers(cfg: RecipeConfig) -> None:
    for field in ("epochs", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "T"):
        value = getattr(cfg, field)
        _need(_is_int(value) and value >= 1, field, value, "an integer >= 1")
    for field in ("train_limit", "eval_limit", "img_size", "num_classes"):
        value = getattr(cfg, field)
        _need(value is None or (_is_int(value) and value >= 1), field, value, "an integer >= 1 (or unset)")
    _need(_is_int(cfg.num_workers) and cfg.num_workers >= 0, "num_workers", cfg.num_workers, "an integer >= 0")
    _need(bool(cfg.seeds) and all(_is_int(s) and s >= 0 for s in cfg.seeds) and len(set(cfg.seeds)) == len(cfg.seeds),
          "seeds", cfg.seeds, "one or more distinct integers >= 0")
    _need(_is_real(cfg.base_lr) and cfg.base_lr > 0, "base_lr", cfg.base_lr, "a number > 0")
    _need(cfg.lr is None or (_is_real(cfg.lr) and cfg.lr > 0), "lr", cfg.lr, "a number > 0 (or unset)")
    _need(_is_real(cfg.weight_decay) and cfg.weight_decay >= 0, "weight_decay", cfg.weight_decay, "a number >= 0")
    _need(_is_real(cfg.label_smoothing) and 0 <= cfg.label_smoothing < 1, "label_smoothing", cfg.label_smoothing,
          "a number in [0, 1)")
    _need(cfg.alpha is None or (_is_real(cfg.alpha) and cfg.alpha > 0), "alpha", cfg.alpha, "a number > 0 (or unset)")
    if cfg.folds is None:
        _need(cfg.fold == 0, "fold", cfg.fold, "0 unless --folds is set")
    else:
        _need(_is_int(cfg.folds) and cfg.folds >= 2, "folds", cfg.folds, "an integer >= 2 (or unset)")
        _need(_is_int(cfg.fold) and 0 <= cfg.fold < cfg.folds, "fold", cfg.fold, f"an integer in [0, {cfg.folds})")


def _check_method(cfg: RecipeConfig) -> None:
    """``p``, ``beta`` and the variants' modes through MSG's and TWO's own validators."""
    for flags, build in (("--p, --msg-rescale, --msg-granularity",
                          lambda: MaskedGradient(p=cfg.p, rescale=cfg.msg_rescale, granularity=cfg.msg_granularity,
                                                 seed=0)),
                         ("--beta, --two-update", lambda: TemporalWeightedHead(nn.Identity(), cfg.T, beta=cfg.beta,
                                                                               update_every=cfg.two_update))):
        try:
            build()
        except ValueError as err:
            raise ValueError(f"{flags}: {err}") from None


def _check_names(cfg: RecipeConfig, model: bool) -> None:
    _need(isinstance(cfg.name, str) and cfg.name.strip() != "" and "/" not in cfg.name, "name", cfg.name,
          "a non-empty folder name without '/'")
    if cfg.dataset not in DATASETS:
        raise ValueError(f"--dataset {cfg.dataset!r} is not known; choose one of {tuple(DATASETS)}")
    if cfg.surrogate not in surrogate.NAMES:
        raise ValueError(f"--surrogate {cfg.surrogate!r} is not known; choose one of {tuple(surrogate.NAMES)}")
    if model and not (isinstance(cfg.model, str) and timm.is_model(cfg.model)):
        raise ValueError(f"--model {cfg.model!r} is not a registered timm model; register yours with "
                         "@timm.models.register_model (sparsegrad's: sparsegrad.models.MODEL_NAMES), "
                         "or pass the built module: run(cfg, model=...)")
    if cfg.dataset in ("cifar10", "cifar100") and cfg.img_size not in (None, 32):
        raise ValueError(f"--img-size {cfg.img_size}: CIFAR images are 32x32 (leave --img-size unset)")


def _check_paths(cfg: RecipeConfig, data: bool) -> None:
    if cfg.resume is not None and not Path(cfg.resume).expanduser().exists():
        raise FileNotFoundError(f"--resume {cfg.resume}: no such file or folder")
    if not data:
        return
    spec = DATASETS[cfg.dataset]
    if cfg.download and cfg.dataset in ("imagenet", "imagefolder"):
        raise ValueError(f"--download: {cfg.dataset} cannot be downloaded; point --data-root at a local copy")
    if cfg.data_root is None:
        if spec.needs_root:
            raise ValueError(f"--data-root is required for {cfg.dataset} (only nmnist has embedded data)")
    elif not Path(cfg.data_root).expanduser().exists() and not cfg.download:
        raise FileNotFoundError(f"--data-root {cfg.data_root} does not exist"
                                + ("" if cfg.dataset == "imagefolder" else " (add --download to fetch the data)"))


def per_process_batch(cfg: RecipeConfig, num_processes: int) -> int:
    """``batch_size`` split over processes and accumulation steps.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``num_processes * grad_accum``.
    """
    split = num_processes * cfg.grad_accum
    if cfg.batch_size % split:
        raise ValueError(
            f"--batch-size {cfg.batch_size} (global, per optimizer step) must be a multiple of "
            f"processes x grad_accum = {num_processes} x {cfg.grad_accum}"
        )
    return cfg.batch_size // split


def validate(cfg: RecipeConfig, num_processes: int = 1, *, data: bool = True, model: bool = True) -> RecipeConfig:
    """Checks every field of ``cfg``; returns it unchanged.

    Args:
        cfg: the configuration.
        num_processes: processes the global batch is split over.
        data: also check ``--dataset`` / ``--data-root`` / ``--download`` (``False`` when the
            caller brings its own datasets).
        model: also check that ``--model`` is a registered timm model (``False`` when the
            caller brings a built one).

    Raises:
        ValueError: a value out of range (``p`` and ``beta`` by MSG's and TWO's own checks), an
            unknown dataset, surrogate or model, a batch that does not split over processes;
            the message names the flag (``--p``, ``--model``).
        FileNotFoundError: ``--data-root`` or ``--resume`` does not exist.
    """
    _check_numbers(cfg)
    _check_method(cfg)
    _check_names(cfg, model)
    _check_paths(cfg, data)
    per_process_batch(cfg, num_processes)
    return cfg


def effective_config(cfg: RecipeConfig, num_processes: int = 1) -> RecipeConfig:
    """``cfg`` as it will run: the data's defaults ([data_defaults][sparsegrad.train.defaults.data_defaults]),
    and ``smoke`` shrinks it to a few steps (see the field's help)."""
    cfg = data_defaults(cfg, num_processes)
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
    """``cfg.lr``, or the paper's rule ``base_lr * batch_size / 1024`` (docs/design.md §5)."""
    return cfg.lr if cfg.lr is not None else cfg.base_lr * cfg.batch_size / 1024
