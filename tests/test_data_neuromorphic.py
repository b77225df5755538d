"""Event datasets end to end: framing, frame cache, splits, and each dataset's native file format.

Every loader reads real files: the N-MNIST recordings the project ships, and small files written
here in each dataset's native format (AEDAT 2.0 / 3.1 for CIFAR10-DVS, ATIS .bin for
N-Caltech101, tonic's .npy layout for DVS128 Gesture) and read back through tonic's readers.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, WeightedRandomSampler

from sparsegrad.data import (
    CIFAR10DVS,
    DATASETS,
    NMNIST,
    DVSGesture,
    NCaltech101,
    build_dataset,
    class_balanced_sampler,
    default_root,
    event_augmentation,
    events_to_frames,
    resize_frames,
    split_per_class,
)
from sparsegrad.data.cifar10dvs import CLASSES as CIFAR_CLASSES
from sparsegrad.data.cifar10dvs import read_cifar10dvs
from sparsegrad.data.frame_cache import frame_cache_path
from sparsegrad.data.frames import EVENT_DTYPE
from sparsegrad.data.splits import natural_key

from helpers import make_events, write_aedat2, write_aedat31, write_atis_bin, write_gesture_npy

NMNIST_ROOT = default_root()


# ----------------------------------------------------------------------------- native formats


# A recording with x != y, both polarities and distinct times so a swapped axis or bin shows.
XS, YS, TS, PS = [3, 100, 127, 0], [5, 60, 0, 127], [1000, 1400, 1700, 2000], [1, 0, 1, 0]


def expected_frames(T, shape, xs=XS, ys=YS, ts=TS, ps=PS) -> torch.Tensor:
    """Frames by the documented rule: windows of span // T + 1 µs from the first event."""
    out = torch.zeros(T, *shape)
    window = (max(ts) - min(ts)) // T + 1
    for x, y, t, p in zip(xs, ys, ts, ps, strict=True):
        out[(t - min(ts)) // window, int(p > 0), y, x] += 1
    return out


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    """CIFAR10-DVS root: 10 classes x 12 AEDAT 2.0 recordings named cifar10_<class>_<i>.aedat,
    i = 0..11, so plain sorting (…_1, …_10, …_11, …_2) and natural sorting disagree."""
    root = tmp_path / "cifar10dvs"
    for c, name in enumerate(CIFAR_CLASSES):
        for i in range(12):
            # recording i of class c: two events that encode (c, i) in their coordinates
            write_aedat2(
                root / name / f"cifar10_{name}_{i}.aedat",
                xs=[c, 20 + i],
                ys=[i, 40 + c],
                ts=[0, 100 + i],
                ps=[1, 0],
            )
    return root


# ----------------------------------------------------------------------------- events_to_frames


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 9), st.integers(0, 6), st.integers(0, 5_000), st.sampled_from([0, 1])
        ),
        min_size=1,
        max_size=60,
    ),
    T=st.integers(1, 12),
    signed=st.booleans(),
)
def test_every_event_lands_in_one_of_T_frames(data, T, signed):
    xs, ys, ts, ps = (list(c) for c in zip(*data, strict=True))
    if signed:
        ps = [2 * p - 1 for p in ps]  # -1 / 1 coding
    frames = events_to_frames(make_events(xs, ys, ts, ps), T, (10, 7, 2))
    assert frames.shape == (T, 2, 7, 10) and frames.dtype == np.int32
    assert frames.sum() == len(xs)
    assert np.array_equal(frames, expected_frames(T, (2, 7, 10), xs, ys, ts, ps).numpy())


def test_one_event_gives_T_frames():
    frames = events_to_frames(make_events([2], [3], [123_456], [1]), 7, (34, 34, 2))
    assert frames.shape == (7, 2, 34, 34)
    assert frames.sum() == 1 and frames[0, 1, 3, 2] == 1


def test_recording_shorter_than_T_microseconds():
    # span 3 µs < T = 10: windows of 1 µs; all events land, frames 4..9 are empty
    frames = events_to_frames(
        make_events([0, 1, 2, 3], [0, 0, 0, 0], [50, 51, 51, 53], [0, 1, 1, 0]), 10, (4, 1, 2)
    )
    assert frames.shape == (10, 2, 1, 4) and frames.sum() == 4
    assert frames[:, :, 0, :].sum(axis=(1, 2)).tolist() == [1, 2, 0, 1, 0, 0, 0, 0, 0, 0]


def test_unsorted_events_frame_like_sorted_ones():
    events = make_events(XS, YS, TS, PS)
    shuffled = events[[2, 0, 3, 1]]
    assert np.array_equal(
        events_to_frames(shuffled, 3, (128, 128, 2)), events_to_frames(events, 3, (128, 128, 2))
    )


