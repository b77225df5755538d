"""The paper's experiments in one place: a recipe per row, and its Table 1 and Table 2 numbers.

[RECIPES][sparsegrad.train.paper.RECIPES] maps a row's name to its
[RecipeConfig][sparsegrad.train.config.RecipeConfig] (the script ``recipes/<name>.py`` runs it);
[TABLE1][sparsegrad.train.paper.TABLE1] and [TABLE2][sparsegrad.train.paper.TABLE2] hold the
accuracies the paper reports, [ABLATION][sparsegrad.train.paper.ABLATION] Table 2's variants.

Shared by every row (the paper, and our choices where it is silent, docs/design.md §5): AdamW at
``0.05 * batch / 1024``, cosine decay, weight decay 0.01, label smoothing 0.1, 300 epochs,
p = 0.5, beta = 0.7, three seeds; T = 4 for static and 10 for neuromorphic data; AtanGrad for
ResNet18 and PLGrad for the VGG-style networks (Table 2).
"""

from __future__ import annotations

from pathlib import Path

from sparsegrad.train.config import RecipeConfig

__all__ = ["ABLATION", "RECIPES", "TABLE1", "TABLE2", "paper_accuracy", "paper_row", "run_label"]

TABLE1: dict[str, str] = {
    "cifar10_cifarnet": "95.40 ± 0.12 (w/ AutoAugment); 94.30 ± 0.22 (w/o, --no-autoaugment)",
    "cifar100_cifarnet": "77.48 ± 0.14 (w/ AutoAugment); 77.41 ± 0.07 (w/o, --no-autoaugment)",
    "dvs_cifar10_vggsnn": "83.97 ± 0.12",
    "dvs_cifar10_resnet18": "79.35 ± 0.34",
    "ncaltech101_vggsnn": "77.70 ± 0.15",
    "ncaltech101_resnet18": "70.81 ± 0.31",
    "imagenet_sew34": "67.46",
}
"""Top-1 test accuracy (%) in the paper's Table 1, per row."""

TABLE2: dict[str, dict[str, float]] = {
    "cifar100_resnet18": {"none": 68.79, "TWO": 68.98, "MSG": 69.08, "MSG&TWO": 69.21},
    "dvs_cifar10_resnet18": {"none": 72.90, "TWO": 74.40, "MSG": 78.30, "MSG&TWO": 79.10},
    "dvs_cifar10_vggsnn": {"none": 82.70, "TWO": 83.20, "MSG": 83.30, "MSG&TWO": 83.90},
}
"""Test accuracy (%) in the paper's Table 2 (the ablation), per row and variant."""

ABLATION: dict[str, dict[str, bool]] = {
    "none": {"msg": False, "two": False},
    "TWO": {"msg": False, "two": True},
    "MSG": {"msg": True, "two": False},
    "MSG&TWO": {"msg": True, "two": True},
}
"""Table 2's variants as field overrides."""

_ROWS: dict[str, dict] = {
    "cifar10_cifarnet": dict(dataset="cifar10", model="spiking_cifarnet", T=4, batch_size=128, surrogate="pl"),
    "cifar100_cifarnet": dict(dataset="cifar100", model="spiking_cifarnet", T=4, batch_size=128, surrogate="pl"),
    "cifar100_resnet18": dict(dataset="cifar100", model="spiking_resnet18", stem="cifar", T=4, batch_size=128,
                              surrogate="atan"),
    "dvs_cifar10_vggsnn": dict(dataset="cifar10dvs", model="vggsnn", T=10, batch_size=64, surrogate="pl"),
    "dvs_cifar10_resnet18": dict(dataset="cifar10dvs", model="spiking_resnet18", stem="cifar", T=10,
                                 batch_size=64, surrogate="atan"),
    "ncaltech101_vggsnn": dict(dataset="ncaltech101", model="vggsnn", T=10, batch_size=64, surrogate="pl",
                               balanced_sampler=True),
    "ncaltech101_resnet18": dict(dataset="ncaltech101", model="spiking_resnet18", stem="cifar", T=10,
                                 batch_size=64, surrogate="atan", balanced_sampler=True),
    "imagenet_sew34": dict(dataset="imagenet", model="sew_resnet34", T=4, epochs=100, batch_size=256,
                           surrogate="pl", seeds=(0,), num_workers=8),
}


def paper_accuracy(name: str) -> str | None:
    """What the paper reports for row ``name``: Table 1's entry, else Table 2's MSG & TWO."""
    if name in TABLE1:
        return TABLE1[name]
    if name in TABLE2:
        return f"{TABLE2[name]['MSG&TWO']:.2f} (Table 2, w/ MSG & TWO)"
    return None


RECIPES: dict[str, RecipeConfig] = {
    name: RecipeConfig(name=name, paper_result=paper_accuracy(name), **fields) for name, fields in _ROWS.items()
}
"""Every row of Tables 1-2 as a configuration (the defaults of ``recipes/<name>.py``)."""

_ROW_FIELDS = ("dataset", "model")


def paper_row(cfg: RecipeConfig) -> str | None:
    """The name of the paper's row ``cfg`` runs: ``cfg.name`` when it is a row of
    [RECIPES][sparsegrad.train.paper.RECIPES] and ``cfg`` keeps its dataset and network (other
    flags, such as a smaller ``T``, are deviations of that row); else ``None`` (a recipe pointed
    at other data or another network is no paper row)."""
    row = RECIPES.get(cfg.name)
    if row is None or any(getattr(cfg, f) != getattr(row, f) for f in _ROW_FIELDS):
        return None
    return cfg.name


def run_label(cfg: RecipeConfig) -> str:
    """How folders and figures name a run: its paper row, else ``<dataset>_<model>``
    (with the folder's name for an image folder: ``imagefolder-pets_spiking_resnet18``)."""
    row = paper_row(cfg)
    if row is not None:
        return row
    data = cfg.dataset + (f"-{Path(cfg.data_root).name}" if cfg.dataset == "imagefolder" and cfg.data_root else "")
    return f"{data}_{cfg.model}"
