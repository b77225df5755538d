"""Table 2: the ablation of MSG and TWO on any recipe — none, w/ TWO, w/ MSG, w/ MSG & TWO.

Run (the recipe's name, then any of its flags):

    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs
    accelerate launch recipes/ablation.py cifar100_resnet18 --data-root /data/cifar
    python recipes/ablation.py dvs_cifar10_resnet18 --data-root /data/cifar10dvs --variants none 'MSG&TWO'
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --smoke
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs \\
        --resume runs/ablation-dvs_cifar10_vggsnn-<time>    # finished variants are kept

Each variant is a full run of the recipe (every seed) with ``--msg`` / ``--two`` set, in
``<out-dir>/ablation-<recipe>-<time>/<variant>/``. The table (test accuracy mean ± sd over seeds,
best accuracy, accuracy of each timestep, TWO factors, time, and Table 2's number where the paper
has one) is printed and written beside them as ``table.txt``, ``ablation.csv``, ``ablation.json``
and ``ablation.png``. Table 2's rows are ``cifar100_resnet18`` (AtanGrad), ``dvs_cifar10_resnet18``
(AtanGrad) and ``dvs_cifar10_vggsnn`` (PLGrad); the other recipes run the same ablation without a
paper column. The recipes and numbers live in ``sparsegrad.train.paper``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from sparsegrad.train import run_variants
from sparsegrad.train.cli import VARIANTS_CLI, RecipeChoice
from sparsegrad.train.paper import ABLATION, TABLE2
from sparsegrad.train.plots import plot_variants
from sparsegrad.train.report import format_table, write_variant_records
from sparsegrad.train.runner import make_accelerator

Variant = Literal[tuple(ABLATION)]


@dataclass
class Ablation:
    """Table 2: none / w/ TWO / w/ MSG / w/ MSG & TWO on one recipe."""

    recipe: RecipeChoice
    """The recipe, with its flags after its name (``--resume`` takes an ablation folder)."""
    variants: tuple[Variant, ...] = tuple(ABLATION)
    """Variants to run, in order (quote 'MSG&TWO' in a shell)."""


def main(ablation: Ablation) -> Path:
    """Runs every variant of the recipe, prints and writes the table; returns the folder."""
    cfg = ablation.recipe
    accelerator = make_accelerator(cfg)
    folder, rows = run_variants(cfg, {v: ABLATION[v] for v in ablation.variants}, kind="ablation",
                                accelerator=accelerator)
    paper = TABLE2.get(cfg.name, {})
    for row in rows:
        row["paper"] = paper.get(row["variant"])
    table = format_table(rows, "variant", paper)
    accelerator.print(f"\nTable 2 for {cfg.name} ({len(rows[0]['seeds'])} seed(s) per variant)\n{table}\n\n"
                      f"ablation folder: {folder}")
    if accelerator.is_main_process:
        write_variant_records(folder, "ablation", cfg.name, rows, table,
                              ("variant", "test_acc", "test_acc_sd", "best_test_acc", "paper", "run_dir"))
        plot_variants(rows, folder / "ablation.png", title=f"Table 2: {cfg.name}")
    accelerator.wait_for_everyone()
    return folder


if __name__ == "__main__":
    main(tyro.cli(Ablation, config=VARIANTS_CLI, description=__doc__))
