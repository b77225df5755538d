"""Static image pipelines on the embedded real CIFAR-10 JPEGs (data/cifar10_small/test/<class>/*.jpg)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision import transforms as T

from sparsegrad.data import Cutout, build_dataset, build_static, static
from sparsegrad.data.static import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, static_transform

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar_jpegs(sample_data) -> Path:
    folder = sample_data / "cifar10_small" / "test"
    assert sorted(p.name for p in folder.iterdir()) == CLASSES
    return folder


def test_embedded_jpegs_match_sha256sums(sample_data):
    root = sample_data / "cifar10_small"
    lines = (root / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 2000  # 200 images for each of the 10 classes
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture
def imagenet_root(tmp_path, cifar_jpegs) -> Path:
    """An ImageNet-style root (train/ and val/ ImageFolders) over the CIFAR-10 JPEGs."""
    for split in ("train", "val"):
        (tmp_path / split).symlink_to(cifar_jpegs, target_is_directory=True)
    return tmp_path


# ----------------------------------------------------------------------------- Cutout


def zero_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def test_cutout_zeroes_exactly_a_16x16_square():
    img = torch.ones(3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    inside = 0
    for _ in range(300):
        state = gen.get_state()
        out = Cutout(16, generator=gen)(img)
        top, left, bottom, right = Cutout.get_params(32, 32, 16, torch.Generator().set_state(state))
        holes = out == 0
        assert torch.equal(holes[0], holes[1]) and torch.equal(
            holes[0], holes[2]
        )  # same hole per channel
        expected = torch.zeros(32, 32, dtype=torch.bool)
        expected[top:bottom, left:right] = True
        assert torch.equal(holes[0], expected)  # a rectangle: the square clipped at the border
        assert bottom - top <= 16 and right - left <= 16
        if bottom - top == 16 and right - left == 16:
            inside += 1
            assert int(holes[0].sum()) == 256 and zero_box(holes[0]) == (top, left, bottom, right)
        assert torch.equal(out[~holes], img[~holes])  # nothing else changes
    # a centre drawn uniformly over 32 px keeps the 16-px square inside for 17 of 32 positions
    assert 0.15 < inside / 300 < 0.45
    assert torch.equal(img, torch.ones(3, 32, 32))  # the input is not modified


def test_cutout_square_clipped_at_border_and_options(monkeypatch):
    centre = iter([0, 31])  # row 0, column 31: rows 0..7 and columns 23..31, an 8 x 9 patch
    monkeypatch.setattr(
        torch, "randint", lambda high, size, generator=None: torch.tensor([next(centre)])
    )
    out = Cutout(16)(torch.ones(3, 32, 32))
    assert zero_box(out[0] == 0) == (0, 23, 8, 32) and int((out == 0).sum()) == 3 * 8 * 9
    monkeypatch.undo()
    assert torch.equal(Cutout(16, holes=0)(torch.ones(3, 32, 32)), torch.ones(3, 32, 32))
    out = Cutout(4, holes=2, value=-7.0, generator=torch.Generator().manual_seed(3))(
        torch.ones(1, 8, 8)
    )
    assert (out == -7.0).any() and ((out == -7.0) | (out == 1.0)).all()
    with pytest.raises(TypeError, match="after ToTensor"):
        Cutout()(object())
    with pytest.raises(ValueError):
        Cutout(size=0)


def test_cutout_hole_position_covers_the_border():
    gen = torch.Generator().manual_seed(1)
    tops = {Cutout.get_params(32, 32, 16, gen)[0] for _ in range(2000)}
    assert 0 in tops and max(tops) == 31 - 8  # centre rows 0..31, square starts at centre - 8


# ----------------------------------------------------------------------------- transforms


def test_cifar_train_transform_is_the_papers():
    steps = static_transform("cifar10", train=True).transforms
    assert [type(s) for s in steps] == [
        T.RandomCrop,
        T.RandomHorizontalFlip,
        T.AutoAugment,
        T.ToTensor,
        T.Normalize,
        Cutout,
    ]
    assert steps[0].size == (32, 32) and steps[0].padding == 4
    assert steps[2].policy == T.AutoAugmentPolicy.CIFAR10
    assert tuple(steps[4].mean) == CIFAR10_MEAN and tuple(steps[4].std) == CIFAR10_STD
    assert steps[5].size == 16 and steps[5].holes == 1
    assert [type(s) for s in static_transform("cifar100", train=False).transforms] == [
        T.ToTensor,
        T.Normalize,
    ]
    assert Cutout not in [
        type(s) for s in static_transform("cifar10", True, cutout=None).transforms
    ]


def test_imagenet_transforms_are_the_papers():
    train = static_transform("imagenet", train=True).transforms
    assert [type(s) for s in train] == [
        T.RandomResizedCrop,
        T.RandomHorizontalFlip,
        T.ToTensor,
        T.Normalize,
        Cutout,
    ]
    assert train[0].size == (224, 224)
    evaluation = static_transform("imagenet", train=False).transforms
    assert [type(s) for s in evaluation] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert evaluation[0].size == 256 and evaluation[1].size == (224, 224)
    assert tuple(evaluation[3].mean) == IMAGENET_MEAN


def test_cifar_transforms_on_real_jpegs(cifar_jpegs):
    evaluation = datasets.ImageFolder(
        str(cifar_jpegs), transform=static_transform("cifar10", train=False)
    )
    assert evaluation.classes == CLASSES and len(evaluation) == 2000
    x = torch.stack([evaluation[i][0] for i in range(0, 2000, 5)])  # 400 images, 40 per class
    assert x.shape == (400, 3, 32, 32) and x.dtype == torch.float32
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert (mean.abs() < 0.15).all() and ((std - 1).abs() < 0.1).all()  # normalised roughly

    torch.manual_seed(0)
    train = datasets.ImageFolder(
        str(cifar_jpegs), transform=static_transform("cifar10", train=True)
    )
    for i in (0, 777, 1999):
        img, label = train[i]
        assert img.shape == (3, 32, 32) and label == i // 200
        assert (img == 0).all(0).sum() >= 64  # the Cutout hole (at least a clipped 8x8 corner)


def test_imagenet_style_imagefolder_pipeline(imagenet_root):
    val = build_static("imagenet", imagenet_root, train=False)
    train = build_static("imagenet", imagenet_root, train=True)
    assert isinstance(val, datasets.ImageFolder) and val.classes == CLASSES and len(train) == 2000
    image, label = val[1234]
    assert image.shape == (3, 224, 224) and label == 6
    x = torch.stack([val[i][0] for i in range(0, 2000, 100)])
    assert x.mean().abs() < 0.4 and 0.7 < x.std() < 1.4  # CIFAR under ImageNet statistics
    batch, labels = next(iter(DataLoader(Subset(train, range(0, 2000, 500)), batch_size=4)))
    assert batch.shape == (4, 3, 224, 224) and labels.tolist() == [0, 2, 5, 7]
    routed = build_dataset("imagenet", imagenet_root, train=False, T=4)
    assert isinstance(routed, datasets.ImageFolder) and len(routed) == 2000


# ----------------------------------------------------------------------------- errors, downloads


@pytest.mark.parametrize(
    ("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_missing_cifar_says_where_and_does_not_download(tmp_path, monkeypatch, name, folder):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets.utils, "download_url", refuse)
    with pytest.raises(FileNotFoundError, match=rf"{folder}.*download=True"):
        build_static(name, tmp_path / "nothing", train=True)


def test_download_true_is_torchvisions(tmp_path, monkeypatch):
    calls = []

    class Recorder:
        def __init__(self, root, train, transform, download):
            calls.append((root, train, download))

    monkeypatch.setitem(static._CIFAR, "cifar10", (Recorder, *static._CIFAR["cifar10"][1:]))
    build_static("cifar10", tmp_path, train=False, download=True)
    assert calls == [(str(tmp_path), False, True)]


def test_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)val.*<root>/train/<class>/\*\.JPEG"):
        build_static("imagenet", tmp_path, train=False)
    with pytest.raises(ValueError, match=r"image-net\.org"):
        build_static("imagenet", tmp_path, train=True, download=True)
    with pytest.raises(ValueError, match="unknown static dataset"):
        build_static("svhn", tmp_path, train=True)
