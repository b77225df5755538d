"""CIFAR-100, CIFARNet, T = 4: paper Table 1, 77.48 ± 0.14 % (w/ AutoAugment), 77.41 ± 0.07 % (w/o).

Run::

    python recipes/cifar100_cifarnet.py --data-root /data/cifar
    accelerate launch recipes/cifar100_cifarnet.py --data-root /data/cifar
    python recipes/cifar100_cifarnet.py --data-root /data/cifar --no-autoaugment  # the 'w/o' row
    python recipes/cifar100_cifarnet.py --data-root /data/cifar --smoke           # check the set-up

Data: ``<data-root>/cifar-100-python/`` (the python version, as torchvision downloads it;
``--download`` fetches it). The run folder is described in :mod:`sparsegrad.train.recipe`.

From the paper: CIFARNet, T = 4, AutoAugment and Cutout, AdamW with initial learning rate 0.05,
cosine decay, 300 epochs, p = 0.5, beta = 0.7, three seeds.

Not in the paper (our choice, DESIGN §5): batch 128 and the linear scaling rule (lr 6.25e-3),
weight decay 0.01, label smoothing 0.1, the piecewise-linear surrogate.
"""

from __future__ import annotations

from pathlib import Path

import tyro

from sparsegrad.train import RecipeConfig, run

CONFIG = RecipeConfig(
    name="cifar100_cifarnet",
    dataset="cifar100",
    model="spiking_cifarnet",
    T=4,
    batch_size=128,
    surrogate="pl",
    paper_result="77.48 ± 0.14 (w/ AutoAugment); 77.41 ± 0.07 (w/o, --no-autoaugment)",
)
"""This row's defaults; every field is a command-line flag (``--help``)."""


def main(cfg: RecipeConfig = CONFIG) -> Path:
    """Trains the row once per seed; returns the run folder."""
    return run(cfg)


if __name__ == "__main__":
    main(tyro.cli(RecipeConfig, default=CONFIG, description=__doc__))
