"""Datasets: static images through torchvision, event recordings through tonic, from local files.

Nothing is downloaded unless ``download=True`` is passed (then torchvision's or tonic's own
download code runs). Event datasets yield ``(frames float32 [T, 2, H, W], label)``, batched by a
DataLoader to ``[B, T, 2, H, W]``; static datasets yield ``(image [3, H, W], label)``.

Modules: [registry][sparsegrad.data.registry] (every dataset by name: classes, channels,
default size, kind; [load_splits][sparsegrad.data.registry.load_splits] with k-fold splits),
[frames][sparsegrad.data.frames] (events -> frames), [events][sparsegrad.data.events] (the
event datasets' base class), [frame_cache][sparsegrad.data.frame_cache] (the on-disk frame
cache, shared safely by several processes), [atis][sparsegrad.data.atis] (the ATIS ``.bin``
reader of N-MNIST and N-Caltech101), [check][sparsegrad.data.check] (every unreadable file,
found before a run),
[transforms][sparsegrad.data.transforms] (Cutout, event augmentation),
[splits][sparsegrad.data.splits] (per-class 9:1 and k-fold splits, class-balanced sampler),
[static][sparsegrad.data.static], [imagefolder][sparsegrad.data.imagefolder] (any folder of
images), [cifar10dvs][sparsegrad.data.cifar10dvs], [ncaltech101][sparsegrad.data.ncaltech101],
[dvsgesture][sparsegrad.data.dvsgesture], [nmnist][sparsegrad.data.nmnist].
"""

from __future__ import annotations

from sparsegrad._extras import require

require("data", __name__)  # before the imports that need the extra

from sparsegrad.data.atis import read_events
from sparsegrad.data.check import check_files
from sparsegrad.data.cifar10dvs import CIFAR10DVS
from sparsegrad.data.dvsgesture import DVSGesture
from sparsegrad.data.events import EventFrameDataset, PerClassSplitDataset
from sparsegrad.data.frames import events_to_frames, resize_frames
from sparsegrad.data.ncaltech101 import NCaltech101
from sparsegrad.data.nmnist import NMNIST, default_root, read_labels
from sparsegrad.data.registry import DATASETS, DatasetSpec, Transformed, build_dataset, load_splits, targets_of
from sparsegrad.data.splits import class_balanced_sampler, kfold_split, split_per_class
from sparsegrad.data.static import build_static, static_transform
from sparsegrad.data.transforms import Cutout, event_augmentation

__all__ = [
    "CIFAR10DVS",
    "DATASETS",
    "DatasetSpec",
    "NMNIST",
    "Cutout",
    "DVSGesture",
    "EventFrameDataset",
    "PerClassSplitDataset",
    "Transformed",
    "NCaltech101",
    "build_dataset",
    "build_static",
    "check_files",
    "class_balanced_sampler",
    "default_root",
    "event_augmentation",
    "events_to_frames",
    "kfold_split",
    "load_splits",
    "read_events",
    "read_labels",
    "resize_frames",
    "split_per_class",
    "static_transform",
    "targets_of",
]
