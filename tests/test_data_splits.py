"""Per-class k-fold splits, and image folders as a dataset (bring your own data)."""

from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsegrad.data import NMNIST, kfold_split, load_splits, split_per_class, targets_of

from helpers import write_image_folder


# ----------------------------------------------------------------------------- kfold_split
@st.composite
def targets_and_folds(draw):
    folds = draw(st.integers(2, 6))
    counts = draw(st.lists(st.integers(folds, 20), min_size=1, max_size=5))
    targets = [c for c, n in enumerate(counts) for _ in range(n)]
    return draw(st.permutations(targets)), folds


@settings(max_examples=60, deadline=None)
@given(targets_and_folds())
def test_folds_partition_each_class_into_contiguous_chunks(case):
    targets, folds = case
    tested = []
    for fold in range(folds):
        train, test = kfold_split(targets, folds, fold)
        assert sorted(train + test) == list(range(len(targets))) and not set(train) & set(test)
        assert train == sorted(train) and test == sorted(test)
        for c in set(targets):
            members = [i for i, t in enumerate(targets) if t == c]
            n = len(members)
            assert [i for i in test if targets[i] == c] == members[fold * n // folds:(fold + 1) * n // folds]
        tested += test
    assert sorted(tested) == list(range(len(targets)))  # every sample tests exactly once


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_fold_9_of_10_is_the_9_to_1_split(targets):
    if min(targets.count(c) for c in set(targets)) >= 10:
        assert kfold_split(targets, 10, 9) == split_per_class(targets, 0.9)


def test_kfold_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="--folds must be an integer >= 2, got 1"):
        kfold_split([0, 1], 1, 0)
    with pytest.raises(ValueError, match=r"--fold must be an integer in \[0, 2\] \(one of the 3 folds\), got 3"):
        kfold_split([0, 0, 0], 3, 3)
    with pytest.raises(ValueError, match=r"at least 3 samples per class; class\(es\) \{1: 2\}"):
        kfold_split([0, 0, 0, 1, 1], 3, 0)


# ----------------------------------------------------------------------------- pooled datasets
def test_nmnist_folds_pool_train_and_test_recordings():
    official = NMNIST(None, train=True, T=2).targets + NMNIST(None, train=False, T=2).targets
    tests = []
    for fold in range(4):
        train, test = load_splits("nmnist", None, T=2, folds=4, fold=fold)
        assert len(train) + len(test) == 1100
        assert targets_of(train) + targets_of(test) != [] and sorted(targets_of(train) + targets_of(test)) == sorted(official)
        tests += test.dataset.indices  # indices into the pool: the 1,000 training recordings, then the 100 test ones
    assert sorted(tests) == list(range(1100))
    train, test = load_splits("nmnist", None, T=2, folds=4, fold=3)
    assert test.dataset.indices == kfold_split(official, 4, 3)[1]
    frames, label = test[len(test) - 1]
    assert frames.shape == (2, 2, 34, 34) and label == official[test.dataset.indices[-1]]
    assert torch.equal(frames, NMNIST(None, train=False, T=2)[99][0])  # the pool's last recording tests in fold 3


# ----------------------------------------------------------------------------- image folders
def test_single_image_folder_is_cut_9_to_1_per_class_grayscale(tmp_path):
    root = write_image_folder(tmp_path, {"a": 10, "b": 20}, mode="L", size=(12, 10))
    train, test = load_splits("imagefolder", root)
    assert (len(train), len(test)) == (27, 3)
    assert targets_of(test) == [0, 1, 1] and test.dataset.indices == [9, 28, 29]
    x, y = test[0]
    assert x.shape == (1, 10, 12) and y == 0 and -1 <= x.min() <= x.max() <= 1
    small, _ = load_splits("imagefolder", root, size=8, folds=5, fold=0)
    assert small[0][0].shape == (1, 8, 8) and len(small) == 24


