"""Unit tests of the engine's pieces: the per-epoch record, the run folder store, checkpoints,
the re-plannable cosine, and the import graph of sparsegrad.train (issue 16)."""

from __future__ import annotations

import ast
import dataclasses
import errno
import json
import math
import os
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from sparsegrad.train import checkpoint as ckpt
from sparsegrad.train.record import EpochRecord, read_step_columns, step_columns
from sparsegrad.train.schedule import cosine_schedule, replan
from sparsegrad.train.state import _lambda_state
from sparsegrad.train.store import (RunFolder, SeedFolder, create_run_dir, locate, resume_points, slug, write_csv,
                                    write_json)

TRAIN = Path(__file__).resolve().parents[1] / "sparsegrad" / "train"


def _record(epoch: int = 3, T: int = 3) -> EpochRecord:
    return EpochRecord(epoch=epoch, lr=1e-3 / 3, train_loss=1.25, train_acc=0.5, test_loss=0.1 + 0.2, test_acc=2 / 3,
                       best_test_acc=0.75, test_acc_per_step=tuple(t / 7 for t in range(T)),
                       factors=tuple([1 / T] * T), train_time_s=1.5, eval_time_s=0.25, epoch_time_s=1.75, msg_p=0.5,
                       msg_seen=1000, msg_dropped=497, msg_drop_frac=0.497)


# ------------------------------------------------------------------------------ record
def test_record_row_has_one_column_per_timestep_and_round_trips():
    record = _record()
    row = record.row()
    assert [k for k in row if k.startswith(("test_acc_t", "factor_t"))] == [
        "test_acc_t1", "test_acc_t2", "test_acc_t3", "factor_t1", "factor_t2", "factor_t3"]
    assert EpochRecord.from_row(row) == record
    assert "epoch" not in record.scalars() and record.scalars()["test_acc_t2"] == 1 / 7


def test_record_round_trips_bit_for_bit_through_metrics_csv(tmp_path):
    folder = SeedFolder(tmp_path / "seed-0")
    folder.path.mkdir()
    history = [_record(1), _record(2)]
    folder.write_history(history)
    assert folder.read_history() == history  # repr of a float reads back exactly
    assert isinstance(folder.read_history()[0].msg_seen, int)


@pytest.mark.parametrize(("drop", "match"), [
    ("factor_t2", r"needs the columns factor_t1..factor_tT"),
    ("test_acc_t1", r"needs the columns test_acc_t1..test_acc_tT"),
    ("msg_seen", r"needs the column 'msg_seen'"),
])
def test_a_row_missing_a_column_is_refused_by_name(tmp_path, drop, match):
    row = _record().row()
    del row[drop]
    with pytest.raises(ValueError, match=match):
        EpochRecord.from_row(row)
    folder = SeedFolder(tmp_path)
    write_csv(folder.metrics, [row])
    with pytest.raises(ValueError, match=rf"{folder.metrics}: .*{match}"):
        folder.read_history()


def test_a_column_that_is_not_a_number_is_named():
    with pytest.raises(ValueError, match=r"column 'lr' must be a number, got 'fast'"):
        EpochRecord.from_row({**_record().row(), "lr": "fast"})


def test_step_columns_read_back_in_time_order():
    row = step_columns("x_t", [float(t) for t in range(12)])
    assert read_step_columns(dict(reversed(list(row.items()))), "x_t") == tuple(float(t) for t in range(12))


