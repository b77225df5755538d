"""CIFAR10-DVS, spiking ResNet18, T = 10, AtanGrad: paper Table 1, 79.35 ± 0.34 %, and Table 2.

Run:

    accelerate launch recipes/dvs_cifar10_resnet18.py --data-root /data/cifar10dvs
    python recipes/dvs_cifar10_resnet18.py --data-root /data/cifar10dvs
    python recipes/ablation.py dvs_cifar10_resnet18 --data-root /data/cifar10dvs   # Table 2
    python recipes/dvs_cifar10_resnet18.py --data-root /data/cifar10dvs --smoke    # check the set-up

Table 2: none 72.90, w/ TWO 74.40, w/ MSG 78.30, w/ MSG & TWO 79.10 %. Data:
``<data-root>/<class>/*.aedat`` ([CIFAR10DVS][sparsegrad.data.cifar10dvs.CIFAR10DVS]). The run folder is
described in `sparsegrad.train.runner`.

From the paper: ResNet18, T = 10, the arctan surrogate, 9:1 split, p = 0.5, beta = 0.7, 300
epochs, AdamW with initial learning rate 0.05, cosine decay, three seeds.

Not in the paper (our choice): the CIFAR stem on 48x48 frames (an ImageNet stem would shrink them
to 12x12 before the first stage), batch 64 and the scaling rule (lr 3.125e-3), weight decay 0.01,
label smoothing 0.1, and docs/design.md §5's crop / flip / rotation (``--augment False``: the text's "no
augmentation").
"""

from sparsegrad.train.cli import main
from sparsegrad.train.paper import RECIPES

CONFIG = RECIPES["dvs_cifar10_resnet18"]
"""This row's defaults (with the paper's numbers); every field is a command-line flag (``--help``)."""

if __name__ == "__main__":
    main(CONFIG, __doc__)
