"""The study's plan: tasks, the four variants of the paper's Table 2, the p sweep, and running them.

A task is a [RecipeConfig][sparsegrad.train.RecipeConfig] with ``folds`` set. Seed ``s`` trains on
every fold but ``s % folds`` and tests on that one, so with as many seeds as folds every sample
is tested exactly once per variant. Under one seed the variants differ only in ``msg`` / ``two``
/ ``p``: the engine seeds the initial weights and the batch order from the seed alone, and MSG
draws its masks from its own generator, so the variants are paired.

Each (task, variant, seed) is one run folder ``<out>/<task>/<variant>/s<seed>/`` written by
[run][sparsegrad.train.run]; a finished one is skipped and an interrupted one resumes from its
last checkpoint, so a killed study continues where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsegrad.train import RecipeConfig, RunFolder, run
from sparsegrad.train.paper import ABLATION
from sparsegrad.train.store import slug

__all__ = ["VARIANTS", "Planned", "Task", "ablation_runs", "is_finished", "run_all", "sweep_runs", "sweep_label"]

VARIANTS: dict[str, dict[str, Any]] = ABLATION
"""The ablation of the paper's Table 2: plain surrogate gradients, TWO, MSG, both
([ABLATION][sparsegrad.train.paper.ABLATION])."""


@dataclass(frozen=True)
class Task:
    """One data set and network of the study.

    Args:
        name: folder name and key in the results (``"nmnist"``).
        title: how tables and figures name it.
        config: the recipe every variant starts from; ``config.folds`` must be set.
    """

    name: str
    title: str
    config: RecipeConfig

    def __post_init__(self) -> None:
        if not self.config.folds:
            raise ValueError(f"task {self.name!r}: its config must set folds (got {self.config.folds!r})")


@dataclass(frozen=True)
class Planned:
    """One training run of the study: a task, a variant label, a seed, its config and folder."""

    task: str
    variant: str
    seed: int
    config: RecipeConfig
    run_dir: Path


def _planned(task: Task, label: str, seed: int, overrides: Mapping[str, Any], out: Path) -> Planned:
    cfg = dataclasses.replace(task.config, **overrides, seeds=(seed,), fold=seed % task.config.folds,
                              name=f"{task.name}-{slug(label)}-s{seed}", out_dir=out, resume=None)
    return Planned(task.name, label, seed, cfg, out / task.name / slug(label) / f"s{seed}")


def ablation_runs(tasks: Sequence[Task], seeds: Sequence[int], out: Path) -> list[Planned]:
    """Every task x variant x seed, seed-major within a task so that a partial study is paired."""
    return [_planned(task, label, seed, overrides, out)
            for task in tasks for seed in seeds for label, overrides in VARIANTS.items()]


def sweep_label(p: float) -> str:
    """The label of MSG alone at drop probability ``p`` (Fig. 5)."""
    return f"MSG p={p:g}"


def sweep_runs(task: Task, ps: Sequence[float], seeds: Sequence[int], out: Path) -> list[Planned]:
    """MSG alone (TWO off) at each ``p``. ``p = 0`` is the ``none`` run and ``p`` equal to the
    task's own ``p`` is the ``MSG`` run, so those are not trained again (``p = 0`` is plain
    training bit for bit, docs/design.md §2.3)."""
    runs = []
    for p in ps:
        for seed in seeds:
            if p == 0:
                runs.append(_planned(task, "none", seed, VARIANTS["none"], out))
            elif p == task.config.p:
                runs.append(_planned(task, "MSG", seed, VARIANTS["MSG"], out))
            else:
                runs.append(_planned(task, sweep_label(p), seed, {"msg": True, "two": False, "p": p}, out))
    return runs


def is_finished(planned: Planned) -> bool:
    """Whether the run folder holds the complete result of this run."""
    return RunFolder(planned.run_dir).finished(planned.config.epochs)


def run_all(plan: Sequence[Planned]) -> None:
    """Trains every planned run not finished yet, resuming interrupted ones, in plan order."""
    for planned in plan:
        if not is_finished(planned):
            run(planned.config, run_dir=planned.run_dir)