# ------------------------------------------------------------------------------ store
def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file is whole
    monkeypatch.undo()
    write_json(path, {"a": 3, "p": tmp_path})
    assert json.loads(path.read_text()) == {"a": 3, "p": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_slug_is_one_folder_name_per_label():
    assert [slug(x) for x in ("MSG&TWO", "none", "MSG p=0.25", "p0.1", "+MSG&TWO")] == [
        "msg-and-two", "none", "msg-p-0.25", "p0.1", "msg-and-two"]


def test_create_run_dir_never_reuses_a_folder(tmp_path):
    accelerator = Accelerator(cpu=True)
    first, second = create_run_dir(accelerator, tmp_path, "x"), create_run_dir(accelerator, tmp_path, "x")
    assert first != second and first.is_dir() and second.is_dir() and second.name.startswith(first.name)


def test_a_folder_taken_between_the_look_and_the_mkdir_is_skipped(tmp_path, monkeypatch):
    """Issue 17 item 10: another process creates the folder just before this one does (the
    race of two runs started in the same second); the run takes the next name."""
    accelerator = Accelerator(cpu=True)
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    mkdir = Path.mkdir
    raced = []

    def racing_mkdir(self, *args, **kwargs):
        if self.name == "x-20260101-000000" and not raced:
            raced.append(self)
            mkdir(self)  # the other process wins
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    assert create_run_dir(accelerator, tmp_path, "x") == tmp_path / "x-20260101-000000-1" and raced


def _create_in_a_process(out: str, start, results) -> None:
    import time

    time.strftime = lambda fmt: "20260101-000000"
    start.wait()
    results.put(str(create_run_dir(Accelerator(cpu=True), out, "x")))


def test_runs_created_in_the_same_second_by_many_processes_never_collide(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(6), context.Queue()
    procs = [context.Process(target=_create_in_a_process, args=(str(tmp_path / "runs"), start, results))
             for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * 6
    made = sorted(results.get(timeout=10) for _ in procs)
    assert len(set(made)) == 6 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        Path(m).name for m in made)


def _run_with_checkpoints(root: Path, epochs: tuple[int, ...], seed: int = 0) -> RunFolder:
    run = RunFolder(root)
    root.mkdir(parents=True)
    write_json(run.config, {})
    for epoch in epochs:
        ckpt.save_checkpoint(run.seed(seed).checkpoints, epoch, {"w": torch.ones(2) * epoch}, {"epoch": epoch},
                             keep=len(epochs))
    return run


def test_locate_and_resume_points_from_every_kind_of_path(tmp_path):
    run = _run_with_checkpoints(tmp_path / "run", (1, 2))
    state1 = run.seed(0).checkpoints / "state-e0001.pt"
    for path in (run.path, run.seed(0).path, run.seed(0).checkpoints):
        assert locate(path) == (run, None)
    assert locate(state1) == (run, 0)
    found, points, explicit = resume_points(state1, (0, 1), epochs=4)
    assert found == run and explicit == 0 and points == {0: state1, 1: None}
    assert resume_points(run.path, (0,), epochs=2)[1] == {0: run.seed(0).checkpoints / "state-e0002.pt"}
    with pytest.raises(ValueError, match=r"--epochs 1 is fewer than the 2 epochs already trained"):
        resume_points(run.path, (0,), epochs=1)
    with pytest.raises(ValueError, match=r"checkpoint of seed 0, not among --seeds \(1,\)"):
        resume_points(state1, (1,), epochs=4)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        resume_points(tmp_path, (0,), epochs=4)


def test_truncate_after_drops_later_checkpoints_and_the_result(tmp_path):
    run = _run_with_checkpoints(tmp_path / "run", (1, 2, 3))
    seed = run.seed(0)
    write_json(seed.result, {"complete": True, "epochs": 3})
    assert seed.finished(3) is not None and seed.finished(4) is None
    seed.truncate_after(seed.checkpoints / "state-e0001.pt")
    assert [p.name for p in ckpt.list_checkpoints(seed.checkpoints)] == ["state-e0001.pt"]
    assert not seed.result.exists() and seed.finished(3) is None


def test_a_run_is_finished_when_every_seed_is_complete(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.finished(2)
    write_json(run.results, {"runs": [{"complete": True, "epochs": 2}]})
    assert run.finished(2) and not run.finished(3) and not run.finished(2, seeds=2)
    write_json(run.results, {"runs": [{"complete": False, "epochs": 2}]})
    assert not run.finished(2)


# ------------------------------------------------------------------------------ checkpoint
def test_checkpoint_round_trip_loads_weights_only(tmp_path):
    weights = {"w": torch.arange(6.0).view(2, 3), "b": torch.tensor([1], dtype=torch.int64)}
    state = {"epoch": 2, "history": [_record(1).row(), _record(2).row()], "rng": ckpt.rng_state()}
    path = ckpt.save_checkpoint(tmp_path, 2, weights, state, metadata={"model": "m"})
    loaded_weights, loaded = ckpt.load_checkpoint(tmp_path)
    assert path.name == "state-e0002.pt" and ckpt.fingerprint(loaded_weights) == ckpt.fingerprint(weights)
    assert [EpochRecord.from_row(r) for r in loaded["history"]] == [_record(1), _record(2)]

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    torch.save({"evil": Evil()}, path)
    with pytest.raises(ckpt.DamagedCheckpointError, match="state-e0002.pt is damaged"):
        ckpt.load_checkpoint(path)  # weights_only refuses arbitrary objects


@pytest.mark.parametrize("damaged", ["state-e0002.pt", "model-e0002.safetensors"])
def test_a_damaged_file_is_named_with_the_earlier_checkpoint(tmp_path, damaged):
    for epoch in (1, 2):
        ckpt.save_checkpoint(tmp_path, epoch, {"w": torch.ones(100)}, {"epoch": epoch}, keep=2)
    data = (tmp_path / damaged).read_bytes()
    (tmp_path / damaged).write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.DamagedCheckpointError,
                       match=rf"{tmp_path / damaged} is damaged .*{tmp_path / 'state-e0001.pt'} can be used"):
        ckpt.load_checkpoint(tmp_path)
    assert ckpt.load_checkpoint(tmp_path / "state-e0001.pt")[1] == {"epoch": 1}


def test_a_checkpoint_without_its_state_file_does_not_exist(tmp_path):
    ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(1)}, {"epoch": 1})
    (tmp_path / "model-e0002.safetensors").write_bytes(b"weights of a checkpoint whose state never landed")
    (tmp_path / ".state-e0002.pt.tmp").write_bytes(b"half")
    assert ckpt.latest_checkpoint(tmp_path).name == "state-e0001.pt"