def test_empty_recording_gives_T_empty_frames():
    frames = events_to_frames(make_events([], [], [], []), 4, (5, 6, 2))
    assert frames.shape == (4, 2, 6, 5) and frames.sum() == 0


@pytest.mark.parametrize("index", [0, 499])
def test_framing_equals_tonic_with_explicit_windows(index):
    # tonic's own framing with the windows we choose gives the same frames (no overflow here)
    events = tonic.io.read_mnist_file(
        str(NMNIST_ROOT / "train" / f"{index + 1}.bin"), dtype=EVENT_DTYPE
    )
    T = 9
    t0, span = int(events["t"][0]), int(events["t"][-1] - events["t"][0])
    window = span // T + 1
    theirs = tonic.functional.to_frame_numpy(
        events, sensor_size=(34, 34, 2), time_window=window, start_time=t0, end_time=t0 + T * window
    )
    ours = events_to_frames(events, T, (34, 34, 2))
    assert np.array_equal(ours, theirs) and ours.sum() == len(events)


def test_polarity_coded_plus_minus_one_or_zero_one_or_bool():
    frames01 = events_to_frames(make_events(XS, YS, TS, [1, 0, 1, 0]), 4, (128, 128, 2))
    frames_pm = events_to_frames(make_events(XS, YS, TS, [1, -1, 1, -1]), 4, (128, 128, 2))
    assert np.array_equal(frames01, frames_pm)
    assert (
        frames_pm[:, 0, 60, 100].sum() == 1 and frames_pm[:, 1, 60, 100].sum() == 0
    )  # -1 -> channel 0
    events = np.zeros(4, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    events["x"], events["y"], events["t"], events["p"] = XS, YS, TS, [True, False, True, False]
    assert np.array_equal(events_to_frames(events, 4, (128, 128, 2)), frames01)


@pytest.mark.parametrize("ps", [[0, 2, 1, 0], [-1, 0, 1, 1]], ids=["value-2", "three-values"])
def test_polarity_coding_neither_01_nor_pm1_is_rejected(ps):
    with pytest.raises(ValueError, match=r"rec\.bin: polarities must be coded 0/1 or -1/1"):
        events_to_frames(make_events(XS, YS, TS, ps), 4, (128, 128, 2), source="rec.bin")


@pytest.mark.parametrize(("x", "y"), [(128, 5), (3, 200), (-1, 5)])
def test_coordinates_outside_sensor_name_the_file(x, y):
    with pytest.raises(
        ValueError, match=rf"sample_7\.aedat: 1 events lie outside the 128x128 sensor.*x={x}, y={y}"
    ):
        events_to_frames(
            make_events([1, x], [1, y], [0, 5], [0, 1]),
            3,
            (128, 128, 2),
            source="dir/sample_7.aedat",
        )


def test_counts_do_not_overflow_the_frame_dtype():
    # 70,000 events on one pixel in one bin: int16 (tonic's frame dtype) wraps at 32,767
    n = 70_000
    events = make_events(
        np.full(n, 5), np.full(n, 9), np.zeros(n, dtype=int), np.ones(n, dtype=int)
    )
    frames = events_to_frames(events, 3, (34, 34, 2))
    assert frames.dtype == np.int32 and frames[0, 1, 9, 5] == n and frames.sum() == n
    wrapped = tonic.functional.to_frame_numpy(
        events, (34, 34, 2), time_window=1, start_time=0, end_time=1
    )
    assert wrapped.dtype == np.int16 and wrapped[0, 1, 9, 5] == n - 65_536  # the bug avoided
    # the dataset's float32 output holds the exact count too
    assert torch.from_numpy(frames).float()[0, 1, 9, 5].item() == n


def test_non_integer_timestamps_are_rejected():
    events = np.zeros(2, dtype=[("x", int), ("y", int), ("t", float), ("p", int)])
    events["t"] = [0.0, 1.5]
    with pytest.raises(ValueError, match="integer microseconds"):
        events_to_frames(events, 2, (2, 2, 2))


@pytest.mark.parametrize("T", [0, -1, 2.0, True])
def test_bad_T_is_rejected(T):
    with pytest.raises(ValueError, match="T must be"):
        events_to_frames(make_events(XS, YS, TS, PS), T, (128, 128, 2))


def test_resize_frames_is_bilinear_per_frame():
    frames = torch.arange(3 * 2 * 128 * 128, dtype=torch.float32).reshape(3, 2, 128, 128)
    out = resize_frames(frames, 48)
    assert out.shape == (3, 2, 48, 48) and out.dtype == torch.float32
    ref = torch.nn.functional.interpolate(
        frames[1:2], size=(48, 48), mode="bilinear", align_corners=False
    )
    assert torch.equal(out[1:2], ref)  # frame t is resized on its own: T acts as the batch
    assert torch.equal(
        resize_frames(torch.full((2, 2, 10, 10), 3.0), (4, 6)), torch.full((2, 2, 4, 6), 3.0)
    )


# ----------------------------------------------------------------------------- splits, sampler


def test_natural_key_orders_indices_numerically():
    names = ["c_10.aedat", "c_2.aedat", "c_1.aedat", "c_11.aedat", "c_0.aedat"]
    assert sorted(names, key=natural_key) == [
        "c_0.aedat",
        "c_1.aedat",
        "c_2.aedat",
        "c_10.aedat",
        "c_11.aedat",
    ]


@pytest.mark.parametrize(
    ("n", "n_train"), [(1000, 900), (10, 9), (31, 27), (800, 720), (12, 10), (1, 0)]
)
def test_split_per_class_counts(n, n_train):
    targets = [0] * n + [1] * 20
    train, test = split_per_class(targets)
    assert [i for i in train if targets[i] == 0] == list(range(n_train))  # the first 90 %
    assert len([i for i in test if targets[i] == 0]) == n - n_train
    assert not set(train) & set(test) and sorted(train + test) == list(range(len(targets)))


def test_split_per_class_interleaved_classes_and_determinism():
    targets = [i % 3 for i in range(60)]  # classes interleaved, 20 each
    train, test = split_per_class(targets)
    assert split_per_class(targets) == (train, test)
    assert collections.Counter(targets[i] for i in test) == {0: 2, 1: 2, 2: 2}
    assert test == [54, 55, 56, 57, 58, 59]  # the last two of each class
    with pytest.raises(ValueError, match="train_fraction"):
        split_per_class(targets, 1.0)


def test_class_balanced_sampler_weights_and_draws():
    targets = [0] * 90 + [1] * 9 + [2] * 1
    sampler = class_balanced_sampler(
        targets, num_samples=30_000, generator=torch.Generator().manual_seed(0)
    )
    assert isinstance(sampler, WeightedRandomSampler) and sampler.replacement
    assert torch.allclose(
        sampler.weights[[0, 90, 99]], torch.tensor([1 / 90, 1 / 9, 1.0], dtype=torch.double)
    )
    drawn = collections.Counter(targets[i] for i in sampler)
    assert all(abs(drawn[c] / 30_000 - 1 / 3) < 0.02 for c in range(3))
    assert len(class_balanced_sampler(targets)) == len(targets)


# ----------------------------------------------------------------------------- CIFAR10-DVS


def test_cifar10dvs_aedat2_frames_exact(tmp_path):
    root = tmp_path / "c"
    for name in CIFAR_CLASSES:
        write_aedat2(root / name / "cifar10_x_0.aedat", XS, YS, TS, PS)
    ds = CIFAR10DVS(root, train=False, T=4, size=None, train_fraction=0.5)
    # one file per class: floor(0.5 * 1) = 0 train, so the test split holds all ten
    assert len(ds) == 10 and ds.targets == list(range(10))
    frames, label = ds[3]
    assert label == 3 and frames.dtype == torch.float32
    assert torch.equal(frames, expected_frames(4, (2, 128, 128)))


def test_cifar10dvs_aedat31_reads_like_aedat2(tmp_path):
    a = read_cifar10dvs(write_aedat2(tmp_path / "a.aedat", XS, YS, TS, PS))
    b = read_cifar10dvs(write_aedat31(tmp_path / "b.aedat", XS, YS, TS, PS))
    assert np.array_equal(a, b)
    assert (
        a["x"].tolist() == XS
        and a["y"].tolist() == YS
        and a["t"].tolist() == TS
        and a["p"].tolist() == PS
    )


def test_cifar10dvs_split_is_9_to_1_per_class_in_index_order(cifar_root):
    train = CIFAR10DVS(cifar_root, train=True, T=3)
    test = CIFAR10DVS(cifar_root, train=False, T=3)
    assert len(train) == 100 and len(test) == 20  # floor(0.9 * 12) = 10 per class
    assert collections.Counter(train.targets) == {c: 10 for c in range(10)}
    assert collections.Counter(test.targets) == {c: 2 for c in range(10)}
    assert not set(train.files) & set(test.files)
    # natural order: recordings 10 and 11 test (plain sorting would have put 8 and 9 there)
    assert sorted({f.stem.rsplit("_", 1)[1] for f in test.files}) == ["10", "11"]
    # the label follows the folder: recording i of class c has events at (x=c, y=i), (20+i, 40+c)
    frames, label = CIFAR10DVS(cifar_root, train=False, T=3, size=None)[5]
    assert label == 2 and test.files[5].name == "cifar10_bird_11.aedat"
    assert frames[0, 1, 11, 2] == 1 and frames[2, 0, 42, 31] == 1 and frames.sum() == 2


def test_cifar10dvs_sample_shape_and_dataloader(cifar_root):
    ds = CIFAR10DVS(cifar_root, train=True, T=5)
    frames, label = ds[0]
    assert frames.shape == (5, 2, 48, 48) and frames.dtype == torch.float32 and label == 0
    batch, labels = next(iter(DataLoader(ds, batch_size=6, shuffle=False)))
    assert batch.shape == (6, 5, 2, 48, 48) and labels.tolist() == [0] * 6
    native = CIFAR10DVS(cifar_root, train=True, T=5, size=None)[0][0]
    assert native.sum() == 2 and torch.allclose(frames, resize_frames(native, 48))


def test_cifar10dvs_errors_name_files_and_layout(tmp_path, cifar_root):
    with pytest.raises(FileNotFoundError, match=r"(?s)no_such.*\.aedat.*airplane"):
        CIFAR10DVS(tmp_path / "no_such")
    shutil.rmtree(cifar_root / "frog")
    with pytest.raises(FileNotFoundError, match=r"frog.*missing"):
        CIFAR10DVS(cifar_root)

    bad = tmp_path / "bad"
    good = write_aedat2(bad / "g.aedat", XS, YS, TS, PS).read_bytes()
    (bad / "truncated.aedat").write_bytes(good[:-3])
    with pytest.raises(ValueError, match=r"truncated\.aedat: truncated"):
        read_cifar10dvs(bad / "truncated.aedat")
    (bad / "text.aedat").write_bytes(b"hello\n")
    with pytest.raises(ValueError, match=r"text\.aedat: not an AEDAT file"):
        read_cifar10dvs(bad / "text.aedat")
    short31 = write_aedat31(bad / "s31.aedat", XS, YS, TS, PS)
    short31.write_bytes(short31.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"s31\.aedat: truncated"):
        read_cifar10dvs(short31)
    outside = write_aedat31(
        bad / "outside.aedat", [3, 300], [4, 5], [0, 9], [0, 1]
    )  # 3.1 allows x > 127
    with pytest.raises(
        ValueError, match=r"outside\.aedat: 1 events lie outside the 128x128 sensor"
    ):
        events_to_frames(read_cifar10dvs(outside), 2, (128, 128, 2), source=outside)


def test_cifar10dvs_corrupt_recording_is_named_on_access(cifar_root):
    victim = cifar_root / "cat" / "cifar10_cat_4.aedat"
    victim.write_bytes(victim.read_bytes()[:-1])
    ds = CIFAR10DVS(cifar_root, train=True, T=3)  # opening is cheap, files are read on access
    with pytest.raises(ValueError, match=r"cifar10_cat_4\.aedat: truncated"):
        ds[ds.files.index(victim)]


def test_cifar10dvs_aedat4_needs_the_aedat_package(tmp_path):
    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\nnot really")
    try:
        import aedat  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"x\.aedat4.*pip install aedat"):
            read_cifar10dvs(path)
    else:
        with pytest.raises(ValueError, match=r"x\.aedat4"):
            read_cifar10dvs(path)


