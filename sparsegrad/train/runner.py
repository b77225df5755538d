"""The runner behind every recipe: validate, build the data, make the run folder, fit each seed.

[run][sparsegrad.train.runner.run] trains one model per seed and returns the run folder (its
layout: [store][sparsegrad.train.store]).

Everything is checked first (every field, the data, one forward pass of the model on two test
samples, the resume point), so a run that fails on bad input leaves no folder. The same code
runs as one process and under ``accelerate launch`` / ``torchrun``; ``batch_size`` is the
global batch of one optimizer step. [run_variants][sparsegrad.train.runner.run_variants] runs
one configuration with sets of field overrides (ablations, sweeps, the demo) in one folder.

Reference: docs/design.md §5 (recipes) and §6 (engine, run folder).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import accelerate
import timm
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import Dataset

import sparsegrad
from sparsegrad.data import check_files
from sparsegrad.train.build import build_datasets, build_model, check_model, input_spec, limit_datasets
from sparsegrad.train.checkpoint import checkpoint_epoch, latest_checkpoint
from sparsegrad.train.config import RecipeConfig, effective_config, learning_rate, per_process_batch, validate
from sparsegrad.train.fit import fit
from sparsegrad.train.report import format_table, summarise, write_results
from sparsegrad.train.resume import check_config, check_fits, resume_command
from sparsegrad.train.session import setup
from sparsegrad.train.store import RunFolder, SeedFolder, create_run_dir, resume_points, slug, write_json

__all__ = ["Stopped", "make_accelerator", "run", "run_variants"]

# Fields a variant may change and still share the datasets built once for all variants.
_DATA_FIELDS = frozenset({"dataset", "data_root", "download", "T", "img_size", "autoaugment", "augment", "folds",
                          "fold", "train_limit", "eval_limit", "frame_cache", "cache_dir", "smoke", "grad_accum",
                          "out_dir"})


class Stopped(KeyboardInterrupt):
    """A run stopped by Ctrl-C (``SIGINT``) or ``SIGTERM``; its message says where, which
    checkpoint is the last and the command that resumes.

    Attributes:
        signum: the signal that stopped the run.
    """

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


def _stop_message(run_dir: Path, eff: RecipeConfig, seed: int, folder: SeedFolder, start: int, since: int) -> str:
    done = start  # epochs done: the resume point's, or the last written to metrics.csv since the seed began
    if folder.metrics.is_file() and folder.metrics.stat().st_mtime_ns >= since:
        done = max([start] + [r.epoch for r in folder.read_history()])
    where = (f"during epoch {done + 1} of seed {seed}" if done < eff.epochs
             else f"after the last epoch of seed {seed}, before its results were written")
    last = latest_checkpoint(folder.checkpoints)
    checkpoint = (f"the last checkpoint is {last} (epoch {checkpoint_epoch(last)})" if last is not None
                  else "no checkpoint of this seed was written yet")
    return f"stopped {where}; {checkpoint}; resume with: {resume_command(run_dir)}"


def make_accelerator(cfg: RecipeConfig) -> Accelerator:
    """The Accelerator a recipe runs on: a per-epoch scheduler, ``cfg``'s accumulation and precision."""
    return Accelerator(step_scheduler_with_optimizer=False, gradient_accumulation_steps=cfg.grad_accum,
                       mixed_precision=cfg.mixed_precision)


def _environment(accelerator: Accelerator) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"sparsegrad": sparsegrad.__version__, "git_commit": commit, "torch": torch.__version__,
            "accelerate": accelerate.__version__, "timm": timm.__version__, "python": platform.python_version(),
            "device": str(accelerator.device), "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision, "torch_threads": torch.get_num_threads(),
            "argv": sys.argv, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _write_config(accelerator: Accelerator, run_dir: Path, cfg: RecipeConfig, eff: RecipeConfig,
                  resumed: tuple[dict, dict] | None) -> None:
    """Writes ``config.json``; a resume appends to its ``resumes`` (``resumed``: the resume
    points and the changed fields, which [check_config][sparsegrad.train.resume.check_config] allowed)."""
    if not accelerator.is_main_process:
        return
    record = {"config": cfg.jsonable(), "effective": eff.jsonable(), "lr": learning_rate(eff),
              "per_process_batch": per_process_batch(eff, accelerator.num_processes),
              "environment": _environment(accelerator), "resumes": []}
    path = RunFolder(run_dir).config
    if resumed is not None and path.is_file():
        points, changed = resumed
        old = json.loads(path.read_text())
        old.setdefault("resumes", []).append({"time": record["environment"]["time"], "argv": sys.argv,
                                              "from": points, "changed": changed,
                                              "processes": accelerator.num_processes})
        record = old
    write_json(path, record)


