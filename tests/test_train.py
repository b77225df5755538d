"""Tests of the Accelerate training engine (one epoch, evaluation, one seed's set-up, validation,
the generic entry point, bring-your-own data, faults and kill -9 resume) and the N-MNIST demo."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsegrad import MaskedGradient, TemporalWeightedHead
from sparsegrad.layers import SeqToANN
from sparsegrad.data import load_splits
from sparsegrad.train import RecipeConfig, evaluate, run, train_one_epoch
from sparsegrad.train.build import input_spec
from sparsegrad.train.config import validate
from sparsegrad.train.session import epoch_seed, setup
from sparsegrad.train.runner import make_accelerator

from helpers import load_script, write_image_folder

REPO = Path(__file__).resolve().parents[1]
T, B = 5, 3  # distinct, so a swapped axis fails


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




# ------------------------------------------------------------------------------ one seed's set-up
def _nmnist(out: Path, model: str, **changes) -> RecipeConfig:
    fields = dict(name="t", dataset="nmnist", model=model, T=2, epochs=1, seeds=(0,), batch_size=8, train_limit=32,
                  eval_limit=8, num_workers=0, frame_cache=False, tensorboard=False, plots=False, out_dir=out)
    return RecipeConfig(**{**fields, **changes})


def test_msg_and_two_variants_share_initial_weights_and_batches(tmp_path):
    """Same seed, different msg / two / p: same initial weights, same global RNG state after
    set-up, hence the same (augmented) first batch; MSG draws from its own generator."""
    base = _nmnist(tmp_path, "spiking_convnet_s", augment=True, msg=False, two=False)
    accelerator = make_accelerator(base)
    train, test = load_splits("nmnist", None, T=2, augment=True)
    spec = input_spec(base, train, test)
    firsts = []
    for changes in ({}, {"msg": True, "two": True, "p": 0.3}, {"msg": True, "p": 0.9}):
        session = setup(accelerator, dataclasses.replace(base, **changes), 7, train, test, spec)
        session.shuffle.manual_seed(epoch_seed(7, 1))
        x, y = next(iter(session.train_loader))
        firsts.append((session.net.state_dict(), x, y, session.msg is not None))
    assert [f[3] for f in firsts] == [False, True, True]
    for weights, x, y, _ in firsts[1:]:
        assert weights.keys() == firsts[0][0].keys()
        assert all(torch.equal(weights[k], firsts[0][0][k]) for k in weights)
        assert torch.equal(x, firsts[0][1]) and torch.equal(y, firsts[0][2])
    assert not torch.equal(firsts[0][1][:, 0], firsts[0][1][:, 0].flip(-1))  # augmentation did run


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(("changes", "error", "match"), [
    ({"model": "no_such_model"}, ValueError, r"--model 'no_such_model' is not a registered timm model"),
    ({"model": "resnet18"}, ValueError, r"--model resnet18 on 2 samples of shape \(2, 2, 34, 34\) failed "
                                        r"\(RuntimeError: .*\); the engine trains per-timestep logits "
                                        r"\[T, B, K\] = \[2, 2, 10\]"),
    ({"p": 1.5}, ValueError, r"--p, .*: MaskedGradient: p must be a finite number in \[0, 1\].*got 1.5"),
    ({"beta": 1.0}, ValueError, r"--beta, .*: TemporalWeightedHead: beta must be a finite number in \[0, 1\).*got 1.0"),
    ({"surrogate": "relu"}, ValueError, r"--surrogate 'relu' is not known; choose one of .*'atan'"),
    ({"T": 0}, ValueError, r"--T must be an integer >= 1"),
    ({"seeds": (1, 1)}, ValueError, r"--seeds"),
    ({"folds": 1}, ValueError, r"--folds must be an integer >= 2"),
    ({"folds": 3, "fold": 3}, ValueError, r"--fold must be an integer in \[0, 3\)"),
    ({"fold": 2}, ValueError, r"--fold must be 0 unless --folds is set"),
    ({"folds": 200}, ValueError, r"--folds 200 needs at least 200 samples per class"),
    ({"dataset": "cifar10"}, ValueError, r"--data-root is required for cifar10"),
    ({"dataset": "cifar10", "data_root": "missing"}, FileNotFoundError, r"--data-root missing does not exist.*--download"),
    ({"dataset": "imagenet", "data_root": ".", "download": True}, ValueError, r"--download: imagenet cannot"),
    ({"batch_size": 6, "grad_accum": 4}, ValueError, r"--batch-size 6 .* multiple of processes x grad_accum"),
    ({"model": "vggsnn", "img_size": 4}, ValueError, r"img_size"),
    ({"resume": "nowhere"}, FileNotFoundError, r"--resume nowhere"),
])
def test_bad_input_names_the_flag_and_leaves_no_folder(tmp_path, changes, error, match):
    cfg = _nmnist(tmp_path / "runs", changes.pop("model", "vggsnn"), **changes)
    with pytest.raises(error, match=match):
        run(cfg)
    assert not (tmp_path / "runs").exists()


def test_numpy_scalars_are_numbers_and_bools_are_not():
    import numpy as np

    cfg = RecipeConfig(dataset="nmnist", model="vggsnn", p=np.float32(0.5), T=np.int64(4), epochs=np.int64(2))
    assert validate(cfg) is cfg
    with pytest.raises(ValueError, match="--T must be an integer"):
        validate(dataclasses.replace(cfg, T=True))


# ------------------------------------------------------------------------------ bring your own data
def test_python_m_sparsegrad_train_on_a_grayscale_image_folder(tmp_path):
    """The generic entry point on a single-split folder of grayscale PNGs: classes, channels and
    size come from the data."""
    root = write_image_folder(tmp_path / "pngs", {"circle": 10, "square": 10, "star": 10}, mode="L")
    cmd = [sys.executable, "-m", "sparsegrad.train", "--dataset", "imagefolder", "--data-root", str(root),
           "--model", "spiking_resnet18", "--T", "2", "--smoke", "--out-dir", str(tmp_path / "runs"),
           "--no-tensorboard", "--no-plots"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "spiking_resnet18 on imagefolder (4 train / 2 test)" in proc.stdout  # smoke: 2 steps of 2
    (run_dir,) = (tmp_path / "runs").iterdir()
    from timm.models import get_pretrained_cfg_value

    from sparsegrad.train import load_checkpoint

    weights, _ = load_checkpoint(run_dir / "seed-0" / "checkpoints")
    first_conv, classifier = (get_pretrained_cfg_value("spiking_resnet18", k) for k in ("first_conv", "classifier"))
    assert weights[f"{first_conv}.weight"].shape[1] == 1 and weights[f"{classifier}.weight"].shape[0] == 3


def test_any_dataset_pair_trains(tmp_path):
    class Blobs(torch.utils.data.Dataset):
        targets = [i % 3 for i in range(12)]

        def __len__(self):
            return 12

        def __getitem__(self, i):
            return torch.full((3, 8, 8), float(self.targets[i])), self.targets[i]

    cfg = RecipeConfig(name="pair", model="spiking_resnet18", T=2, smoke=True, tensorboard=False, plots=False,
                       out_dir=tmp_path, dataset="cifar10")  # dataset and --data-root are not needed
    run_dir = run(cfg, train_set=Blobs(), test_set=Blobs())
    result = json.loads((run_dir / "results.json").read_text())["runs"][0]
    assert len(result["acc_per_step"]) == 2 and 0 <= result["test_acc"] <= 1
    with pytest.raises(ValueError, match="--num-classes"):
        run(cfg, train_set=torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4).long()),
            test_set=torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 8), torch.zeros(4).long()))


# ------------------------------------------------------------------------------ the demo recipe
def test_demo_prints_one_table_and_writes_the_figures(tmp_path, capsys):
    demo = load_script(REPO / "recipes" / "nmnist_demo.py")
    recipe = dataclasses.replace(demo.CONFIG, epochs=1, T=3, batch_size=8, tensorboard=False, out_dir=tmp_path)
    folder = demo.main(demo.Demo(recipe=recipe, limit=16))
    out = capsys.readouterr().out
    table = (folder / "table.txt").read_text()
    assert table in out and f"figures: {folder}/variants.png" in out
    lines = table.splitlines()
    assert lines[0].split(" | ")[:4] == ["variant ", "test acc %", "best %", "acc % of timestep t = 1..T alone"]
    assert [line.split(" | ")[0].strip() for line in lines[2:]] == list(demo.VARIANTS)
    rows = json.loads((folder / "variants.json").read_text())["rows"]
    for row in rows:
        assert len(row["acc_per_step"]) == 3 and sum(row["factors"]) == pytest.approx(1.0)
        if "TWO" not in row["variant"]:
            assert row["factors"] == [pytest.approx(1 / 3)] * 3
        plots = Path(row["run_dir"]) / "seed-0" / "plots"
        assert {p.name for p in plots.iterdir()} == {"curves.png", "acc_per_timestep.png", "two_factors.png",
                                                     "firing_rate.png", "epoch_time.png"}
    assert (folder / "variants.png").is_file()


def test_demo_recipe_learns(tmp_path):
    """3 epochs on 300 embedded N-MNIST recordings (T = 4, MSG and TWO on) reach >= 60 % test
    accuracy on the 100 held-out recordings (81 % when written); chance is 10 %."""
    demo = load_script(REPO / "recipes" / "nmnist_demo.py")
    cfg = dataclasses.replace(demo.CONFIG, T=4, epochs=3, train_limit=300, plots=False, out_dir=tmp_path)
    result = json.loads((run(cfg) / "results.json").read_text())["runs"][0]
    assert result["test_acc"] >= 0.6, result


# ------------------------------------------------------------------------------ faults (issue 9)
def _count_allreduces(rank: int, world: int, port: int, out: Path) -> None:
    """One of two gloo ranks: 4 micro-batches, accumulation 2; counts DDP's all-reduces."""
    import os

    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2, step_scheduler_with_optimizer=False)
    torch.manual_seed(0)
    net = StepLogits()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net, optimizer, loader = accelerator.prepare(net, optimizer, toy_loader(n=32, batch=4))
    calls = []

    def counting_hook(state, bucket):
        calls.append(bucket.index())
        return default_hooks.allreduce_hook(state, bucket)

    net.register_comm_hook(None, counting_hook)
    train_one_epoch(accelerator, TemporalWeightedHead(net, T), optimizer, loader, nn.CrossEntropyLoss())
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    torch.save({"allreduces": len(calls), "weights": weights}, out / f"rank{rank}.pt")


