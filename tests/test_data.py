"""Tests of the embedded N-MNIST subset and its reader, on the shipped recordings."""

from __future__ import annotations

import collections
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch

from sparsegrad.data import NMNIST, default_root, events_to_frames, read_events

ROOT = default_root()
DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
# Published class counts 0..9 of slayerPytorch's NMNISTsmall (data/PROVENANCE.md).
TRAIN_COUNTS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
TEST_COUNTS = [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]


def encode_events(xs, ys, ts, ps) -> bytes:
    """N-MNIST .bin encoding: x, y, then polarity in bit 7 and a 23-bit timestamp (µs)."""
    out = bytearray()
    for x, y, t, p in zip(xs, ys, ts, ps, strict=True):
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def make_root(tmp_path: Path, recording: bytes, sample_id: int = 1, label: int = 3) -> Path:
    """A one-sample training root holding `recording` as train/<sample_id>.bin."""
    (tmp_path / "train").mkdir()
    (tmp_path / "train1K.txt").write_text(f"#sample #class\n{sample_id}\t{label}\n")
    (tmp_path / "train" / f"{sample_id}.bin").write_bytes(recording)
    return tmp_path


@pytest.fixture(scope="module")
def train_set() -> NMNIST:
    return NMNIST(ROOT, train=True, T=7)


@pytest.fixture(scope="module")
def test_set() -> NMNIST:
    return NMNIST(ROOT, train=False, T=7)