def _datasets(eff: RecipeConfig, accelerator: Accelerator, datasets):
    if datasets is not None:
        return limit_datasets(eff, *datasets)
    try:
        return build_datasets(eff, accelerator)
    except ValueError as err:
        if eff.folds is not None or not str(err).startswith("--folds "):
            raise
        need = str(err).split(" ", 2)[2]  # "needs at least ..."
        raise ValueError(f"--data-root {eff.data_root} is a single split (no train/ and test/ folders), so it is cut "
                         f"by the default --folds 10 --fold 9 (the last tenth of each class tests), which {need}. "
                         "Pass --folds K --fold k with K at most the smallest class's count, or give the data "
                         "train/ and test/ folders") from None


def _check_data(accelerator: Accelerator, train: Dataset, test: Dataset) -> None:
    accelerator.print("--check-data: reading every file of the data once")
    bad = check_files(train, test)
    if bad:
        lines = [message if str(path) in message else f"{path}: {message}" for path, message in bad]
        raise ValueError(f"--check-data: {len(bad)} file(s) cannot be read:\n  " + "\n  ".join(lines)
                         + "\nmend or remove them, then run again")
    accelerator.print("--check-data: every file reads")


def _prepare(cfg: RecipeConfig, accelerator: Accelerator, datasets, from_registry: bool, model: nn.Module | None):
    """Every check that can fail on bad input, before anything is written: the fields, the
    data, and one forward pass of the model (built, or given) on two test samples."""
    if accelerator.step_scheduler_with_optimizer or accelerator.gradient_accumulation_steps != cfg.grad_accum:
        raise ValueError("run() needs an Accelerator(step_scheduler_with_optimizer=False, "
                         f"gradient_accumulation_steps={cfg.grad_accum}); see make_accelerator")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"run(model=...) takes an nn.Module, got {type(model).__name__}")
    given = model is not None
    validate(cfg, accelerator.num_processes, data=from_registry, model=not given)
    eff = validate(effective_config(cfg, accelerator.num_processes), accelerator.num_processes, data=from_registry,
                   model=not given)
    if given:
        eff = dataclasses.replace(eff, model=type(model).__name__)
    train, test = _datasets(eff, accelerator, datasets)
    if eff.check_data:
        _check_data(accelerator, train, test)
    spec = input_spec(eff, train, test, from_registry=from_registry)
    net = build_model(eff, spec) if not given else model
    check_model(eff, spec, net, test, accelerator)
    return eff, train, test, spec, net


def _run_folder(accelerator: Accelerator, eff: RecipeConfig, run_dir: Path | None, net: nn.Module):
    """The run folder and each seed's resume point; a resume is checked (every field, every
    checkpoint against ``net``) before a later checkpoint is deleted."""
    resume, where = eff.resume, f"--resume {eff.resume}"
    if resume is None and run_dir is not None and RunFolder(Path(run_dir)).config.is_file():
        resume, where = Path(run_dir), f"the run in {run_dir}"
    if resume is not None:
        run, points, explicit = resume_points(resume, eff.seeds, eff.epochs)
        changed = check_config(run, eff, where)
        for point in points.values():
            if point is not None:
                check_fits(point, eff, net)
        if explicit is not None and accelerator.is_main_process:
            run.seed(explicit).truncate_after(points[explicit])
        return run.path, points, explicit, ({str(s): str(p) for s, p in points.items() if p is not None}, changed)
    if run_dir is None:
        run_dir = create_run_dir(accelerator, eff.out_dir, eff.name + ("-smoke" if eff.smoke else ""))
    elif accelerator.is_main_process:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Path(run_dir), {}, None, None