@pytest.mark.parametrize(("writer", "error", "says"), [
    ("save_file", OSError(errno.ENOSPC, "No space left on device"), r"No space left on device"),
    ("torch.save", RuntimeError("basic_ios::clear: iostream error"),
     r"RuntimeError: basic_ios::clear: iostream error \(\d+ MiB free on that disk; a full disk fails this way\)"),
], ids=["enospc-weights", "torch-iostream-state"])
def test_a_failed_checkpoint_write_says_why_where_and_the_last_good_one(tmp_path, monkeypatch, writer, error, says):
    ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(3)}, {"epoch": 1})

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ckpt.torch if writer == "torch.save" else ckpt, writer.split(".")[-1], fail)
    with pytest.raises(ckpt.CheckpointWriteError,
                       match=rf"checkpoint of epoch 2 to {tmp_path}: {says}; the last good checkpoint is "
                             rf"{tmp_path / 'state-e0001.pt'}") as caught:
        ckpt.save_checkpoint(tmp_path, 2, {"w": torch.ones(3) * 2}, {"epoch": 2})
    assert isinstance(caught.value, OSError) and caught.value.errno == getattr(error, "errno", None)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-e0001.safetensors", "state-e0001.pt"]
    assert ckpt.load_checkpoint(tmp_path)[1] == {"epoch": 1}


# ------------------------------------------------------------------------------ schedule
def _rates(epochs: int, then: int | None = None, at: int = 0) -> list[float]:
    """The rate of every epoch; with ``then``, a resume at epoch ``at`` into a fresh optimizer
    and schedule (as restore_state does) re-planned to ``then`` epochs."""
    def fresh(total):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
        return opt, cosine_schedule(opt, total)

    opt, sched = fresh(epochs)
    rates = []
    for epoch in range(then or epochs):
        if epoch == at and then is not None:
            saved = opt.state_dict(), sched.state_dict()
            opt, sched = fresh(epochs)
            opt.load_state_dict(saved[0])
            sched.load_state_dict(saved[1])
            replan(sched, then)
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_cosine_is_the_closed_form_and_replans_from_the_resume_point():
    assert _rates(4) == pytest.approx([0.8 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert _rates(2, then=4, at=2) == pytest.approx(
        [0.8, 0.4] + [0.8 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (2, 3)])
    assert _rates(4, then=4, at=2) == _rates(4)  # a resume without a change is exact


def test_checkpoints_of_the_old_cosine_annealing_scheduler_still_load():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
    old = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    opt.step()
    old.step()
    sched = cosine_schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8), 9)
    sched.load_state_dict(_lambda_state(old.state_dict()))
    assert sched.last_epoch == 1 and sched.lr_lambdas[0].epochs == 4


def test_replan_refuses_another_scheduler():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
    with pytest.raises(TypeError, match="replan needs a cosine_schedule, got StepLR"):
        replan(torch.optim.lr_scheduler.StepLR(opt, 2), 4)


# ------------------------------------------------------------------------------ import graph
def test_sparsegrad_train_imports_without_a_circle():
    """Module-level imports inside sparsegrad.train form a DAG (TYPE_CHECKING blocks included)."""
    graph = {}
    for path in TRAIN.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sparsegrad.train."):
                deps.add(node.module.split(".")[2])
        graph[path.stem] = deps - {path.stem}
    done, visiting = set(), []

    def visit(name):
        assert name not in visiting, f"import circle: {' -> '.join(visiting + [name])}"
        if name in done:
            return
        visiting.append(name)
        for dep in graph.get(name, ()):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)
    assert {"store", "record", "session", "state", "fit"} <= done
    assert "fit" not in graph["state"] and "fit" not in graph["session"]



# ------------------------------------------------------------------------------ log
def test_without_tensorboard_the_log_warns_and_still_writes_metrics(tmp_path, monkeypatch):
    import sys

    from sparsegrad.train.log import EpochLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    folder = SeedFolder(tmp_path)
    with pytest.warns(UserWarning, match="tensorboard is not installed: no TensorBoard logs"):
        log = EpochLog(folder, 1, 0, "t", enabled=True, tensorboard=True)
    log.write([_record(1)])
    log.close()
    assert folder.read_history() == [_record(1)] and not folder.tensorboard.exists()
