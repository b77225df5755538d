"""The command line of the engine and of every recipe: every config field is a ``--flag``.

``python -m sparsegrad.train --dataset imagefolder --data-root DIR --model spiking_resnet18``
runs any combination; ``recipes/<row>.py`` is the same command with the row's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import tyro

from sparsegrad.train.config import RecipeConfig
from sparsegrad.train.runner import run

__all__ = ["VARIANTS_CLI", "RecipeChoice", "main"]


def main(default: RecipeConfig | None = None, description: str | None = None,
         args: Sequence[str] | None = None) -> Path:
    """Parses ``args`` (default: ``sys.argv``) into a [RecipeConfig][sparsegrad.train.config.RecipeConfig]
    starting from ``default``, runs it, and returns the run folder.

    Example:
        ```python
        main(args=["--dataset", "nmnist", "--model", "vggsnn", "--T", "2", "--smoke"])
        ```
    """
    cfg = tyro.cli(RecipeConfig, default=default, description=description, args=args)
    return run(cfg)


def _choices():
    from sparsegrad.train.paper import RECIPES, paper_accuracy

    return tyro.extras.subcommand_type_from_defaults(
        RECIPES, {name: f"{name} (paper: {paper_accuracy(name)} %)" for name in RECIPES}, prefix_names=False)


if TYPE_CHECKING:
    RecipeChoice = RecipeConfig
else:
    RecipeChoice = _choices()
"""A recipe of [RECIPES][sparsegrad.train.paper.RECIPES] by name, then its flags (``ablation.py
dvs_cifar10_vggsnn --data-root ...``)."""

VARIANTS_CLI = (tyro.conf.OmitSubcommandPrefixes, tyro.conf.CascadeSubcommandArgs)
"""tyro markers for runners of variants: ``<script> <recipe> --flags`` with the runner's own flags anywhere."""
