"""Tests of SeqToANN, the Accelerate training engine and the N-MNIST demo recipe."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsegrad import LIF, MaskedGradient, TemporalWeightedHead
from sparsegrad.layers import SeqToANN
from sparsegrad.train import evaluate, train_one_epoch

REPO = Path(__file__).resolve().parents[1]
T, B = 5, 3  # distinct, so a swapped axis fails


def load_recipe():
    """Imports recipes/nmnist_demo.py (recipes/ is not a package)."""
    if "nmnist_demo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("nmnist_demo", REPO / "recipes" / "nmnist_demo.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["nmnist_demo"] = module
        spec.loader.exec_module(module)
    return sys.modules["nmnist_demo"]


# ------------------------------------------------------------------------------ SeqToANN
def test_seq_to_ann_matches_per_timestep():
    torch.manual_seed(0)
    block = SeqToANN(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                     nn.Flatten(), nn.Linear(4 * 3 * 3, 7)).eval()  # eval: BN uses running stats
    x = torch.randn(T, B, 2, 6, 6)
    per_frame = nn.Sequential(*block)  # the same modules, as a plain Sequential
    expected = torch.stack([per_frame(x[t]) for t in range(T)])
    out = block(x)
    assert out.shape == (T, B, 7)
    torch.testing.assert_close(out, expected)


def test_seq_to_ann_batchnorm_statistics_over_time_and_batch():
    torch.manual_seed(0)
    block = SeqToANN(nn.BatchNorm2d(4))
    x = torch.randn(T, B, 4, 2, 2) * 3 + 1
    out = block(x)
    merged = out.reshape(T * B, 4, 2, 2)
    torch.testing.assert_close(merged.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(block[0].running_mean, 0.1 * x.mean((0, 1, 3, 4)))


def test_seq_to_ann_gradient_flows():
    block = SeqToANN(nn.Linear(4, 2))
    x = torch.randn(T, B, 4, requires_grad=True)
    block(x).sum().backward()
    assert x.grad.shape == (T, B, 4)
    torch.testing.assert_close(x.grad[0, 0], block[0].weight.sum(0))


@pytest.mark.parametrize("bad", [torch.randn(B, 4), torch.randn(7), "frames"])
def test_seq_to_ann_rejects_non_sequences(bad):
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        SeqToANN(nn.Linear(4, 2))(bad)


def test_seq_to_ann_rejects_modules_that_change_the_batch():
    class Squash(nn.Module):
        def forward(self, x):
            return x.sum(0)

    with pytest.raises(ValueError, match="T\\*B"):
        SeqToANN(Squash())(torch.randn(T, B, 4))


# ------------------------------------------------------------------------------ engine
class StepLogits(nn.Module):
    """Per-timestep logits [T, B, K] = a linear map of x [B, T, F] at each step."""

    def __init__(self, features=4, classes=3):
        super().__init__()
        self.fc = SeqToANN(nn.Linear(features, classes))

    def forward(self, x):
        return self.fc(x.transpose(0, 1))


def toy_loader(n=24, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def test_evaluate_per_timestep_accuracy_by_hand():
    class Fixed(nn.Module):
        """Timestep t predicts the label at t = 1, 4, 5 and the next class otherwise."""

        def forward(self, x):
            labels = x[:, 0].long()
            wrong = torch.tensor([0, 1, 1, 0, 0])[:, None]
            return nn.functional.one_hot((labels[None] + wrong) % 3, 3).float()

    y = torch.tensor([0, 1, 2, 1, 0, 2, 2])
    loader = DataLoader(TensorDataset(y.float()[:, None].repeat(1, 2), y), batch_size=3)
    accelerator = Accelerator(cpu=True)
    head = TemporalWeightedHead(Fixed(), T)
    result = evaluate(accelerator, head, accelerator.prepare(loader))
    assert result["n"] == len(y)
    assert result["acc_per_step"] == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert result["acc"] == 1.0  # uniform factors: the label scores 3/T, the next class 2/T


def test_train_one_epoch_with_and_without_two():
    accelerator = Accelerator(cpu=True, step_scheduler_with_optimizer=False)
    for two in (False, True):
        torch.manual_seed(0)
        net = StepLogits()
        optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        net, optimizer, scheduler, loader = accelerator.prepare(net, optimizer, scheduler, toy_loader())
        head = TemporalWeightedHead(net, T).to(accelerator.device)
        msg = MaskedGradient(p=0.5, seed=0)
        stats = train_one_epoch(accelerator, head, optimizer, loader, nn.CrossEntropyLoss(),
                                scheduler=scheduler, msg=msg, two=two)
        assert set(stats) == {"loss", "acc", "lr", "time_s"}
        assert 0 <= stats["acc"] <= 1 and stats["loss"] > 0 and stats["lr"] == 0.1
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # one scheduler step per epoch
        assert msg.step_count == 3  # 24 samples / batch 8
        assert int(head.epochs) == int(two)
        if two:
            assert not torch.allclose(head.factors, torch.full((T,), 1 / T))
        else:
            assert torch.equal(head.factors, torch.full((T,), 1 / T)) and int(head.seen) == 0
        torch.testing.assert_close(head.factors.sum(), torch.tensor(1.0))


def test_train_one_epoch_rejects_scheduler_stepping_with_optimizer():
    accelerator = Accelerator(cpu=True)  # step_scheduler_with_optimizer=True by default
    net = StepLogits()
    optimizer = torch.optim.AdamW(net.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    net, optimizer, scheduler = accelerator.prepare(net, optimizer, scheduler)
    with pytest.raises(ValueError, match="step_scheduler_with_optimizer=False"):
        train_one_epoch(accelerator, TemporalWeightedHead(net, T), optimizer, toy_loader(),
                        nn.CrossEntropyLoss(), scheduler=scheduler)


def test_train_one_epoch_needs_a_temporal_head():
    net = StepLogits()
    with pytest.raises(TypeError, match="TemporalWeightedHead"):
        train_one_epoch(Accelerator(cpu=True), net, torch.optim.SGD(net.parameters(), 0.1),
                        toy_loader(), nn.CrossEntropyLoss())


# ------------------------------------------------------------------------------ recipe
def test_spiking_cnn_shapes_and_msg():
    demo = load_recipe()
    net = demo.SpikingCNN(T=4, channels=(4, 8))
    out = net(torch.rand(3, 4, 2, 34, 34))
    assert out.shape == (4, 3, 10)
    assert sum(isinstance(m, LIF) for m in net.modules()) == 2
    with pytest.raises(ValueError, match=r"\[B, T=4, 2, 34, 34\]"):
        net(torch.rand(4, 3, 2, 34, 34))


def test_nmnist_demo_end_to_end(tmp_path):
    demo = load_recipe()
    cfg = demo.Config(epochs=1, limit=32, batch_size=16, channels=(4, 8), T=4, out_dir=tmp_path)
    run_dir = demo.main(cfg)
    assert run_dir.parent == tmp_path
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 1 and config["limit"] == 32
    results = json.loads((run_dir / "results.json").read_text())
    assert [row["variant"] for row in results["summary"]] == list(demo.VARIANTS)
    for run in results["runs"]:
        assert 0 <= run["test_acc"] <= 1
        assert len(run["acc_per_step"]) == cfg.T and all(0 <= a <= 1 for a in run["acc_per_step"])
        assert len(run["factors"]) == cfg.T and sum(run["factors"]) == pytest.approx(1.0)
        if "TWO" not in run["variant"]:
            assert run["factors"] == pytest.approx([1 / cfg.T] * cfg.T)
        assert (run["msg_stats"] is not None) == ("MSG" in run["variant"])
        assert len(run["history"]) == cfg.epochs
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(demo.VARIANTS)
    assert {f"acc_t{t}" for t in range(1, cfg.T + 1)} <= set(rows[0])
    assert all(0 <= float(row["test_acc"]) <= 1 for row in rows)
    assert "acc % of timestep" in results["table"]


def test_nmnist_demo_is_reproducible(tmp_path):
    demo = load_recipe()
    cfg = demo.Config(epochs=2, limit=24, batch_size=8, channels=(4, 8), T=3, out_dir=tmp_path,
                      variants=("+MSG&TWO",), seeds=(1,))
    first, second = (json.loads((demo.main(cfg) / "results.json").read_text())["runs"] for _ in range(2))
    for a, b in zip(first, second, strict=True):
        assert a["test_acc"] == b["test_acc"] and a["factors"] == b["factors"]
        assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
        assert a["msg_stats"] == b["msg_stats"]