def test_cifar10dvs_augmentation_is_identical_across_frames(cifar_root):
    torch.manual_seed(0)
    aug = event_augmentation(48)
    frame = torch.rand(1, 2, 48, 48)
    out = aug(frame.repeat(6, 1, 1, 1))
    assert out.shape == (6, 2, 48, 48) and all(torch.equal(out[0], out[t]) for t in range(6))
    ds = build_dataset("cifar10dvs", cifar_root, train=True, T=4)
    assert ds.transform is not None and ds[0][0].shape == (4, 2, 48, 48)
    assert build_dataset("cifar10dvs", cifar_root, train=False, T=4).transform is None


# ----------------------------------------------------------------------------- frame cache


def test_cache_key_holds_every_framing_parameter(cifar_root, tmp_path):
    cache = tmp_path / "cache"
    base = CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=cache)
    variants = [
        CIFAR10DVS(cifar_root, train=True, T=5, cache_dir=cache),
        CIFAR10DVS(cifar_root, train=True, T=4, size=32, cache_dir=cache),
        CIFAR10DVS(cifar_root, train=True, T=4, size=None, cache_dir=cache),
        CIFAR10DVS(cifar_root, train=False, T=4, cache_dir=cache),
        CIFAR10DVS(cifar_root, train=True, T=4, train_fraction=0.5, cache_dir=cache),
    ]
    paths = {base.cache_path, *(v.cache_path for v in variants)}
    assert len(paths) == 6 and all(p.parent == cache for p in paths)
    assert base.cache_path.name.startswith("cifar10dvs-train-T4-48x48-")
    assert CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=cache).cache_path == base.cache_path
    assert (base.cache_path / "params.json").is_file()
    params = base.cache_params()
    assert frame_cache_path(cache, params) == base.cache_path
    assert frame_cache_path(cache, params | {"framing": "other"}) != base.cache_path


