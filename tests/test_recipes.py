"""The paper's recipes end to end: every row's smoke run on real files in each dataset's native
format, exact resume, checkpoints, the ablation and p-sweep runners, and two CPU processes.

Data: the embedded N-MNIST recordings; CIFAR-10/100 python pickles packed here from the real
CIFAR-10 JPEGs of ``data/cifar10_small`` (torchvision's own reader loads them; only its MD5 check of
the official release is replaced by an existence check); an ImageNet-style ImageFolder of
those JPEGs; CIFAR10-DVS (AEDAT 2.0) and N-Caltech101 (ATIS .bin) recordings written with the
writers of ``test_data_neuromorphic.py``. Smoke runs use T = 2 (and 32-px ImageNet crops) to
fit the CPU budget; everything else is the row's recipe.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import tyro
from PIL import Image
from safetensors.torch import load_file

from sparsegrad.data.cifar10dvs import CLASSES as DVS_CLASSES
from sparsegrad.train import RecipeConfig, latest_checkpoint, load_checkpoint, run, save_checkpoint
from sparsegrad.train.checkpoint import fingerprint, list_checkpoints, rng_state, set_rng_state
from sparsegrad.train.cli import VARIANTS_CLI
from sparsegrad.train.config import effective_config
from sparsegrad.train.paper import RECIPES

from helpers import load_script, random_events, write_aedat2, write_atis_bin

REPO = Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fast(cfg: RecipeConfig, out: Path, **changes) -> RecipeConfig:
    """A smoke configuration cheap enough for the test CPU: T = 2, no TensorBoard or plots."""
    return dataclasses.replace(cfg, **{"smoke": True, "T": 2, "out_dir": out, "tensorboard": False, "plots": False,
                                       **changes})


# ----------------------------------------------------------------------------- data in native formats
@pytest.fixture(scope="module")
def jpegs(sample_data) -> dict[str, list[Path]]:
    folder = sample_data / "cifar10_small" / "test"
    return {c: sorted((folder / c).glob("*.jpg"))[:6] for c in CIFAR_CLASSES}


def _pixels(paths) -> np.ndarray:
    """[N, 3072] uint8 in CIFAR's row layout: 1024 red, 1024 green, 1024 blue values."""
    return np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1).reshape(-1) for p in paths])


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory, jpegs) -> Path:
    """cifar-10-batches-py/ and cifar-100-python/ in torchvision's python-pickle format, holding
    real CIFAR-10 images: 5 training batches of 10 (one per class) and a test batch of 10."""
    root = tmp_path_factory.mktemp("cifar")
    batches = [[jpegs[c][i] for c in CIFAR_CLASSES] for i in range(6)]
    labels = list(range(10))
    for i, paths in enumerate(batches[:5], start=1):
        _pickle(root / "cifar-10-batches-py" / f"data_batch_{i}",
                {"batch_label": f"training batch {i} of 5", "labels": labels, "data": _pixels(paths),
                 "filenames": [p.name for p in paths]})
    _pickle(root / "cifar-10-batches-py" / "test_batch",
            {"batch_label": "testing batch 1 of 1", "labels": labels, "data": _pixels(batches[5]),
             "filenames": [p.name for p in batches[5]]})
    _pickle(root / "cifar-10-batches-py" / "batches.meta",
            {"label_names": CIFAR_CLASSES, "num_cases_per_batch": 10, "num_vis": 3072})
    # CIFAR-100: the same images under fine labels 0, 11, ..., 99 (coarse = fine // 5)
    fine = [11 * c for c in range(10)]
    for split, paths in (("train", [p for b in batches[:5] for p in b]), ("test", batches[5])):
        n = len(paths)
        _pickle(root / "cifar-100-python" / split,
                {"filenames": [p.name for p in paths], "batch_label": split, "data": _pixels(paths),
                 "fine_labels": [fine[i % 10] for i in range(n)],
                 "coarse_labels": [fine[i % 10] // 5 for i in range(n)]})
    _pickle(root / "cifar-100-python" / "meta",
            {"fine_label_names": [f"class_{i}" for i in range(100)],
             "coarse_label_names": [f"super_{i}" for i in range(20)]})
    return root


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the official files' MD5s even with download=False; files written here
    cannot match them, so the check becomes an existence check (the reading code is unchanged)."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory, jpegs) -> Path:
    """ImageNet's ImageFolder layout (train/<class>/, val/<class>/) with copies of CIFAR JPEGs."""
    root = tmp_path_factory.mktemp("imagenet")
    for split, picks in (("train", slice(0, 4)), ("val", slice(4, 6))):
        for c, paths in jpegs.items():
            (root / split / c).mkdir(parents=True)
            for p in paths[picks]:
                shutil.copy(p, root / split / c / p.name.replace(".jpg", ".JPEG"))
    return root


@pytest.fixture(scope="module")
def dvs_root(tmp_path_factory) -> Path:
    """CIFAR10-DVS: 10 classes x 10 AEDAT 2.0 recordings of 300 random events (128 x 128)."""
    root, rng = tmp_path_factory.mktemp("cifar10dvs"), np.random.default_rng(0)
    for name in DVS_CLASSES:
        for i in range(10):
            write_aedat2(root / name / f"cifar10_{name}_{i}.aedat", *random_events(rng, 300, 128, 128))
    return root


@pytest.fixture(scope="module")
def caltech_root(tmp_path_factory) -> Path:
    """N-Caltech101 (tonic's layout): 3 classes x 10 ATIS .bin recordings (240 x 180 sensor)."""
    root, rng = tmp_path_factory.mktemp("ncaltech"), np.random.default_rng(1)
    for name in ("BACKGROUND_Google", "accordion", "airplanes"):
        for i in range(1, 11):
            path = root / "NCALTECH101" / "Caltech101" / name / f"image_{i:04d}.bin"
            write_atis_bin(path, *random_events(rng, 300, 240, 180))
    return root


# ----------------------------------------------------------------------------- the rows' command lines
def test_recipe_cli_overrides_every_field():
    row = RECIPES["dvs_cifar10_vggsnn"]
    cfg = tyro.cli(RecipeConfig, default=row, args=[
        "--data-root", "/d", "--smoke", "--T", "3", "--seeds", "4", "5", "--no-msg", "--p", "0.25",
        "--surrogate", "atan", "--augment", "False", "--resume", "/r", "--img-size", "40"])
    assert cfg == dataclasses.replace(row, data_root=Path("/d"), smoke=True, T=3, seeds=(4, 5), msg=False,
                                      p=0.25, surrogate="atan", augment=False, resume=Path("/r"), img_size=40)
    smoke = effective_config(cfg, num_processes=2)
    assert (smoke.epochs, smoke.seeds, smoke.batch_size, smoke.train_limit, smoke.eval_limit) == (1, (4,), 4, 8, 4)
    smoke = effective_config(dataclasses.replace(cfg, grad_accum=3), num_processes=2)
    assert (smoke.batch_size, smoke.grad_accum, smoke.train_limit, smoke.eval_limit) == (12, 3, 24, 4)


# ----------------------------------------------------------------------------- smoke runs, every row
def _check_run(run_dir: Path, cfg: RecipeConfig, num_classes: int) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["effective"]["epochs"] == 1 and config["effective"]["smoke"]
    seed_dir = run_dir / f"seed-{cfg.seeds[0]}"
    with open(seed_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and 0 <= float(rows[0]["test_acc"]) <= 1
    assert {f"test_acc_t{t}" for t in (1, 2)} | {"factor_t1", "factor_t2", "msg_drop_frac", "lr"} <= set(rows[0])
    weights, state = load_checkpoint(seed_dir / "checkpoints")
    assert state["epoch"] == 1 and len(state["ranks"]) == 1
    head = [k for k in weights if k.endswith("fc.weight")][-1]
    assert weights[head].shape[0] == num_classes
    results = json.loads((run_dir / "results.json").read_text())
    rates = results["runs"][0]["firing_rate"]
    assert rates and all(0 <= r <= 1 for r in rates.values())
    return results


@pytest.mark.parametrize("name", RECIPES)
def test_smoke_run_of_every_row(name, tmp_path, request, capsys):
    roots = {"cifar10": "cifar_root", "cifar100": "cifar_root", "cifar10dvs": "dvs_root",
             "ncaltech101": "caltech_root", "imagenet": "imagenet_root"}
    row = RECIPES[name]
    dataset = row.dataset
    if dataset.startswith("cifar1"):
        request.getfixturevalue("no_md5")
    changes = {"data_root": request.getfixturevalue(roots[dataset])}
    if dataset == "imagenet":
        changes["img_size"] = 32  # 224-px SEW-ResNet34 steps are too slow for a CPU test
    if name == "dvs_cifar10_vggsnn":
        changes.update(tensorboard=True, plots=True)
    cfg = fast(row, tmp_path, **changes)
    run_dir = load_script(REPO / "recipes" / f"{name}.py").main(cfg, args=[])  # the script, its defaults = cfg
    out = capsys.readouterr().out
    assert run_dir.name.startswith(f"{name}-smoke-") and "smoke run" in out and "paper:" in out
    results = _check_run(run_dir, cfg, {"cifar100": 100, "imagenet": 1000, "ncaltech101": 101}.get(dataset, 10))
    if name == "dvs_cifar10_vggsnn":
        plots = {p.name for p in (run_dir / "seed-0" / "plots").iterdir()}
        assert plots == {"curves.png", "acc_per_timestep.png", "two_factors.png", "firing_rate.png",
                         "epoch_time.png"}
        assert any((run_dir / "seed-0" / "tensorboard").iterdir())
        assert len(results["runs"][0]["firing_rate"]) == 8  # VGGSNN: eight conv-BN-LIF layers


def test_cifar_pickles_are_real_cifar_format(cifar_root, jpegs, no_md5):
    from sparsegrad.data import build_static

    train = build_static("cifar10", cifar_root, train=True)
    assert len(train) == 50 and train.classes == CIFAR_CLASSES
    assert np.array_equal(train.data[3], np.asarray(Image.open(jpegs["cat"][0]).convert("RGB")))
    test = build_static("cifar100", cifar_root, train=False)
    assert len(test) == 10 and test.targets[9] == 99 and len(test.classes) == 100


# ----------------------------------------------------------------------------- checkpoints and resume
def _nmnist(out: Path, **changes) -> RecipeConfig:
    base = RecipeConfig(name="nmnist", dataset="nmnist", model="vggsnn", T=3, epochs=2, seeds=(0,), batch_size=4,
                        train_limit=8, eval_limit=4, augment=True, num_workers=0, keep_checkpoints=2,
                        tensorboard=False, plots=False, out_dir=out)
    return dataclasses.replace(base, **changes)


def _final(run_dir: Path):
    weights, state = load_checkpoint(run_dir / "seed-0" / "checkpoints")
    return weights, state


def test_resume_is_exact(tmp_path):
    """Two epochs straight = one epoch, resume (from the run folder, or from the checkpoint
    file), one epoch: bitwise-equal weights, optimizer state, TWO factors and MSG state."""
    cfg = _nmnist(tmp_path)
    straight = run(cfg)
    weights, state = _final(straight)
    factors = state["ranks"][0]["two"]["factors"]
    after_epoch_1 = [state["history"][0][f"factor_t{t}"] for t in (1, 2, 3)]
    assert state["epoch"] == 2 and len(set(after_epoch_1)) > 1  # the resumed epoch starts from moved factors
    assert state["ranks"][0]["weights_sha256"] == fingerprint(weights)
    assert state["ranks"][0]["msg"]["stats"]["dropped"] > 0

    interrupted = tmp_path / "interrupted"
    shutil.copytree(straight, interrupted)
    for path in (interrupted / "seed-0" / "checkpoints").glob("*-e0002.*"):
        path.unlink()  # as if killed during epoch 2
    (interrupted / "seed-0" / "result.json").unlink()
    from_file = tmp_path / "from_file"
    shutil.copytree(straight, from_file)

    for resumed in (run(dataclasses.replace(cfg, resume=interrupted)),
                    run(dataclasses.replace(cfg, resume=from_file / "seed-0" / "checkpoints" / "state-e0001.pt"))):
        again, again_state = _final(resumed)
        assert again_state["epoch"] == 2 and weights.keys() == again.keys()
        for key in weights:
            assert torch.equal(weights[key], again[key]), key
        assert torch.equal(factors, again_state["ranks"][0]["two"]["factors"])
        assert again_state["ranks"][0]["msg"]["stats"] == state["ranks"][0]["msg"]["stats"]
        for a, b in zip(state["optimizer"]["state"].values(), again_state["optimizer"]["state"].values()):
            assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
        assert again_state["scheduler"] == state["scheduler"]
        strip = [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in state["history"]]
        assert [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in again_state["history"]] == strip
        assert json.loads((resumed / "config.json").read_text())["resumes"]

    # a finished run resumes to nothing new: the seed is kept as it is
    before = (straight / "seed-0" / "result.json").read_text()
    run(dataclasses.replace(cfg, resume=straight))
    assert (straight / "seed-0" / "result.json").read_text() == before


def test_checkpoint_files_atomic_pruned_and_safe_to_load(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(3)}
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, weights, {"epoch": epoch, "np": torch.zeros(2)}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["state-e0002.pt", "state-e0003.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-e0002.safetensors", "model-e0003.safetensors", "state-e0002.pt", "state-e0003.pt"]
    assert load_file(str(tmp_path / "model-e0003.safetensors"))["w"].equal(weights["w"])
    # a state file without its weights (a crash between the two writes) is not a checkpoint
    (tmp_path / "model-e0003.safetensors").unlink()
    assert latest_checkpoint(tmp_path).name == "state-e0002.pt"
    assert load_checkpoint(tmp_path)[1]["epoch"] == 2
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "state-e0003.pt")


def test_rng_state_round_trip_through_a_weights_only_load(tmp_path):
    import random

    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


# ----------------------------------------------------------------------------- ablation and sweep
def test_ablation_table2_and_its_resume(tmp_path, dvs_root, capsys):
    ablation = load_script(REPO / "recipes" / "ablation.py")
    args = ["dvs_cifar10_vggsnn", "--data-root", str(dvs_root), "--smoke", "--T", "2", "--out-dir", str(tmp_path),
            "--no-tensorboard", "--no-plots", "--variants", "none", "MSG&TWO"]
    parsed = tyro.cli(ablation.Ablation, config=VARIANTS_CLI, args=args)
    assert parsed.variants == ("none", "MSG&TWO") and parsed.recipe.model == "vggsnn" and parsed.recipe.T == 2
    folder = ablation.main(parsed)
    out = capsys.readouterr().out
    assert "Table 2 for dvs_cifar10_vggsnn" in out and "83.90" in out and "82.70" in out
    rows = json.loads((folder / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["none", "MSG&TWO"]
    configs = [json.loads((Path(r["run_dir"]) / "config.json").read_text())["effective"] for r in rows]
    assert [(c["msg"], c["two"]) for c in configs] == [(False, False), (True, True)]
    assert rows[0]["factors"] == [0.5, 0.5]  # no TWO: uniform factors
    assert (folder / "ablation.png").is_file() and (folder / "table.txt").read_text().startswith("variant")
    # resuming the ablation keeps finished variants
    parsed = tyro.cli(ablation.Ablation, config=VARIANTS_CLI, args=args + ["--resume", str(folder)])
    assert ablation.main(parsed) == folder
    assert capsys.readouterr().out.count("finished earlier, kept") == 2


def test_sweep_p_runs_and_plots(tmp_path, capsys):
    sweep = load_script(REPO / "recipes" / "sweep_p.py")
    recipe = _nmnist(tmp_path, smoke=True, T=2, name="dvs_cifar10_vggsnn")
    folder = sweep.main(sweep.Sweep(recipe=recipe, ps=(0.0, 0.5)))
    rows = json.loads((folder / "sweep.json").read_text())["rows"]
    assert [r["p"] for r in rows] == [0.0, 0.5] and (folder / "sweep_p.png").is_file()
    assert "Fig. 5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--ps"):
        sweep.main(sweep.Sweep(recipe=recipe, ps=(1.5,)))


# ----------------------------------------------------------------------------- two CPU processes
def test_two_cpu_processes_stay_identical(tmp_path):
    """torchrun with 2 CPU processes (gloo): the run finishes, and after every checkpoint both
    processes hold bitwise-equal weights and equal TWO factors."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "recipes" / "dvs_cifar10_vggsnn.py"), "--dataset", "nmnist", "--T", "2", "--epochs", "2",
           "--seeds", "0", "--batch-size", "4", "--train-limit", "8", "--eval-limit", "8", "--num-workers", "0",
           "--keep-checkpoints", "2", "--no-tensorboard", "--no-plots", "--out-dir", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = tmp_path.glob("dvs_cifar10_vggsnn-*")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["environment"]["processes"] == 2 and config["per_process_batch"] == 2
    states = list_checkpoints(run_dir / "seed-0" / "checkpoints")
    assert [s.name for s in states] == ["state-e0001.pt", "state-e0002.pt"]
    for path in states:
        weights, state = load_checkpoint(path)
        ranks = state["ranks"]
        assert len(ranks) == 2 and state["num_processes"] == 2
        assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"] == fingerprint(weights)
        assert ranks[0]["factors"] == ranks[1]["factors"]
        assert torch.equal(ranks[0]["two"]["factors"], ranks[1]["two"]["factors"])
        assert ranks[0]["msg"]["stats"]["dropped"] != ranks[1]["msg"]["stats"]["dropped"]  # own masks (seeds)
    assert "different weights" not in proc.stdout + proc.stderr  # the engine's own check found no drift
