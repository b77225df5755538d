"""Fig. 5: test accuracy against the MSG drop probability p, for any recipe.

Run (the recipe's name, then any of its flags):

    python recipes/sweep_p.py dvs_cifar10_resnet18 --data-root /data/cifar10dvs --surrogate atan
    python recipes/sweep_p.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --surrogate atan
    python recipes/sweep_p.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs            # PLGrad
    accelerate launch recipes/sweep_p.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --ps 0.3 0.5 0.7
    python recipes/sweep_p.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --smoke --ps 0 0.5

Fig. 5's three panels are (A) ResNet18 with the arctan surrogate, (B) VGGNet with arctan and
(C) VGGNet with the piecewise-linear surrogate, all on CIFAR10-DVS. Each p is a full run of the
recipe (every seed) with MSG on at that p, in ``<out-dir>/sweep_p-<recipe>-<time>/p<p>/``; TWO
stays as the recipe sets it (``--no-two`` for MSG alone: the paper does not say which). p = 0 is
plain surrogate training, bit for bit. The table is printed and written as ``table.txt``,
``sweep.csv``, ``sweep.json``, and the curve (mean ± sd over seeds) as ``sweep_p.png``.
``--resume <sweep folder>`` keeps finished values of p and resumes the others.

The paper does not list its values of p; the default grid is 0, 0.1, ..., 0.9 (p = 1 drops every
surrogate gradient and cannot learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from sparsegrad.train import run_variants
from sparsegrad.train.cli import VARIANTS_CLI, RecipeChoice
from sparsegrad.train.plots import plot_sweep
from sparsegrad.train.report import format_table, write_variant_records
from sparsegrad.train.runner import make_accelerator


@dataclass
class Sweep:
    """Fig. 5: accuracy against the mask probability p."""

    recipe: RecipeChoice
    """The recipe, with its flags after its name (``--resume`` takes a sweep folder)."""
    ps: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    """Drop probabilities to train with."""


def main(sweep: Sweep) -> Path:
    """Trains the recipe at every p, prints and writes the table and the plot; returns the folder."""
    cfg = sweep.recipe
    if not sweep.ps or any(not 0 <= p <= 1 for p in sweep.ps) or len(set(sweep.ps)) != len(sweep.ps):
        raise ValueError(f"--ps must be distinct values in [0, 1], got {sweep.ps}")
    accelerator = make_accelerator(cfg)
    variants = {f"p{p:g}": {"p": float(p), "msg": True} for p in sweep.ps}
    folder, rows = run_variants(cfg, variants, kind="sweep_p", accelerator=accelerator)
    for row in rows:
        row["p"] = row["overrides"]["p"]
    table = format_table(rows, "p")
    accelerator.print(f"\nFig. 5 for {cfg.name} (surrogate {cfg.surrogate}, TWO {'on' if cfg.two else 'off'})\n"
                      f"{table}\n\nsweep folder: {folder}")
    if accelerator.is_main_process:
        write_variant_records(folder, "sweep", cfg.name, rows, table,
                              ("p", "test_acc", "test_acc_sd", "best_test_acc", "run_dir"))
        plot_sweep(rows, folder / "sweep_p.png",
                   title=f"{cfg.name}, {cfg.surrogate} surrogate: accuracy vs p (Fig. 5)")
    accelerator.wait_for_everyone()
    return folder


if __name__ == "__main__":
    main(tyro.cli(Sweep, config=VARIANTS_CLI, description=__doc__))