def test_cache_is_read_back_and_any_change_gets_fresh_frames(cifar_root, tmp_path):
    cache = tmp_path / "cache"
    first = CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=cache)
    frames4, label = first[7]
    assert (first.cache_path / "7_0.hdf5").is_file()  # tonic.DiskCachedDataset's file
    second = CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=cache)
    assert second.cache_path == first.cache_path
    again, again_label = second[7]
    assert torch.equal(again, frames4) and again_label == label and isinstance(again_label, int)
    assert torch.equal(frames4, CIFAR10DVS(cifar_root, train=True, T=4)[7][0])  # uncached
    # T = 6 has its own folder
    six = CIFAR10DVS(cifar_root, train=True, T=6, cache_dir=cache)
    assert six.cache_path != first.cache_path and six[8][0].shape == (6, 2, 48, 48)
    # a recording replaced under the same name is never served from the old frames
    victim = first.files[7]
    victim.write_bytes(victim.read_bytes()[:-1])
    changed = CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=cache)
    assert changed.cache_path != first.cache_path
    with pytest.raises(ValueError, match="truncated"):
        changed[7]


def test_augmentation_runs_after_the_cache(cifar_root, tmp_path):
    flip = lambda x: torch.flip(x, dims=[-1])  # noqa: E731
    plain = CIFAR10DVS(cifar_root, train=True, T=3, cache_dir=tmp_path / "c")[2][0]
    flipped = CIFAR10DVS(cifar_root, train=True, T=3, cache_dir=tmp_path / "c", transform=flip)[2][
        0
    ]
    assert torch.equal(flipped, flip(plain))
    assert torch.equal(
        CIFAR10DVS(cifar_root, train=True, T=3, cache_dir=tmp_path / "c")[2][0], plain
    )


