"""CIFAR-100, spiking ResNet18, T = 4, AtanGrad: paper Table 2 (w/ MSG & TWO 69.21 %).

Run:

    python recipes/cifar100_resnet18.py --data-root /data/cifar
    accelerate launch recipes/cifar100_resnet18.py --data-root /data/cifar
    python recipes/ablation.py cifar100_resnet18 --data-root /data/cifar   # all four rows of Table 2
    python recipes/cifar100_resnet18.py --data-root /data/cifar --smoke    # check the set-up

Table 2: none 68.79, w/ TWO 68.98, w/ MSG 69.08, w/ MSG & TWO 69.21 %. Data:
``<data-root>/cifar-100-python/``. The run folder is described in `sparsegrad.train.runner`.

From the paper: ResNet18, T = 4, the arctan surrogate, p = 0.5, 300 epochs, AdamW with initial
learning rate 0.05, cosine decay.

Not in the paper (our choice): the CIFAR stem (a 3x3 stride-1 convolution without pooling, the
usual ResNet18 for 32x32 images), batch 128 and the scaling rule (lr 6.25e-3), AutoAugment and
Cutout (the paper's CIFAR setting; Table 2 does not say), weight decay 0.01, label smoothing 0.1.
"""

from sparsegrad.train.cli import main
from sparsegrad.train.paper import RECIPES

CONFIG = RECIPES["cifar100_resnet18"]
"""This row's defaults (with the paper's numbers); every field is a command-line flag (``--help``)."""

if __name__ == "__main__":
    main(CONFIG, __doc__)
