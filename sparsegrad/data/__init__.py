"""Datasets. The embedded N-MNIST subset is read from local files through tonic."""

from sparsegrad.data.nmnist import NMNIST, default_root, events_to_frames, read_events, read_labels

__all__ = ["NMNIST", "default_root", "events_to_frames", "read_events", "read_labels"]
