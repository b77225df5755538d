"""ImageNet, SEW-ResNet34, T = 4: paper Table 1, 67.46 %.

Run:

    accelerate launch recipes/imagenet_sew34.py --data-root /data/imagenet
    python recipes/imagenet_sew34.py --data-root /data/imagenet --smoke --img-size 64   # check the set-up

Data: ``<data-root>/train/<wnid>/*.JPEG`` and ``<data-root>/val/<wnid>/*.JPEG`` (ImageFolder; sort
the validation images into class folders first). The run folder is described in
`sparsegrad.train.runner`.

From the paper: SEW-ResNet34, T = 4, AdamW with initial learning rate 0.05, cosine decay, p = 0.5,
beta = 0.7; the paper trains every other row for 300 epochs and gives no number for ImageNet.

Not in the paper (our choice): 100 epochs; one seed (Table 1 gives no sd for ImageNet; ``--seeds
0 1 2`` for three); batch 256 and the scaling rule (lr 0.0125); RandomResizedCrop(224), flip and
Cutout for training, Resize(256) + CenterCrop(224) for evaluation (docs/design.md §5); ADD connections;
the piecewise-linear surrogate; weight decay 0.01, label smoothing 0.1; 8 loader workers per
process. ``--img-size`` shrinks the crops and departs from the paper: it is there to make smoke
runs cheap on a CPU.
"""

from sparsegrad.train.cli import main
from sparsegrad.train.paper import RECIPES

CONFIG = RECIPES["imagenet_sew34"]
"""This row's defaults (with the paper's numbers); every field is a command-line flag (``--help``)."""

if __name__ == "__main__":
    main(CONFIG, __doc__)
