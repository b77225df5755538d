"""N-MNIST demo: a small spiking CNN trained with plain surrogate gradients, TWO, MSG and both.

The README's main command. It trains the registered timm model ``spiking_convnet_s``
(conv-BN-LIF-pool x 2, a linear readout per timestep) on the 1,000 embedded N-MNIST training
recordings and tests on the 100 embedded test recordings, four variants on the same engine as
every recipe (same initial weights and batches per seed): ``SG`` (plain surrogate gradients,
output ``mean_t I_L[t]``), ``+TWO`` (Eq. 15-17), ``+MSG`` (Eq. 10-14), ``+MSG&TWO`` (the paper's
method). It prints one table (test accuracy, accuracy of each timestep alone, final TWO
factors, time per variant) and says where the figures are: per variant the curves, per-timestep
accuracy, TWO factors (Fig. 3), firing rates (Fig. 6a) and time per epoch (Fig. 6b), and one
bar chart of the variants.

Run:

    python recipes/nmnist_demo.py                            # about 10 minutes on 2 idle CPU cores
    python recipes/nmnist_demo.py --variants SG '+MSG&TWO' --epochs 4 --limit 200
    accelerate launch recipes/nmnist_demo.py --seeds 0 1 2    # --batch-size is global, as everywhere

Deviations from the paper's recipe (docs/design.md §5), for a run of minutes on a CPU: 8 epochs
and a two-conv network. The rest is the paper's: AdamW at ``0.05 * batch / 1024`` (1.56e-3 at
batch 32), cosine decay, weight decay 0.01, label smoothing 0.1, p = 0.5, beta = 0.7, T = 10.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from sparsegrad.train import RecipeConfig, run_variants
from sparsegrad.train.paper import ABLATION
from sparsegrad.train.plots import plot_variants
from sparsegrad.train.report import format_table, write_variant_records
from sparsegrad.train.runner import make_accelerator

CONFIG = RecipeConfig(name="nmnist_demo", dataset="nmnist", model="spiking_convnet_s", T=10, epochs=8,
                      batch_size=32, seeds=(0,), num_workers=0, frame_cache=False)
"""The demo's defaults; every field is a flag (``--epochs``, ``--batch-size``, ``--p``, ...)."""

VARIANTS: dict[str, dict[str, bool]] = {"SG" if name == "none" else f"+{name}": overrides
                                        for name, overrides in ABLATION.items()}
"""Table 2's variants under the demo's labels: SG (plain surrogate gradients), +TWO, +MSG, +MSG&TWO."""
Variant = Literal[tuple(VARIANTS)]


@dataclass
class Demo:
    """Train a spiking CNN on the embedded N-MNIST subset with and without MSG and TWO."""

    recipe: Annotated[RecipeConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=lambda: CONFIG)
    variants: tuple[Variant, ...] = tuple(VARIANTS)
    """Variants to train, in order (quote '+MSG&TWO' in a shell)."""
    limit: int | None = None
    """Train and test on fixed subsets of N recordings each (quick checks)."""


def main(demo: Demo | None = None) -> Path:
    """Runs the variants, prints the table and where the figures are; returns the folder."""
    demo = demo or Demo()
    cfg = demo.recipe
    if demo.limit is not None:
        cfg = dataclasses.replace(cfg, train_limit=demo.limit, eval_limit=demo.limit)
    accelerator = make_accelerator(cfg)
    folder, rows = run_variants(cfg, {v: VARIANTS[v] for v in demo.variants}, kind="", accelerator=accelerator)
    table = format_table(rows, "variant")
    if accelerator.is_main_process:
        write_variant_records(folder, "results", cfg.name, rows, table,
                              ("variant", "test_acc", "test_acc_sd", "best_test_acc", "time_s", "run_dir"))
        plot_variants(rows, folder / "variants.png", title="N-MNIST demo")
    accelerator.print(f"\n{table}\n\nresults in {folder}\nfigures: {folder}/variants.png and, per variant, "
                      f"{folder}/<variant>/seed-<s>/plots/ (curves, acc_per_timestep, two_factors, firing_rate, "
                      "epoch_time .png)")
    paper = [r["run_dir"] for r in rows if r["variant"] == "+MSG&TWO"]
    if paper and accelerator.is_main_process and importlib.util.find_spec("nir") is not None:
        from sparsegrad.nir.run import main as export_nir  # the +MSG&TWO network as a NIR graph

        export_nir([str(paper[0]), "--out", str(folder / "model.nir")])
    return folder


if __name__ == "__main__":
    main(tyro.cli(Demo, description=__doc__))
