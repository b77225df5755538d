"""CIFAR-100, CIFARNet, T = 4: paper Table 1, 77.48 ± 0.14 % (w/ AutoAugment), 77.41 ± 0.07 % (w/o).

Run:

    python recipes/cifar100_cifarnet.py --data-root /data/cifar
    accelerate launch recipes/cifar100_cifarnet.py --data-root /data/cifar
    python recipes/cifar100_cifarnet.py --data-root /data/cifar --no-autoaugment  # the 'w/o' row
    python recipes/cifar100_cifarnet.py --data-root /data/cifar --smoke           # check the set-up

Data: ``<data-root>/cifar-100-python/`` (the python version, as torchvision downloads it;
``--download`` fetches it). The run folder is described in `sparsegrad.train.runner`.

From the paper: CIFARNet, T = 4, AutoAugment and Cutout, AdamW with initial learning rate 0.05,
cosine decay, 300 epochs, p = 0.5, beta = 0.7, three seeds.

Not in the paper (our choice, docs/design.md §5): batch 128 and the linear scaling rule (lr 6.25e-3),
weight decay 0.01, label smoothing 0.1, the piecewise-linear surrogate.
"""

from sparsegrad.train.cli import main
from sparsegrad.train.paper import RECIPES

CONFIG = RECIPES["cifar100_cifarnet"]
"""This row's defaults (with the paper's numbers); every field is a command-line flag (``--help``)."""

if __name__ == "__main__":
    main(CONFIG, __doc__)
