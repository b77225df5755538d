"""Table 2: the ablation of MSG and TWO on any recipe — none, w/ TWO, w/ MSG, w/ MSG & TWO.

Run (the recipe's name, then any of its flags)::

    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs
    accelerate launch recipes/ablation.py cifar100_resnet18 --data-root /data/cifar
    python recipes/ablation.py dvs_cifar10_resnet18 --data-root /data/cifar10dvs --variants none 'MSG&TWO'
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs --smoke
    python recipes/ablation.py dvs_cifar10_vggsnn --data-root /data/cifar10dvs \\
        --resume runs/ablation-dvs_cifar10_vggsnn-<time>    # finished variants are kept

Each variant is a full run of the recipe (every seed) with ``--msg`` / ``--two`` set, in
``<out-dir>/ablation-<recipe>-<time>/<variant>/``. The table (test accuracy mean ± sd over seeds,
best accuracy, accuracy of each timestep, TWO factors, and Table 2's number where the paper has
one) is printed and written beside them as ``table.txt``, ``ablation.csv``, ``ablation.json`` and
``ablation.png``. Table 2's rows are ``cifar100_resnet18`` (AtanGrad), ``dvs_cifar10_resnet18``
(AtanGrad) and ``dvs_cifar10_vggsnn`` (PLGrad); the other recipes run the same ablation without a
paper column.

The recipes are imported from this script's folder (the first entry of ``sys.path`` when a
script runs).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from sparsegrad.train import RecipeConfig, run_variants, write_csv, write_json
from sparsegrad.train.plots import plot_variants
from sparsegrad.train.recipe import make_accelerator

RECIPES = (
    "cifar10_cifarnet",
    "cifar100_cifarnet",
    "cifar100_resnet18",
    "dvs_cifar10_vggsnn",
    "dvs_cifar10_resnet18",
    "ncaltech101_vggsnn",
    "ncaltech101_resnet18",
    "imagenet_sew34",
)
"""The recipe scripts beside this one, one per row of Table 1 (and Table 2)."""

Variant = Literal["none", "TWO", "MSG", "MSG&TWO"]
VARIANTS: dict[str, dict[str, bool]] = {
    "none": {"msg": False, "two": False},
    "TWO": {"msg": False, "two": True},
    "MSG": {"msg": True, "two": False},
    "MSG&TWO": {"msg": True, "two": True},
}
"""Table 2's rows as field overrides."""

PAPER_TABLE2: dict[str, dict[str, float]] = {
    "cifar100_resnet18": {"none": 68.79, "TWO": 68.98, "MSG": 69.08, "MSG&TWO": 69.21},
    "dvs_cifar10_resnet18": {"none": 72.90, "TWO": 74.40, "MSG": 78.30, "MSG&TWO": 79.10},
    "dvs_cifar10_vggsnn": {"none": 82.70, "TWO": 83.20, "MSG": 83.30, "MSG&TWO": 83.90},
}
"""Test accuracy (%) in the paper's Table 2."""


def recipe_configs() -> dict[str, RecipeConfig]:
    """``{recipe name: its CONFIG}`` for every script in :data:`RECIPES`."""
    return {name: importlib.import_module(name).CONFIG for name in RECIPES}


def _first_line(name: str) -> str:
    doc = importlib.import_module(name).__doc__ or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


if TYPE_CHECKING:
    RecipeChoice = RecipeConfig
else:
    RecipeChoice = tyro.extras.subcommand_type_from_defaults(
        recipe_configs(), {name: _first_line(name) for name in RECIPES}, prefix_names=False)

CLI_CONFIG = (tyro.conf.OmitSubcommandPrefixes, tyro.conf.CascadeSubcommandArgs)
"""tyro markers: ``ablation.py <recipe> --flags`` with the ablation's own flags anywhere."""


@dataclass
class Ablation:
    """Table 2: none / w/ TWO / w/ MSG / w/ MSG & TWO on one recipe."""

    recipe: RecipeChoice
    """The recipe, with its flags after its name (``--resume`` takes an ablation folder)."""
    variants: tuple[Variant, ...] = tuple(VARIANTS)
    """Variants to run, in order (quote 'MSG&TWO' in a shell)."""


def format_table(rows: list[dict], paper: dict[str, float]) -> str:
    """variant | test acc (mean ± sd) | best | accuracy of each timestep | TWO factors | paper."""
    head = ("variant", "test acc %", "best acc %", "acc % of timestep t = 1..T", "TWO factors t = 1..T", "paper %")
    lines = [head]
    for r in rows:
        lines.append((
            r["variant"], f"{100 * r['test_acc']:.2f} ± {100 * r['test_acc_sd']:.2f}",
            f"{100 * r['best_test_acc']:.2f} ± {100 * r['best_test_acc_sd']:.2f}",
            " ".join(f"{100 * a:.0f}" for a in r["acc_per_step"]),
            " ".join(f"{f:.3f}".lstrip("0") for f in r["factors"]),
            f"{paper[r['variant']]:.2f}" if r["variant"] in paper else "-",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [" | ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def main(ablation: Ablation) -> Path:
    """Runs every variant of the recipe, prints and writes the table; returns the folder."""
    cfg = ablation.recipe
    accelerator = make_accelerator(cfg)
    folder, rows = run_variants(cfg, {v: VARIANTS[v] for v in ablation.variants}, kind="ablation",
                                accelerator=accelerator)
    paper = PAPER_TABLE2.get(cfg.name, {})
    for row in rows:
        row["paper"] = paper.get(row["variant"])
    table = format_table(rows, paper)
    accelerator.print(f"\nTable 2 for {cfg.name} ({len(rows[0]['seeds'])} seed(s) per variant)\n{table}\n\n"
                      f"ablation folder: {folder}")
    if accelerator.is_main_process:
        (folder / "table.txt").write_text(table + "\n", encoding="utf-8")
        write_json(folder / "ablation.json", {"recipe": cfg.name, "rows": rows, "table": table})
        write_csv(folder / "ablation.csv", [
            {"variant": r["variant"], "test_acc": r["test_acc"], "test_acc_sd": r["test_acc_sd"],
             "best_test_acc": r["best_test_acc"], "paper": r["paper"], "run_dir": r["run_dir"]} for r in rows])
        plot_variants(rows, folder / "ablation.png", title=f"Table 2: {cfg.name}")
    accelerator.wait_for_everyone()
    return folder


if __name__ == "__main__":
    main(tyro.cli(Ablation, config=CLI_CONFIG, description=__doc__))