def test_gradient_accumulation_all_reduces_once_per_optimizer_step(tmp_path):
    """Two gloo ranks, 4 micro-batches each, accumulation 2: 2 all-reduces per rank, not 4."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_count_allreduces, args=(2, port, tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["allreduces"] for r in ranks] == [2, 2]
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])  # the last micro-batch did synchronise


def _small(out: Path, **changes) -> RecipeConfig:
    fields = dict(name="r", dataset="nmnist", model="spiking_resnet18", img_size=16, T=2, epochs=2, seeds=(0,),
                  batch_size=4, train_limit=8, eval_limit=4, num_workers=0, frame_cache=False, keep_checkpoints=2,
                  tensorboard=False, plots=False, out_dir=out)
    return RecipeConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run (checkpoints of epochs 1 and 2 kept)."""
    cfg = _small(tmp_path_factory.mktemp("finished"))
    return cfg, run(cfg)


def test_extending_a_finished_run_follows_the_replanned_cosine(finished, tmp_path):
    import math
    import shutil

    from sparsegrad.train import load_checkpoint
    from sparsegrad.train.config import learning_rate

    cfg, run_dir = finished
    shutil.copytree(run_dir, tmp_path / "run")
    run(dataclasses.replace(cfg, epochs=4, resume=tmp_path / "run"))
    history = load_checkpoint(tmp_path / "run" / "seed-0" / "checkpoints")[1]["history"]
    lr = learning_rate(cfg)
    assert [h["lr"] for h in history] == pytest.approx(
        [lr, lr / 2] + [lr * (1 + math.cos(math.pi * e / 4)) / 2 for e in (2, 3)])  # never 0


