"""CIFAR-10, CIFARNet, T = 4: paper Table 1, 95.40 ± 0.12 % (w/ AutoAugment), 94.30 ± 0.22 % (w/o).

Run:

    python recipes/cifar10_cifarnet.py --data-root /data/cifar
    accelerate launch recipes/cifar10_cifarnet.py --data-root /data/cifar
    python recipes/cifar10_cifarnet.py --data-root /data/cifar --no-autoaugment   # the 'w/o' row
    python recipes/cifar10_cifarnet.py --data-root /data/cifar --smoke            # check the set-up

Data: ``<data-root>/cifar-10-batches-py/`` (the python version, as torchvision downloads it;
``--download`` fetches it). The run folder is described in `sparsegrad.train.runner`.

From the paper: CIFARNet (256C3-256C3-AP2-256C3-256C3-AP2-512C3-512C3-512C3-AP2-1024C3-1024C3-
AP2-FC), T = 4, AutoAugment and Cutout, AdamW with initial learning rate 0.05, cosine decay, 300
epochs, p = 0.5, beta = 0.7, three seeds.

Not in the paper (our choice, docs/design.md §5): batch 128 and the linear scaling rule (lr = 0.05 *
128 / 1024 = 6.25e-3), weight decay 0.01 and label smoothing 0.1, the piecewise-linear surrogate
(the paper names surrogates only for Table 2).
"""

from sparsegrad.train.cli import main
from sparsegrad.train.paper import RECIPES

CONFIG = RECIPES["cifar10_cifarnet"]
"""This row's defaults (with the paper's numbers); every field is a command-line flag (``--help``)."""

if __name__ == "__main__":
    main(CONFIG, __doc__)