def test_shipped_files_match_sha256sums():
    lines = (ROOT / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 1102  # 1,000 + 100 recordings and the two label files
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((ROOT / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize(
    ("train", "counts"), [(True, TRAIN_COUNTS), (False, TEST_COUNTS)], ids=["train", "test"]
)
def test_label_counts_match_published(train, counts):
    ds = NMNIST(ROOT, train=train, T=3)
    assert len(ds) == sum(counts)
    tally = collections.Counter(ds.targets)
    assert [tally[c] for c in range(10)] == counts


def test_first_labels_follow_mnist_order(train_set, test_set):
    # MNIST's training set begins 5, 0, 4, 1, 9; its test set 7, 2, 1, 0, 4.
    assert train_set.targets[:5] == [5, 0, 4, 1, 9]
    assert test_set.targets[:5] == [7, 2, 1, 0, 4]
    assert train_set.files[0].name == "1.bin" and test_set.files[0].name == "60001.bin"


def test_sample_shape_dtype_and_label(train_set):
    frames, label = train_set[0]
    assert frames.shape == (7, 2, 34, 34)  # [T, polarity, y, x], T distinct from the others
    assert frames.dtype == torch.float32
    assert isinstance(label, int) and label == 5
    assert frames.min() >= 0 and torch.equal(frames, frames.round())


def test_dataloader_batches_time_second(test_set):
    loader = torch.utils.data.DataLoader(test_set, batch_size=5)
    frames, labels = next(iter(loader))
    assert frames.shape == (5, 7, 2, 34, 34)
    assert labels.tolist() == [7, 2, 1, 0, 4]


@pytest.mark.parametrize("index", [0, 1, 499, 999])
def test_frames_hold_every_event(train_set, index):
    events = tonic.io.read_mnist_file(str(train_set.files[index]), dtype=DTYPE)
    frames, _ = train_set[index]
    assert frames.sum().item() == len(events)
    # the recording spans all T frames: the first and the last one both hold events
    assert frames[0].sum() > 0 and frames[-1].sum() > 0
    # per pixel and polarity, the counts over time equal tonic's event histogram
    hist = np.zeros((2, 34, 34), dtype=np.int64)
    np.add.at(hist, (events["p"], events["y"], events["x"]), 1)
    assert np.array_equal(frames.sum(0).numpy().astype(np.int64), hist)


def test_all_recordings_convert_without_loss(train_set, test_set):
    total = 0
    for ds in (train_set, test_set):
        for i in range(len(ds)):
            frames, _ = ds[i]
            assert frames.shape == (7, 2, 34, 34)
            total += int(frames.sum())
    assert total == 4_518_827  # events in the 1,100 recordings (data/PROVENANCE.md)


def test_tonic_n_time_bins_drops_the_last_event():
    # Documents why events_to_frames does not call ToFrame(n_time_bins=T): tonic loses events.
    events = tonic.io.read_mnist_file(str(ROOT / "train" / "1.bin"), dtype=DTYPE)
    tonic_frames = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=7)(events)
    assert tonic_frames.sum() < len(events)
    assert events_to_frames(events, 7, (34, 34, 2)).sum() == len(events)


def test_frames_index_polarity_y_x_and_time(tmp_path):
    # x != y and distinct times, so a swapped axis or a wrong bin fails
    raw = encode_events(xs=[3, 30, 0], ys=[20, 1, 33], ts=[0, 500, 1000], ps=[1, 0, 1])
    frames, label = NMNIST(make_root(tmp_path, raw), train=True, T=4)[0]
    assert label == 3
    # span 1000 µs, windows 1000 // 4 + 1 = 251 µs: [0,251) [251,502) [502,753) [753,1004)
    expected = torch.zeros(4, 2, 34, 34)
    expected[0, 1, 20, 3] = 1
    expected[1, 0, 1, 30] = 1
    expected[3, 1, 33, 0] = 1
    assert torch.equal(frames, expected)


def test_single_timestamp_recording_fills_first_frame(tmp_path):
    raw = encode_events(xs=[1, 2], ys=[2, 1], ts=[77, 77], ps=[0, 1])
    frames, _ = NMNIST(make_root(tmp_path, raw), train=True, T=5)[0]
    assert frames[0].sum() == 2 and frames[1:].sum() == 0


def test_missing_root_names_path_and_layout(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder") as info:
        NMNIST(missing)
    assert "train1K.txt" in str(info.value) and ".bin" in str(info.value)


def test_missing_recording_is_named(tmp_path):
    root = make_root(tmp_path, encode_events([1], [1], [0], [0]))
    (root / "train1K.txt").write_text("#sample #class\n1\t3\n2\t4\n")
    with pytest.raises(FileNotFoundError, match=r"2\.bin"):
        NMNIST(root)


def test_truncated_recording_error_names_file(tmp_path):
    good = (ROOT / "train" / "1.bin").read_bytes()
    root = make_root(tmp_path, good[:-3], sample_id=1)
    ds = NMNIST(root, train=True, T=4)  # opening is cheap; the recording is read on access
    with pytest.raises(ValueError, match=r"1\.bin.*not a multiple of 5"):
        ds[0]


def test_out_of_range_coordinates_error_names_file(tmp_path):
    raw = encode_events(xs=[3, 40, 5], ys=[3, 4, 5], ts=[0, 10, 20], ps=[0, 1, 0])
    root = make_root(tmp_path, raw, sample_id=7)
    with pytest.raises(ValueError, match=r"7\.bin.*x=40"):
        NMNIST(root)[0]
    with pytest.raises(ValueError, match=r"7\.bin.*outside the 34x34 sensor"):
        read_events(root / "train" / "7.bin", NMNIST.sensor_size)


def test_empty_recording_error_names_file(tmp_path):
    root = make_root(tmp_path, b"", sample_id=9)
    with pytest.raises(ValueError, match=r"9\.bin.*no events"):
        NMNIST(root)[0]


def test_backward_timestamps_error_names_file(tmp_path):
    raw = encode_events(xs=[1, 2, 3], ys=[1, 2, 3], ts=[0, 900, 300], ps=[0, 0, 1])
    with pytest.raises(ValueError, match=r"5\.bin.*backwards"):
        NMNIST(make_root(tmp_path, raw, sample_id=5))[0]


@pytest.mark.parametrize("bad_line", ["1 three", "1\t3\textra", "one\t3", "1\t12"])
def test_bad_label_line_names_file_and_line(tmp_path, bad_line):
    root = make_root(tmp_path, encode_events([1], [1], [0], [0]))
    (root / "train1K.txt").write_text(f"#sample #class\n1\t3\n{bad_line}\n")
    with pytest.raises(ValueError, match=r"train1K\.txt:3"):
        NMNIST(root)


def test_bad_T_is_rejected():
    with pytest.raises(ValueError, match="T must be"):
        NMNIST(ROOT, T=0)


def test_default_root_env_override(monkeypatch, tmp_path):
    assert (default_root() / "train1K.txt").is_file()
    monkeypatch.setenv("SPARSEGRAD_DATA", str(tmp_path))
    assert default_root() == tmp_path / "nmnist_small"
    shutil.copytree(ROOT / "test", tmp_path / "nmnist_small" / "test")
    shutil.copy(ROOT / "test100.txt", tmp_path / "nmnist_small")
    assert len(NMNIST(None, train=False, T=2)) == 100


def test_a_pip_install_without_the_embedded_data_gives_the_commands(monkeypatch, tmp_path):
    """Issue 18: from site-packages, data/nmnist_small is not there; say exactly what to run."""
    from sparsegrad.data import load_splits, nmnist

    monkeypatch.delenv("SPARSEGRAD_DATA", raising=False)
    monkeypatch.setattr(nmnist, "__file__", str(tmp_path / "site-packages" / "sparsegrad" / "data" / "nmnist.py"))
    assert default_root() == tmp_path / "site-packages" / "data" / "nmnist_small"
    for make in (lambda: NMNIST(None), lambda: load_splits("nmnist", None, T=2)):
        with pytest.raises(FileNotFoundError) as info:
            make()
        message = str(info.value)
        assert "not with the pip package" in message and str(default_root()) in message
        assert "export SPARSEGRAD_DATA=/path/to/sparsegrad/data" in message
        assert "python -m sparsegrad.train --dataset nmnist --data-root ~/data/nmnist --download" in message
    monkeypatch.setenv("SPARSEGRAD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"SPARSEGRAD_DATA=.*nowhere"):
        NMNIST(None)