def test_negative_index_shares_the_cache_entry(cifar_root, tmp_path):
    ds = CIFAR10DVS(cifar_root, train=False, T=3, cache_dir=tmp_path / "c")
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])
    assert sorted(p.name for p in ds.cache_path.glob("*.hdf5")) == [f"{len(ds) - 1}_0.hdf5"]
    with pytest.raises(IndexError):
        ds[len(ds)]


# ----------------------------------------------------------------------------- N-Caltech101


@pytest.fixture
def caltech_root(tmp_path) -> Path:
    """tonic's download layout: root/NCALTECH101/Caltech101/<class>/image_XXXX.bin, three
    classes of 10, 20 and 31 recordings (31 is N-Caltech101's smallest class)."""
    root = tmp_path / "ncal"
    for name, n in [("accordion", 10), ("BACKGROUND_Google", 20), ("inline_skate", 31)]:
        for i in range(1, n + 1):
            write_atis_bin(
                root / "NCALTECH101" / "Caltech101" / name / f"image_{i:04d}.bin",
                xs=[239, i],
                ys=[179, n],
                ts=[0, 1000 + i],
                ps=[1, 0],
            )
    return root


def test_ncaltech101_split_classes_and_frames(caltech_root):
    train = NCaltech101(caltech_root, train=True, T=4)
    test = NCaltech101(caltech_root, train=False, T=4, size=None)
    assert train.classes == ("BACKGROUND_Google", "accordion", "inline_skate")  # sorted names
    assert collections.Counter(train.targets) == {0: 18, 1: 9, 2: 27}
    assert collections.Counter(test.targets) == {0: 2, 1: 1, 2: 4}
    assert not set(train.files) & set(test.files)
    assert [f.name for f in test.files if test.targets[test.files.index(f)] == 1] == [
        "image_0010.bin"
    ]
    frames, label = test[0]  # BACKGROUND_Google/image_0019.bin
    assert frames.shape == (4, 2, 180, 240) and label == 0
    assert torch.equal(
        frames, expected_frames(4, (2, 180, 240), [239, 19], [179, 20], [0, 1019], [1, 0])
    )
    assert train[0][0].shape == (4, 2, 48, 48)
    batch, _ = next(iter(DataLoader(train, batch_size=3, sampler=train.balanced_sampler())))
    assert batch.shape == (3, 4, 2, 48, 48)


def test_ncaltech101_balanced_sampler_evens_out_classes(caltech_root):
    train = NCaltech101(caltech_root, train=True, T=2)
    sampler = train.balanced_sampler(num_samples=9_000, generator=torch.Generator().manual_seed(1))
    drawn = collections.Counter(train.targets[i] for i in sampler)
    assert all(abs(drawn[c] / 9_000 - 1 / 3) < 0.03 for c in range(3))


