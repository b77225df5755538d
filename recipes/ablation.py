"""Table 2: the ablation of MSG and TWO on any recipe or data — none, w/ TWO, w/ MSG, w/ MSG & TWO.

Run (a recipe's name, or ``any`` for any dataset and model, then the flags):

    python recipes/ablation.py any --dataset imagefolder --data-root DIR --model spiking_resnet18 --T 4
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs
    accelerate launch recipes/ablation.py cifar100_resnet18 --data-root /data/cifar
    python recipes/ablation.py dvs_cifar10_resnet18 --data-root /data/cifar10dvs --variants none 'MSG&TWO'
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --smoke
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs \\
        --resume runs/ablation-dvs_cifar10_vggsnn-<time>    # finished variants are kept

Each variant is a full run of the recipe (every seed) with ``--msg`` / ``--two`` set, in
``<out-dir>/ablation-<label>-<time>/<variant>/``, where the label is the recipe's name when the run
is that paper row (its dataset and network), else ``<dataset>_<model>``. The table
(test accuracy mean ± sd over seeds, best accuracy, accuracy of each timestep, TWO factors, time,
and Table 2's number when the run is one of its rows) is printed and written beside them as
``table.txt``, ``ablation.csv``, ``ablation.json`` and ``ablation.png``. Table 2's rows are
``cifar100_resnet18`` (AtanGrad), ``dvs_cifar10_resnet18`` (AtanGrad) and ``dvs_cifar10_vggsnn``
(PLGrad). The recipes and numbers live in ``sparsegrad.train.paper``. For the paired statistics
(intervals, p-values) on any data, use ``python -m sparsegrad.study``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from sparsegrad.train import RecipeConfig, run_variants
from sparsegrad.train.cli import VARIANTS_CLI
from sparsegrad.train.paper import ABLATION, RECIPES, TABLE2, paper_accuracy, paper_row, run_label
from sparsegrad.train.plots import plot_variants
from sparsegrad.train.report import format_table, write_variant_records
from sparsegrad.train.runner import make_accelerator

Variant = Literal[tuple(ABLATION)]
Choice = tyro.extras.subcommand_type_from_defaults(
    {"any": RecipeConfig(name="ablation"), **RECIPES},
    {"any": "any dataset and model (every flag of python -m sparsegrad.train)",
     **{name: f"{name} (paper: {paper_accuracy(name)} %)" for name in RECIPES}}, prefix_names=False)


@dataclass
class Ablation:
    """Table 2: none / w/ TWO / w/ MSG / w/ MSG & TWO on one recipe."""

    recipe: Choice
    """``any`` or a recipe, with its flags after it (``--resume`` takes an ablation folder)."""
    variants: tuple[Variant, ...] = tuple(ABLATION)
    """Variants to run, in order (quote 'MSG&TWO' in a shell)."""


def main(ablation: Ablation) -> Path:
    """Runs every variant of the recipe, prints and writes the table; returns the folder."""
    row = paper_row(ablation.recipe)
    cfg = dataclasses.replace(ablation.recipe, name=run_label(ablation.recipe),
                              paper_result=ablation.recipe.paper_result if row else None)
    accelerator = make_accelerator(cfg)
    folder, rows = run_variants(cfg, {v: ABLATION[v] for v in ablation.variants}, kind="ablation",
                                accelerator=accelerator)
    paper = TABLE2.get(row) if row else None
    for r in rows:
        r["paper"] = paper.get(r["variant"]) if paper else None
    table = format_table(rows, "variant", paper)
    what = f"{cfg.model} on {cfg.dataset}"
    head = f"Table 2 for {row} ({what})" if paper else f"Ablation of MSG and TWO, {what}"
    accelerator.print(f"\n{head}, {len(rows[0]['seeds'])} seed(s) per variant\n{table}\n\nablation folder: {folder}")
    if accelerator.is_main_process:
        write_variant_records(folder, "ablation", cfg.name, rows, table,
                              ("variant", "test_acc", "test_acc_sd", "best_test_acc", "paper", "run_dir"))
        plot_variants(rows, folder / "ablation.png",
                      title=f"Ablation of MSG and TWO: {what}" + (f" (Table 2, {row})" if paper else ""))
    accelerator.wait_for_everyone()
    return folder


if __name__ == "__main__":
    main(tyro.cli(Ablation, config=VARIANTS_CLI, description=__doc__))
