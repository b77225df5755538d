"""Tests of resuming a run (issue 17 items 2 and 5, issue 18 item 2): the fields a resume may
change and those it refuses, the checkpoint checked against the network before anything is
deleted, ``--resume RUN`` alone, and Ctrl-C / SIGTERM ending with a way to resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
import tyro

from sparsegrad.train import RecipeConfig, run
from sparsegrad.train.config import effective_config
from sparsegrad.train.cli import _resumed_default, main
from sparsegrad.train.resume import MUTABLE, check_config, check_fits, recorded_config
from sparsegrad.train.store import RunFolder, write_json

REPO = Path(__file__).resolve().parents[1]


def _small(out: Path, **changes) -> RecipeConfig:
    fields = dict(name="r", dataset="nmnist", model="spiking_resnet18", img_size=16, T=2, epochs=2, seeds=(0,),
                  batch_size=4, train_limit=8, eval_limit=4, num_workers=0, frame_cache=False, keep_checkpoints=2,
                  tensorboard=False, plots=False, out_dir=out)
    return RecipeConfig(**{**fields, **changes})


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ which fields may change
def _recorded(tmp_path: Path, cfg: RecipeConfig) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    write_json(folder.config, {"config": cfg.jsonable(), "effective": cfg.jsonable()})
    return folder


REFUSED = {"dataset": "cifar10dvs", "data_root": "/elsewhere", "train_limit": 64, "eval_limit": None, "folds": 5,
           "fold": 1, "T": 4, "model": "spiking_convnet_s", "surrogate": "atan", "p": 0.25, "msg": False, "two": False,
           "beta": 0.5, "batch_size": 8, "lr": 0.1, "smoke": True, "img_size": 32, "autoaugment": False,
           "grad_accum": 2, "mixed_precision": "bf16", "balanced_sampler": True}
ALLOWED = {"download": True, "epochs": 5, "num_workers": 2, "tensorboard": True, "plots": True, "out_dir": Path("/other"),
           "seeds": (0, 1), "keep_checkpoints": 3, "checkpoint_every": 2, "name": "again", "check_data": True,
           "resume": Path("/run"), "cache_dir": Path("/cache"), "frame_cache": True, "paper_result": "90.0"}


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_a_resume_refuses_a_field_that_changes_the_data_or_the_result(tmp_path, field):
    cfg = _small(tmp_path, folds=3 if field == "fold" else None)
    run = _recorded(tmp_path, cfg)
    changed = dataclasses.replace(cfg, **{field: REFUSED[field]})
    flag = "--(no-)?" + field.replace("_", "-")
    with pytest.raises(ValueError, match=rf"this run was trained with {flag}\b.*, not {flag}\b.*Nothing was changed"):
        check_config(run, changed, "--resume x")


@pytest.mark.parametrize("field", sorted(ALLOWED))
def test_a_resume_may_change_what_cannot_change_the_result(tmp_path, field):
    cfg = _small(tmp_path)
    run = _recorded(tmp_path, cfg)
    changed = check_config(run, dataclasses.replace(cfg, **{field: ALLOWED[field]}), "--resume x")
    assert list(changed) == ([] if field == "resume" else [field])


def test_every_field_is_decided_and_several_are_named_at_once(tmp_path):
    names = {f.name for f in dataclasses.fields(RecipeConfig)}
    assert MUTABLE == set(ALLOWED)  # a field added later is refused until it is decided here
    assert names - MUTABLE == set(REFUSED) | {"base_lr", "weight_decay", "label_smoothing", "msg_granularity",
                                              "msg_rescale", "two_update", "alpha", "stem", "bn_mode", "num_classes",
                                              "augment"}
    cfg = _small(tmp_path)
    with pytest.raises(ValueError, match=r"trained with --model spiking_resnet18, --no-msg, --T 2, not --model vggsnn, "
                                         r"--msg, --T 4\. A resume may change only --cache-dir, --check-data"):
        check_config(_recorded(tmp_path, dataclasses.replace(cfg, msg=False)),
                     dataclasses.replace(cfg, model="vggsnn", T=4), "--resume x")


# ------------------------------------------------------------------------------ nothing deleted on a misfit
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run, checkpoints of epochs 1 and 2 kept."""
    cfg = _small(tmp_path_factory.mktemp("finished"))
    return cfg, run(cfg)


@pytest.mark.parametrize("change", [{"model": "spiking_convnet_s"}, {"T": 3}, {"train_limit": 4}])
def test_a_resume_that_does_not_fit_deletes_and_writes_nothing(finished, change):
    """Issue 17 item 5: resuming seed 0 from epoch 1 with another model used to delete the
    run's epoch-2 checkpoint and result and rewrite its config.json before failing on the load."""
    cfg, run_dir = finished
    before = _snapshot(run_dir)
    field, value = next(iter(change.items()))
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ValueError, match=rf"this run was trained with {flag} {cfg.jsonable()[field]}, not {flag} {value}"):
        run(dataclasses.replace(cfg, **change, resume=run_dir / "seed-0" / "checkpoints" / "state-e0001.pt"))
    assert _snapshot(run_dir) == before


def _convnet(channels):
    return timm.create_model("spiking_convnet_s", channels=channels, T=2, num_classes=3, in_chans=3, img_size=8)


def _blobs(n=12):
    x = torch.stack([torch.full((3, 8, 8), float(i % 3)) for i in range(n)])
    return torch.utils.data.TensorDataset(x, torch.arange(n) % 3)