def test_one_event_and_very_short_recordings_through_a_dataset(tmp_path):
    # span 0 (one event) and span 2 µs < T: still exactly T frames holding every event
    write_atis_bin(tmp_path / "a" / "image_0001.bin", [7], [9], [4242], [1])
    write_atis_bin(tmp_path / "a" / "image_0002.bin", [1, 2, 3], [4, 5, 6], [10, 11, 12], [0, 1, 0])
    train = NCaltech101(tmp_path, train=True, T=6, size=None, train_fraction=0.5)
    test = NCaltech101(tmp_path, train=False, T=6, size=None, train_fraction=0.5)
    assert train.files[0].name == "image_0001.bin" and test.files[0].name == "image_0002.bin"
    one, short = train[0][0], test[0][0]
    assert one.shape == short.shape == (6, 2, 180, 240)
    assert one.sum() == 1 and one[0, 1, 9, 7] == 1
    assert short.sum() == 3 and short.sum(dim=(1, 2, 3)).tolist() == [1, 1, 1, 0, 0, 0]


def test_ncaltech101_errors(tmp_path, caltech_root):
    with pytest.raises(FileNotFoundError, match=r"(?s)nothing_here.*<class name>/\*\.bin"):
        NCaltech101(tmp_path / "nothing_here")
    victim = caltech_root / "NCALTECH101" / "Caltech101" / "accordion" / "image_0003.bin"
    victim.write_bytes(victim.read_bytes() + b"\x00\x01")
    ds = NCaltech101(caltech_root, train=True, T=2)
    with pytest.raises(ValueError, match=r"image_0003\.bin.*not a multiple of 5"):
        ds[ds.files.index(victim)]
    write_atis_bin(victim, [250], [3], [0], [1])  # x = 250 is outside the 240-wide sensor
    with pytest.raises(ValueError, match=r"image_0003\.bin.*outside the 240x180 sensor.*x=250"):
        ds[ds.files.index(victim)]


# ----------------------------------------------------------------------------- DVS128 Gesture


@pytest.fixture
def gesture_root(tmp_path) -> Path:
    root = (
        tmp_path / "gesture" / "DVSGesture"
    )  # as tonic.datasets.DVSGesture(save_to=...) leaves it
    for user, labels in [("user01_fluorescent", [0, 3, 10]), ("user02_lab", [1])]:
        for label in labels:
            write_gesture_npy(
                root / "ibmGestureTrain" / user / f"{label}.npy",
                xs=[label, 127, 64],
                ys=[0, 5, 127],
                ps=[1, 0, 1],
                t_ms=[0, 3, 5 + label],
            )
    write_gesture_npy(
        root / "ibmGestureTest" / "user24_led" / "7.npy",
        xs=[1, 2, 3, 4],
        ys=[9, 8, 7, 6],
        ps=[0, 1, 0, 1],
        t_ms=[0.0, 1.0, 2.0, 3.0],
        dtype=np.float64,
    )
    return root.parent


def test_dvsgesture_layout_labels_and_ms_to_us(gesture_root):
    train = DVSGesture(gesture_root, train=True, T=4)
    assert train.targets == [0, 3, 10, 1] and len(train.classes) == 11
    frames, label = train[1]  # user01_fluorescent/3.npy: t = 0, 3, 8 ms -> µs
    assert label == 3 and frames.shape == (4, 2, 128, 128)
    # span 8,000 µs, windows 2,001 µs: bins 0, 1 (3,000 µs), 3 (8,000 µs)
    assert torch.equal(
        frames,
        expected_frames(4, (2, 128, 128), [3, 127, 64], [0, 5, 127], [0, 3000, 8000], [1, 0, 1]),
    )
    test = DVSGesture(gesture_root, train=False, T=4, size=32)
    frames, label = test[0]
    assert label == 7 and frames.shape == (4, 2, 32, 32)
    native = DVSGesture(gesture_root, train=False, T=4)[0][0]
    assert native.sum() == 4 and native[:, :, 9, 1].tolist() == [[1, 0], [0, 0], [0, 0], [0, 0]]
    batch, labels = next(iter(DataLoader(train, batch_size=4)))
    assert batch.shape == (4, 4, 2, 128, 128) and labels.tolist() == [0, 3, 10, 1]


def test_dvsgesture_errors(tmp_path, gesture_root):
    with pytest.raises(
        FileNotFoundError,
        match=r"(?s)gesture_missing.*ibmGestureTrain/<user>_<lighting>/<label>\.npy",
    ):
        DVSGesture(tmp_path / "gesture_missing")
    split = gesture_root / "DVSGesture" / "ibmGestureTrain" / "user02_lab"
    victim = split / "1.npy"
    victim.write_bytes(victim.read_bytes()[:-5])
    ds = DVSGesture(gesture_root, train=True, T=2)
    with pytest.raises(ValueError, match=r"1\.npy: not a readable \.npy file"):
        ds[3]
    np.save(victim, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"1\.npy: expected an \[N, 4\] array"):
        ds[3]
    np.save(split / "11.npy", np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"11\.npy: the file name must be the label 0\.\.10"):
        DVSGesture(gesture_root, train=True)