def test_resuming_with_fewer_epochs_than_trained_is_an_error(finished):
    cfg, run_dir = finished
    before = (run_dir / "config.json").read_text()
    with pytest.raises(ValueError, match=r"--epochs 1 is fewer than the 2 epochs already trained in .*state-e0002"):
        run(dataclasses.replace(cfg, epochs=1, resume=run_dir))
    assert (run_dir / "config.json").read_text() == before


@pytest.mark.parametrize("damaged", ["state-e0002.pt", "model-e0002.safetensors"])
def test_truncated_checkpoint_names_the_file_and_an_earlier_one(finished, tmp_path, damaged):
    import shutil

    from sparsegrad.train.checkpoint import DamagedCheckpointError

    cfg, run_dir = finished
    shutil.copytree(run_dir, tmp_path / "run")
    folder = tmp_path / "run" / "seed-0" / "checkpoints"
    data = (folder / damaged).read_bytes()
    (folder / damaged).write_bytes(data[: len(data) // 2])
    (tmp_path / "run" / "seed-0" / "result.json").unlink()
    with pytest.raises(DamagedCheckpointError, match=rf"{folder / damaged} is damaged .*the earlier checkpoint "
                                                     rf"{folder / 'state-e0001.pt'} can be used instead"):
        run(dataclasses.replace(cfg, resume=tmp_path / "run"))


def test_a_failed_ablation_leaves_no_folder(tmp_path):
    from sparsegrad.train import run_variants

    cfg = _small(tmp_path / "runs", dataset="cifar10dvs", data_root=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="--data-root"):
        run_variants(cfg, {"none": {"msg": False}, "MSG": {"msg": True}}, kind="ablation")
    assert not (tmp_path / "runs").exists()


def _train_process(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sparsegrad.train", "--dataset", "nmnist", "--model", "spiking_resnet18",
            "--img-size", "16", "--T", "2", "--epochs", "2", "--seeds", "0", "--batch-size", "4", "--train-limit", "12",
            "--eval-limit", "4", "--num-workers", "0", "--no-frame-cache", "--keep-checkpoints", "2",
            "--no-tensorboard", "--no-plots", "--name", "crash", "--out-dir", str(out), *extra]


def _final_state(run_dir: Path) -> tuple[dict, dict]:
    from sparsegrad.train import load_checkpoint

    weights, state = load_checkpoint(run_dir / "seed-0" / "checkpoints" / "state-e0002.pt")
    for row in state["history"]:
        for key in [k for k in row if k.endswith("time_s")]:
            del row[key]
    del state["config"]  # holds --resume
    return weights, state


def _assert_same(a, b, where="state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted run, as a separate process."""
    import os

    out = tmp_path_factory.mktemp("straight")
    subprocess.run(_train_process(out), env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    (run_dir,) = out.glob("crash-*")
    return run_dir


@pytest.mark.parametrize("pause_at", ["step:4", "save:2"], ids=["mid-epoch", "inside-checkpoint-write"])
def test_kill_9_and_resume_equals_an_uninterrupted_run(tmp_path, straight, pause_at):
    """A run killed with SIGKILL in epoch 2 (after its first optimizer step, or with the state
    file of epoch 2 written to its temporary name but not renamed), then resumed, ends bit for bit
    where an uninterrupted run ends: weights, optimizer, scheduler, RNGs, TWO state, MSG generator
    and statistics, history. The half-written checkpoint is never picked up."""
    import os
    import signal
    import time

    from sparsegrad.train import latest_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    paused = tmp_path / "paused"
    proc = subprocess.Popen(_train_process(tmp_path / "killed"), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**env, "SPARSEGRAD_PAUSE_AT": pause_at, "SPARSEGRAD_PAUSED": str(paused)})
    deadline = time.monotonic() + 600
    while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert paused.exists(), f"the run did not reach {pause_at} (exit code {proc.poll()})"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (run_dir,) = (tmp_path / "killed").glob("crash-*")
    folder = run_dir / "seed-0" / "checkpoints"
    assert latest_checkpoint(folder).name == "state-e0001.pt"
    assert (folder / ".state-e0002.pt.tmp").exists() == (pause_at == "save:2")
    resumed = subprocess.run(_train_process(tmp_path / "killed", "--resume", str(run_dir)), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr and "state-e0001.pt" in resumed.stdout + resumed.stderr
    assert not list(folder.glob(".*.tmp"))
    (w1, s1), (w2, s2) = _final_state(straight), _final_state(run_dir)
    _assert_same(w1, w2, "weights")
    _assert_same(s1, s2)
    assert s2["ranks"][0]["msg"]["stats"]["dropped"] > 0 and len(set(s2["ranks"][0]["factors"])) > 1


# ------------------------------------------------------------------------------ small ones (issues 17, 18)
def test_paths_given_as_str_are_paths():
    cfg = RecipeConfig(out_dir="runs", data_root="~/data", cache_dir="cache", resume="runs/r")
    assert (cfg.out_dir, cfg.data_root, cfg.cache_dir, cfg.resume) == (
        Path("runs"), Path("~/data"), Path("cache"), Path("runs/r"))
    assert cfg.out_dir / "frame_cache" == Path("runs/frame_cache")  # a str raised TypeError here


def test_a_single_split_folder_too_small_for_the_default_split_says_so(tmp_path):
    root = write_image_folder(tmp_path / "pngs", {"a": 12, "b": 3})
    cfg = RecipeConfig(dataset="imagefolder", data_root=root, model="spiking_resnet18", T=2, smoke=True,
                       out_dir=tmp_path / "runs", tensorboard=False, plots=False)
    with pytest.raises(ValueError, match=r"is a single split .*cut by the default --folds 10 --fold 9 .*needs at least "
                                         r"10 samples per class; class\(es\) \{1: 3\}.*Pass --folds K --fold k"):
        run(cfg)
    with pytest.raises(ValueError, match=r"^--folds 4 needs at least 4 samples"):  # the user's own --folds
        run(dataclasses.replace(cfg, folds=4))
    assert not (tmp_path / "runs").exists()


def test_check_data_lists_every_unreadable_file_before_training(tmp_path):
    root = write_image_folder(tmp_path / "pngs", {"a": 10, "b": 10})
    for name in ("a/3.png", "b/7.png"):
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    cfg = RecipeConfig(dataset="imagefolder", data_root=root, model="spiking_resnet18", T=2, smoke=True, folds=2,
                       out_dir=tmp_path / "runs", tensorboard=False, plots=False, check_data=True)
    with pytest.raises(ValueError, match=r"--check-data: 2 file\(s\) cannot be read") as caught:
        run(cfg)
    assert str(root / "a" / "3.png") in str(caught.value) and str(root / "b" / "7.png") in str(caught.value)
    assert not (tmp_path / "runs").exists()


def test_help_names_the_module_and_says_each_default_once():
    proc = subprocess.run([sys.executable, "-m", "sparsegrad.train", "--help"], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env={**__import__("os").environ, "COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: python -m sparsegrad.train [-h]")
    entries = [line for line in proc.stdout.splitlines() if line.lstrip("│ ").startswith("--")]
    assert len(entries) > 40 and "--check-data" in proc.stdout
    assert [e for e in entries if e.lower().count("default") > 1] == []