def test_train_and_val_folders_share_class_indices(tmp_path):
    write_image_folder(tmp_path / "train", {"cat": 3, "dog": 3, "eel": 2}, size=(6, 6))
    write_image_folder(tmp_path / "val", {"cat": 1, "eel": 2}, size=(6, 6), seed=1)
    shutil.rmtree(tmp_path / "val" / "cat")
    train, test = load_splits("imagefolder", tmp_path)
    assert targets_of(train) == [0, 0, 0, 1, 1, 1, 2, 2] and targets_of(test) == [2, 2]  # eel is class 2 in both
    assert test[0][0].shape == (3, 6, 6)
    pooled_train, pooled_test = load_splits("imagefolder", tmp_path, folds=2, fold=1)
    assert len(pooled_train) + len(pooled_test) == 10


def test_image_folder_errors_name_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-root .* does not exist"):
        load_splits("imagefolder", tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--data-root .* holds no class folders"):
        load_splits("imagefolder", tmp_path / "empty")
    with pytest.raises(ValueError, match="--data-root is required for imagefolder"):
        load_splits("imagefolder", None)


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_png_is_named_with_its_folder_at_first_read(tmp_path):
    """Issue 17 item 11: PIL's bare ``OSError: image file is truncated`` named no file."""
    root = write_image_folder(tmp_path / "imgs", {"a": 10, "b": 10}, size=(16, 16))
    victim = root / "b" / "3.png"
    _truncate(victim)
    train, test = load_splits("imagefolder", root)
    index = next(i for i, j in enumerate(train.dataset.indices) if train.dataset.dataset.samples[j][0] == str(victim))
    with pytest.raises(ValueError, match=r"b/3\.png: cannot read this image in the image folder .*imgs") as info:
        train[index]
    assert "check_files" in str(info.value)
    assert train[0][0].shape == (3, 16, 16)  # the others still read


def test_check_files_finds_every_unreadable_image_up_front(tmp_path):
    from sparsegrad.data import check_files

    write_image_folder(tmp_path / "train", {"cat": 4, "dog": 4}, size=(8, 8))
    write_image_folder(tmp_path / "val", {"cat": 2, "dog": 2}, size=(8, 8), seed=1)
    bad = [tmp_path / "train" / "cat" / "2.png", tmp_path / "val" / "dog" / "0.png"]
    _truncate(bad[0])
    bad[1].write_text("not a png")
    found = check_files(*load_splits("imagefolder", tmp_path))
    assert sorted(path for path, _ in found) == sorted(bad)
    assert all(str(path) in message for path, message in found)
    assert check_files(*load_splits("imagefolder", write_image_folder(tmp_path / "ok", {"x": 10, "y": 10}))) == []


def test_val_classes_missing_from_train_are_refused_by_name(tmp_path):
    """Issue 17 item 13: their images were dropped silently (3 of 6 test images vanished)."""
    write_image_folder(tmp_path / "train", {"cat": 3, "dog": 3}, size=(6, 6))
    write_image_folder(tmp_path / "val", {"cat": 1, "dog": 2, "eel": 2, "fox": 1}, size=(6, 6), seed=1)
    with pytest.raises(ValueError, match=r"the classes \['eel', 'fox'\] of .*val have no folder in .*train"):
        load_splits("imagefolder", tmp_path)


def test_a_one_class_folder_is_refused(tmp_path):
    """Issue 17 item 13: one class trained to "100 %" without a word."""
    with pytest.raises(ValueError, match=r"holds one class folder \('only'\).*at least two"):
        load_splits("imagefolder", write_image_folder(tmp_path / "one", {"only": 12}))
    write_image_folder(tmp_path / "split" / "train", {"only": 4})
    write_image_folder(tmp_path / "split" / "val", {"only": 2})
    with pytest.raises(ValueError, match="holds one class folder"):
        load_splits("imagefolder", tmp_path / "split")


def test_a_training_class_without_images_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "c").mkdir()
    with pytest.raises(ValueError, match=r"the class folders \['c'\] of .*imgs hold no images"):
        load_splits("imagefolder", root)