# ----------------------------------------------------------------------------- N-MNIST, registry


def test_nmnist_full_release_layout(tmp_path):
    # Train/<digit>/<id>.bin as the full N-MNIST (and tonic's download under NMNIST/) lays it out
    shipped = NMNIST(NMNIST_ROOT, train=False, T=3)
    for i in range(6):
        dest = tmp_path / "NMNIST" / "Test" / str(shipped.targets[i]) / f"{i:05d}.bin"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped.files[i], dest)
    ds = NMNIST(tmp_path, train=False, T=3)
    assert sorted(ds.targets) == sorted(shipped.targets[:6]) and len(ds) == 6
    by_name = {f.name: i for i, f in enumerate(ds.files)}
    assert torch.equal(ds[by_name["00002.bin"]][0], shipped[2][0])
    with pytest.raises(FileNotFoundError, match="Train/<digit>"):
        NMNIST(tmp_path, train=True)


def test_nmnist_disk_cache(tmp_path):
    ds = NMNIST(NMNIST_ROOT, train=False, T=3, cache_dir=tmp_path)
    assert torch.equal(ds[4][0], NMNIST(NMNIST_ROOT, train=False, T=3)[4][0])
    assert ds.cache_path.name.startswith("nmnist-test-T3-34x34-")


def test_build_dataset_registry(cifar_root, caltech_root, gesture_root):
    assert set(DATASETS) == {
        "cifar10",
        "cifar100",
        "imagenet",
        "cifar10dvs",
        "ncaltech101",
        "dvsgesture",
        "nmnist",
        "imagefolder",
    }
    cases = [
        ("cifar10dvs", cifar_root, CIFAR10DVS, (3, 2, 48, 48)),
        ("ncaltech101", caltech_root, NCaltech101, (3, 2, 48, 48)),
        ("dvsgesture", gesture_root, DVSGesture, (3, 2, 128, 128)),
        ("nmnist", None, NMNIST, (3, 2, 34, 34)),
    ]
    for name, root, cls, shape in cases:
        ds = build_dataset(name, root, train=True, T=3)
        assert type(ds) is cls and ds[0][0].shape == shape, name
        assert (ds.transform is not None) == (name in ("cifar10dvs", "ncaltech101")), name
    assert build_dataset("dvsgesture", gesture_root, train=True, T=3, size=48, augment=True)[0][
        0
    ].shape == (3, 2, 48, 48)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("mnist-dvs", cifar_root)
    with pytest.raises(ValueError, match="needs a root"):
        build_dataset("cifar10dvs", None)


# ----------------------------------------------------------------------------- downloads


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tonic.download_utils, "download_url", refuse)
    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", refuse)


@pytest.mark.parametrize(
    ("cls", "tonic_name"),
    [
        (CIFAR10DVS, "CIFAR10DVS"),
        (NCaltech101, "NCALTECH101"),
        (DVSGesture, "DVSGesture"),
        (NMNIST, "NMNIST"),
    ],
)
def test_nothing_is_downloaded_unless_asked(tmp_path, monkeypatch, no_network, cls, tonic_name):
    with pytest.raises(FileNotFoundError):
        cls(tmp_path / "empty")
    calls = []

    class Recorder:
        data_filename, folder_name = "Caltech101.zip", "Caltech101"

        def __init__(self, save_to, **kwargs):
            calls.append((save_to, kwargs))
            self.location_on_system = str(Path(save_to) / tonic_name)

    monkeypatch.setattr(tonic.datasets, tonic_name, Recorder)
    with pytest.raises(FileNotFoundError):  # the recorder downloads nothing
        cls(tmp_path / "empty", download=True)
    assert calls and calls[0][0] == str(tmp_path / "empty")


def test_ncaltech101_download_extracts_the_inner_archive_tonic_leaves_packed(tmp_path, monkeypatch):
    """The NCALTECH101_INNER_ZIP workaround: tonic extracts only the outer archive."""
    import zipfile

    from sparsegrad.data._tonic import NCALTECH101_INNER_ZIP

    recording = write_atis_bin(tmp_path / "rec.bin", xs=[3, 239], ys=[4, 179], ts=[0, 50], ps=[1, 0])

    def outer_archive_only(url, location, filename=None, md5=None):  # what the real archive holds
        Path(location).mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(Path(location) / "Caltech101.zip", "w") as inner:
            for name in ("accordion", "anchor"):
                inner.write(recording, f"Caltech101/{name}/image_0001.bin")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", outer_archive_only)
    if NCALTECH101_INNER_ZIP.present:
        tonic.datasets.NCALTECH101(save_to=str(tmp_path / "tonic_only"))
        assert not (tmp_path / "tonic_only" / "NCALTECH101" / "Caltech101").exists()  # the bug
    ds = NCaltech101(tmp_path / "ours", train=False, T=2, download=True)
    assert ds.classes == ("accordion", "anchor") and len(ds) == 2
    assert ds.root == tmp_path / "ours" / "NCALTECH101" / "Caltech101"