def test_a_checkpoint_is_checked_against_the_network_before_anything_is_touched(tmp_path):
    """A built model of the same class (so the recorded --model matches) but other widths:
    refused by its weight shapes; the run is left as it was."""
    cfg = RecipeConfig(name="given", T=2, num_classes=3, epochs=1, seeds=(0,), batch_size=4, num_workers=0, tensorboard=False,
                       plots=False, out_dir=tmp_path, keep_checkpoints=2)
    data = dict(train_set=_blobs(), test_set=_blobs(6))
    run_dir = run(cfg, model=_convnet((4, 8)), **data)
    before = _snapshot(run_dir)
    state = run_dir / "seed-0" / "checkpoints" / "state-e0001.pt"
    with pytest.raises(ValueError, match=rf"checkpoint {state} does not fit --model SpikingConvNet.*: \[4, 3, 3, 3\] "
                                         r"in the checkpoint, \[6, 3, 3, 3\] in the model"):
        run(dataclasses.replace(cfg, epochs=2, resume=state), model=_convnet((6, 8)), **data)
    assert _snapshot(run_dir) == before
    with pytest.raises(ValueError, match=r"TWO factors for T = 2, --T is 3"):
        check_fits(state, dataclasses.replace(cfg, T=3), _convnet((4, 8)))
    check_fits(state, cfg, _convnet((4, 8)))  # the network it was trained with fits


# ------------------------------------------------------------------------------ --resume RUN alone
def test_resume_alone_reads_the_run_and_flags_override_it(finished):
    cfg, run_dir = finished
    assert recorded_config(run_dir) == cfg
    assert recorded_config(run_dir / "seed-0" / "checkpoints" / "state-e0002.pt") == cfg
    args = ["--resume", str(run_dir), "--epochs", "3"]
    parsed = tyro.cli(RecipeConfig, default=_resumed_default(args, None), args=args)
    assert parsed == dataclasses.replace(cfg, epochs=3, resume=run_dir)
    before = _snapshot(run_dir)
    with pytest.raises(ValueError, match=r"this run was trained with --model spiking_resnet18, not --model vggsnn"):
        main(args=["--resume", str(run_dir), "--model", "vggsnn"])
    assert _snapshot(run_dir) == before


def _train_process(out: Path) -> list[str]:
    return [sys.executable, "-m", "sparsegrad.train", "--dataset", "nmnist", "--model", "spiking_plain2",
            "--img-size", "16", "--T", "2", "--epochs", "2", "--seeds", "0", "--batch-size", "4", "--train-limit", "8",
            "--eval-limit", "4", "--num-workers", "0", "--no-frame-cache", "--no-tensorboard", "--no-plots",
            "--name", "stop", "--out-dir", str(out)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_run_says_where_and_resumes_from_its_folder_alone(tmp_path, signum):
    """Stopped in epoch 2 (after its first optimizer step): a message naming the epoch, the
    seed, the last checkpoint and the command to resume, exit 128 + signal, no traceback; that
    command, ``--resume RUN`` and nothing else, then finishes the run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    paused = tmp_path / "paused"
    proc = subprocess.Popen(_train_process(tmp_path / "runs"), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**env, "SPARSEGRAD_PAUSE_AT": "step:3", "SPARSEGRAD_PAUSED": str(paused)})
    deadline = time.monotonic() + 600
    while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert paused.exists(), f"the run did not reach step 3 (exit code {proc.poll()})"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    (run_dir,) = (tmp_path / "runs").glob("stop-*")
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = run_dir / "seed-0" / "checkpoints" / "state-e0001.pt"
    command = f"python -m sparsegrad.train --resume {run_dir}"
    assert (f"stopped during epoch 2 of seed 0; the last checkpoint is {last} (epoch 1); resume with: {command}"
            in err), err[-3000:]
    resumed = subprocess.run([sys.executable, "-m", "sparsegrad.train", "--resume", str(run_dir)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {last}" in resumed.stdout + resumed.stderr
    result = json.loads((run_dir / "results.json").read_text())["runs"][0]
    assert result["complete"] and result["epochs"] == 2
    assert json.loads((run_dir / "config.json").read_text())["resumes"][0]["changed"] == {}


# ------------------------------------------------------------------------------ the study
def test_the_study_never_mixes_quick_and_full_runs(tmp_path):
    """Issue 17 item 2: the full study resumed, or kept as finished, the quick one's runs (64
    training samples) in the same folder. Now each has its own folder, and a folder holding
    runs of the other kind is refused before anything trains, finished runs included."""
    from helpers import load_script

    study = load_script(REPO / "recipes" / "study.py")
    assert study.resolve(study.StudyConfig(quick=True)).out_dir == Path("runs/study-quick")
    assert study.resolve(study.StudyConfig()).out_dir == Path("runs/study")
    quick, full = (study.resolve(study.StudyConfig(quick=q, out_dir=tmp_path, nmnist_epochs=1, cifar10_epochs=1))
                   for q in (True, False))
    done = study.ablation_runs(study.tasks(quick), quick.seeds, tmp_path)[0]
    done.run_dir.mkdir(parents=True)
    effective = effective_config(done.config).jsonable()
    write_json(RunFolder(done.run_dir).config, {"config": done.config.jsonable(), "effective": effective})
    write_json(RunFolder(done.run_dir).results, {"runs": [{"complete": True, "epochs": 1}]})
    study._check_resumable(study.ablation_runs(study.tasks(quick), quick.seeds, tmp_path))  # the same kind: fine
    with pytest.raises(ValueError, match=rf"the run in {done.run_dir}: this run was trained with --train-limit 64, "
                                         r"--eval-limit 32, not --train-limit None, --eval-limit None"):
        study._check_resumable(study.ablation_runs(study.tasks(full), full.seeds, tmp_path))