def _banner(eff: RecipeConfig, accelerator: Accelerator, train: Dataset, test: Dataset, run_dir: Path) -> str:
    split = f", fold {eff.fold} of {eff.folds}" if eff.folds is not None else ""
    return (f"{eff.name}: {eff.model} on {eff.dataset} ({len(train)} train / {len(test)} test{split}), T={eff.T}, "
            f"MSG {'p=' + str(eff.p) if eff.msg else 'off'}, TWO {'beta=' + str(eff.beta) if eff.two else 'off'}; "
            f"batch {eff.batch_size} ({per_process_batch(eff, accelerator.num_processes)} x "
            f"{accelerator.num_processes} process(es) x {eff.grad_accum}), lr {learning_rate(eff):.4g}, "
            f"{eff.epochs} epoch(s), seeds {list(eff.seeds)}; {accelerator.device}; run folder {run_dir}"
            + ("\nsmoke run: 1 epoch, 2 optimizer steps, 1 evaluation batch" if eff.smoke else ""))


def run(cfg: RecipeConfig, accelerator: Accelerator | None = None, *, run_dir: Path | None = None,
        train_set: Dataset | None = None, test_set: Dataset | None = None, model: nn.Module | None = None) -> Path:
    """Trains ``cfg`` once per seed and writes the run folder (module docstring); returns it.

    Args:
        cfg: the recipe.
        accelerator: an Accelerator built with ``step_scheduler_with_optimizer=False`` and
            ``gradient_accumulation_steps=cfg.grad_accum`` (default:
            [make_accelerator][sparsegrad.train.runner.make_accelerator]).
        run_dir: write into this folder instead of a new timestamped one; if it already
            holds a run, that run is resumed (how [run_variants][sparsegrad.train.runner.run_variants]
            continues).
        train_set: any ``torch.utils.data.Dataset`` of ``(x, label)`` to train on instead of
            ``cfg.dataset`` (with ``test_set``); ``x`` is ``[C, H, W]`` or ``[T, C, H, W]``.
            Classes are ``cfg.num_classes`` or read from the datasets' ``targets``.
        test_set: the dataset to evaluate on, given with ``train_set``.
        model: a built network to train instead of ``timm.create_model(cfg.model, ...)``:
            any module mapping a batch to per-timestep logits ``[T, B, K]`` (its neurons from
            sparsegrad, spikingjelly or snntorch). Each seed trains a copy of it (the given
            weights, the seed's batches and MSG masks); ``cfg.model`` is recorded as its class name.

    Returns:
        The run folder (the same path on every process).

    Raises:
        ValueError: a bad configuration (the message names the flag), only one of
            ``train_set`` / ``test_set``, a model whose output is not ``[T, B, K]`` or, with
            ``msg``, one without a spiking neuron MSG can attach to (checked on two test
            samples; the message names the model and both shapes).
        FileNotFoundError: missing data (the message gives the expected layout) or a
            ``resume`` path that is not a run folder or checkpoint.

    Example:
        ```python
        cfg = RecipeConfig(name="mine", model="spiking_resnet18", T=2, epochs=3, seeds=(0,))
        run(cfg, train_set=my_train, test_set=my_test)  # any Dataset pair of ([C, H, W], label)
        ```
    """
    if (train_set is None) != (test_set is None):
        raise ValueError("give both train_set and test_set, or neither")
    accelerator = accelerator or make_accelerator(cfg)
    datasets = None if train_set is None else (train_set, test_set)
    return _run(cfg, accelerator, run_dir, datasets, from_registry=datasets is None, model=model)