def test_aedat_workaround_is_needed_while_tonic_has_the_bug_or_agrees_with_tonic(tmp_path):
    """The AEDAT_HEADER_UNPACK guard is honest: on a release it covers, tonic's own readers
    fail; on a later one, they give the events the workaround gives."""
    from sparsegrad.data._tonic import AEDAT_HEADER_UNPACK

    assert "issues/302" in AEDAT_HEADER_UNPACK.issue
    for write, reader in ((write_aedat2, tonic.io.read_dvs_128), (write_aedat31, tonic.io.read_dvs_ibm)):
        path = write(tmp_path / f"{write.__name__}.aedat", XS, YS, TS, PS)
        ours = read_cifar10dvs(path)
        assert ours["x"].tolist() == XS and ours["p"].tolist() == PS
        if AEDAT_HEADER_UNPACK.present:
            with pytest.raises(ValueError, match="unpack"):
                reader(str(path))
        else:
            _, theirs = reader(str(path))
            assert all(np.array_equal(theirs[k], ours[k]) for k in "xytp")


def test_events_to_frames_needs_the_sensor_size():
    """Issue 16: no N-MNIST default; a 128x128 recording framed at 34x34 must not pass silently."""
    with pytest.raises(TypeError, match="sensor_size"):
        events_to_frames(make_events(XS, YS, TS, PS), 4)


# ----------------------------------------------------------------------------- shared frame cache
_CACHE_WORKER = """
import hashlib, sys, time
from pathlib import Path
from sparsegrad.data import CIFAR10DVS

root, cache, me, other = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
ds = CIFAR10DVS(root, train=True, T=4, cache_dir=cache)
(cache / f"ready-{me}").touch()
deadline = time.monotonic() + 300
while not (cache / f"ready-{other}").exists() and time.monotonic() < deadline:
    time.sleep(0.01)  # start together, so that both write the same samples at once
digest = hashlib.sha256()
for _ in range(2):
    for i in range(len(ds)):
        digest.update(ds[i][0].numpy().tobytes())
print(digest.hexdigest())
"""


def test_two_processes_share_one_frame_cache(cifar_root, tmp_path):
    """Issue 17 item 10: two runs sharing --out-dir/frame_cache died with HDF5's
    BlockingIOError (unable to lock file); each process now writes its own file and renames it."""
    import hashlib
    import subprocess
    import sys

    cache = tmp_path / "cache"
    script = tmp_path / "worker.py"
    script.write_text(_CACHE_WORKER)
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(cifar_root), str(cache), me, other],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for me, other in (("a", "b"), ("b", "a"))
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    uncached = CIFAR10DVS(cifar_root, train=True, T=4)
    want = hashlib.sha256()
    for _ in range(2):
        for i in range(len(uncached)):
            want.update(uncached[i][0].numpy().tobytes())
    assert [out.strip() for out, _ in results] == [want.hexdigest()] * 2
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert len(list(folder.glob("*_0.hdf5"))) == len(uncached)
    assert not list(folder.glob(".*.tmp"))  # no writer's file left behind


def test_a_damaged_cache_file_is_made_again(cifar_root, tmp_path):
    ds = CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=tmp_path / "c")
    want = ds[5][0]
    (ds.cache_path / "5_0.hdf5").write_bytes(b"half a file")  # e.g. from an older, in-place writer
    assert torch.equal(CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=tmp_path / "c")[5][0], want)
    assert torch.equal(CIFAR10DVS(cifar_root, train=True, T=4, cache_dir=tmp_path / "c")[5][0], want)


# ----------------------------------------------------------------------------- check_files
def test_check_files_lists_every_unreadable_recording_once(cifar_root, tmp_path):
    from sparsegrad.data import check_files, load_splits

    train = CIFAR10DVS(cifar_root, train=True, T=2)
    bad = [train.files[3], train.files[40]]
    bad[0].write_bytes(bad[0].read_bytes()[:-3])  # truncated
    bad[1].write_bytes(b"not an aedat file\n")
    found = check_files(*load_splits("cifar10dvs", cifar_root, T=2, folds=3, fold=1))
    assert [path for path, _ in found] == bad
    assert "truncated" in found[0][1] and "not an AEDAT file" in found[1][1]
    assert check_files(CIFAR10DVS(cifar_root, train=False, T=2)) == []  # the test part is sound
    seen = []
    check_files(train, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(train), len(train)) and len(seen) == len(train)
