"""Progress output: tqdm bars on a terminal, plain lines in a log file or pipe (issue 18)."""

from __future__ import annotations

import sys

import torch

from sparsegrad.train import RecipeConfig, run
from sparsegrad.train.log import progress


class Blobs(torch.utils.data.Dataset):
    targets = [i % 3 for i in range(12)]

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.full((3, 8, 8), float(self.targets[i])), self.targets[i]


def test_a_run_logged_to_a_pipe_writes_plain_lines(tmp_path, capfd):
    cfg = RecipeConfig(name="pipe", model="spiking_resnet18", T=2, smoke=True, tensorboard=False, plots=False,
                       out_dir=tmp_path)
    run(cfg, train_set=Blobs(), test_set=Blobs())
    out, err = capfd.readouterr()
    assert "pipe seed 0 epoch 1/1: train loss" in out
    for stream in (out, err):
        assert "\x1b[" not in stream and "\r" not in stream  # no cursor moves, no redraws
        assert "it/s]" not in stream and "s/it]" not in stream  # no bar at all


def test_bars_are_drawn_on_a_terminal_and_only_by_the_main_process(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert not progress(range(3)).disable
    assert progress(range(3), enabled=False).disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress(range(3)).disable