def _run(cfg: RecipeConfig, accelerator: Accelerator, run_dir: Path | None, datasets, from_registry: bool,
         model: nn.Module | None = None) -> Path:
    eff, train_set, test_set, spec, net = _prepare(cfg, accelerator, datasets, from_registry, model)
    run_dir, points, explicit, resumed = _run_folder(accelerator, eff, run_dir, net)
    accelerator.wait_for_everyone()
    _write_config(accelerator, run_dir, cfg, eff, resumed)
    accelerator.print(_banner(eff, accelerator, train_set, test_set, run_dir))
    results = []
    for seed in eff.seeds:
        folder = RunFolder(run_dir).seed(seed)
        done = folder.finished(eff.epochs) if seed != explicit else None
        if done is not None:
            accelerator.print(f"seed {seed}: finished earlier, kept")
            results.append(done)
            continue
        since = time.time_ns()
        try:
            session = setup(accelerator, eff, seed, train_set, test_set, spec, model)
            results.append(fit(session, folder, points.get(seed), tag=f"{eff.name} seed {seed}"))
        except KeyboardInterrupt as err:
            start = checkpoint_epoch(points[seed]) if points.get(seed) is not None else 0
            raise Stopped(_stop_message(run_dir, eff, seed, folder, start, since),
                          getattr(err, "signum", signal.SIGINT)) from None
    summary = summarise(results)
    rows = results + ([{"seed": "mean", **summary}] if len(results) > 1 else [])
    table = format_table(rows, "seed") + (f"\npaper: {eff.paper_result} %" if eff.paper_result else "")
    accelerator.print(f"\n{table}\n\nrun folder: {run_dir}")
    if accelerator.is_main_process:
        write_results(run_dir, eff.name, results, summary, table, eff.paper_result)
    accelerator.wait_for_everyone()
    return run_dir


def run_variants(cfg: RecipeConfig, variants: Mapping[str, Mapping[str, Any]], *, kind: str,
                 accelerator: Accelerator | None = None) -> tuple[Path, list[dict]]:
    """Runs ``cfg`` once per variant (a set of field overrides) in one folder.

    The folder is ``<out-dir>/<kind>-<name>-<time>/`` (``<name>-<time>`` for an empty ``kind``)
    with one run folder per variant
    (``<folder>/<variant slug>/``, as [run][sparsegrad.train.runner.run] writes it) and
    ``variants.json``. With ``cfg.resume`` set to such a folder, finished variants are kept and
    the others resumed. Every variant is validated, and the data built, before the folder is
    made; variants that change no data field share the datasets (and their frame caches).

    Args:
        cfg: the recipe (its ``resume``, if set, is the folder of an earlier call).
        variants: ``{label: {field: value}}``, e.g. ``{"MSG": {"msg": True, "two": False}}``.
        kind: folder prefix (``"ablation"``, ``"sweep_p"``).
        accelerator: as for [run][sparsegrad.train.runner.run].

    Returns:
        ``(folder, rows)``; a row is ``{"variant", "overrides", "run_dir", **summary}`` with
        the summary of [summarise][sparsegrad.train.report.summarise].
    """
    accelerator = accelerator or make_accelerator(cfg)
    configs = {label: dataclasses.replace(cfg, **overrides, resume=None, name=f"{cfg.name}-{slug(label)}")
               for label, overrides in variants.items()}
    if not configs:
        raise ValueError("run_variants needs at least one variant")
    eff = effective_config(cfg, accelerator.num_processes)
    for sub in configs.values():
        validate(effective_config(sub, accelerator.num_processes), accelerator.num_processes)
    shared = not any(_DATA_FIELDS & set(o) for o in variants.values())
    datasets = _prepare(cfg, accelerator, None, True, None)[1:3] if shared else None
    if cfg.resume is not None:
        folder = Path(cfg.resume)
        if not (folder / "variants.json").is_file():
            raise FileNotFoundError(f"--resume {folder}: not a {kind} folder (no variants.json)")
    else:
        prefix = "-".join(part for part in (kind, cfg.name) if part)
        folder = create_run_dir(accelerator, eff.out_dir, prefix + ("-smoke" if cfg.smoke else ""))
    rows = []
    for label, sub in configs.items():
        sub = dataclasses.replace(sub, out_dir=folder)
        run_dir = _run(sub, accelerator, folder / slug(label), datasets, from_registry=True)
        summary = RunFolder(run_dir).read_results()["summary"]
        rows.append({"variant": label, "overrides": dict(variants[label]), "run_dir": str(run_dir), **summary})
        if accelerator.is_main_process:
            write_json(folder / "variants.json", {"kind": kind, "name": cfg.name, "rows": rows})
    accelerator.wait_for_everyone()
    return folder, rows
