"""The data-dependent defaults (issue 18): seeds, batch, augmentation fields, workers; and the
embedded MNIST image folder they are checked on."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pytest

from sparsegrad.train import RecipeConfig
from sparsegrad.train.config import effective_config
from sparsegrad.train.defaults import MIN_STEPS, data_defaults, steps_warning, suggest_batch

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist_small"


def test_embedded_mnist_pngs_match_sha256sums():
    lines = (MNIST / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 500
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((MNIST / name).read_bytes()).hexdigest() == digest, name
    assert sorted(p.name for p in MNIST.iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    assert all(len(list((MNIST / str(d)).glob("*.png"))) == 50 for d in range(10))


def test_image_folder_gets_one_seed_and_enough_steps():
    cfg = effective_config(RecipeConfig(dataset="imagefolder", data_root=MNIST, model="spiking_resnet18"))
    # A single split tests the last tenth of each class: 450 training images.
    assert cfg.seeds == (0,)
    assert math.ceil(450 / cfg.batch_size) >= MIN_STEPS
    assert cfg.batch_size == 8  # the largest power of two with >= 50 steps (16 gives 29)
    assert cfg.autoaugment is None  # AutoAugment does nothing to an image folder
    assert cfg.num_workers <= len(os.sched_getaffinity(0))


def test_asked_values_are_kept_and_a_small_batch_count_is_named():
    cfg = RecipeConfig(dataset="imagefolder", data_root=MNIST, model="spiking_resnet18", seeds=(3, 4),
                       batch_size=64, folds=5, fold=1)
    with pytest.warns(UserWarning, match=r"--batch-size 64 gives 7 optimizer step\(s\) per epoch on 400 "
                                         r"training samples.*--batch-size 8 gives 50"):
        out = data_defaults(cfg)
    assert (out.seeds, out.batch_size) == ((3, 4), 64)


def test_paper_datasets_keep_the_paper_defaults_but_drop_fields_that_do_nothing(tmp_path):
    cifar = data_defaults(RecipeConfig(dataset="cifar10", data_root=tmp_path, augment=True))
    assert (cifar.seeds, cifar.batch_size, cifar.autoaugment, cifar.augment) == ((0, 1, 2), 128, True, None)
    dvs = data_defaults(RecipeConfig(dataset="nmnist"))
    assert (dvs.seeds, dvs.autoaugment, dvs.augment) == ((0, 1, 2), None, None)


def test_workers_are_capped_at_the_cores_of_this_process():
    cores = len(os.sched_getaffinity(0))
    assert data_defaults(RecipeConfig(dataset="nmnist", num_workers=cores + 3)).num_workers == cores
    assert data_defaults(RecipeConfig(dataset="nmnist", num_workers=0)).num_workers == 0


@pytest.mark.parametrize("num, split, want", [(450, 1, 8), (10_000, 1, 128), (51_200, 1, 1024), (100, 1, 8),
                                               (450, 3, 6), (450, 16, 16)])
def test_suggested_batch(num, split, want):
    assert suggest_batch(num, split) == want
    assert want % split == 0


def test_no_warning_with_enough_steps():
    assert steps_warning(8, 450) is None
    assert "more data or more epochs" in steps_warning(8, 100)
