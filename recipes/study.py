"""The paper's ablation (Table 2) and p sweep (Fig. 5) on the embedded real data, with statistics.

Two tasks, each split into 5 folds per class; seed s tests on fold s % 5, so over seeds 0-4
every recording or image is tested once per variant:

- ``nmnist``: the 1,100 embedded N-MNIST recordings, ``spiking_convnet_s``, T = 10, 3 epochs;
- ``cifar10``: the 2,000 embedded CIFAR-10 JPEGs, static input, ``spiking_convnet_m``, T = 4,
  8 epochs, no augmentation.

Per task and seed the variants none / TWO / MSG / MSG&TWO share initial weights, batch order and
fold. Then MSG alone at p in {0, 0.25, 0.5, 0.75, 0.9} on seeds 0-2 of the task MSG moved most.
The paper's settings otherwise: AdamW at 0.05 * batch / 1024, cosine decay, weight decay 0.01,
label smoothing 0.1, p = 0.5, beta = 0.7, the piecewise-linear surrogate of the VGGSNN rows.

Writes ``<out-dir>/results.json``, ``results.md`` and ``figures/*.png``; the run folders of
every training run lie below ``<out-dir>/<task>/``. Killed, it continues where it stopped when
run again with the same ``--out-dir``.

    python recipes/study.py            # the full study, about an hour on 2 CPU cores
    python recipes/study.py --quick    # the whole pipeline on tiny subsets, a few minutes
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import tyro

from sparsegrad.study import (VARIANTS, Task, ablation_runs, collect, markdown_table, most_moved_by_msg, run_all,
                              sweep_label, sweep_rows, sweep_runs)
from sparsegrad.study.report import provenance, study_page
from sparsegrad.study.figures import plot_all
from sparsegrad.train import RecipeConfig, RunFolder, write_json
from sparsegrad.train.config import effective_config
from sparsegrad.train.resume import check_config

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class StudyConfig:
    """Settings of the study (the defaults are the published run)."""

    out_dir: Path | None = None
    """Folder of the study; running again with the same folder resumes it. None: runs/study, or
    runs/study-quick with --quick (a study never resumes runs of the other kind)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds of the ablation (seed s tests on fold s % 5)."""
    sweep_seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the p sweep (a subset of seeds)."""
    sweep_p: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9)
    """Drop probabilities of the sweep."""
    nmnist_epochs: int = 3
    cifar10_epochs: int = 8
    quick: bool = False
    """The whole pipeline in minutes: 64 training / 32 test samples, 1 epoch, seeds 0 1."""


def tasks(cfg: StudyConfig) -> list[Task]:
    common = dict(batch_size=32, surrogate="pl", p=0.5, beta=0.7, folds=5, plots=False, tensorboard=False,
                  num_workers=0, keep_checkpoints=1, out_dir=cfg.out_dir, cache_dir=cfg.out_dir / "frame_cache")
    if cfg.quick:
        common.update(train_limit=64, eval_limit=32)
    epochs = (1, 1) if cfg.quick else (cfg.nmnist_epochs, cfg.cifar10_epochs)
    return [
        Task("nmnist", "N-MNIST (1,100 recordings)", RecipeConfig(
            dataset="nmnist", model="spiking_convnet_s", T=10, epochs=epochs[0], **common)),
        Task("cifar10", "CIFAR-10 (2,000 images)", RecipeConfig(
            dataset="imagefolder", data_root=DATA / "cifar10_small" / "test", model="spiking_convnet_m", T=4,
            epochs=epochs[1], augment=False, **common)),
    ]


def _check_resumable(plan) -> None:
    """Refuses, before anything trains, a folder holding runs of another configuration (a
    --quick study's, say), even those finished, which run_all would keep without a look."""
    for planned in plan:
        if RunFolder(planned.run_dir).config.is_file():
            check_config(RunFolder(planned.run_dir), effective_config(planned.config), f"the run in {planned.run_dir}")


def resolve(cfg: StudyConfig) -> StudyConfig:
    """``cfg`` with its folder (runs/study, runs/study-quick) and, with --quick, its two seeds."""
    if cfg.out_dir is None:
        cfg = dataclasses.replace(cfg, out_dir=Path("runs/study-quick" if cfg.quick else "runs/study"))
    if cfg.quick:
        cfg = dataclasses.replace(cfg, seeds=cfg.seeds[:2], sweep_seeds=cfg.sweep_seeds[:2])
    if not set(cfg.sweep_seeds) <= set(cfg.seeds):
        raise ValueError(f"--sweep-seeds {cfg.sweep_seeds} must be a subset of --seeds {cfg.seeds}")
    return cfg


def _command(cfg) -> str:
    return "python recipes/study.py" + (" --quick" if cfg.quick else "")


def main(cfg: StudyConfig) -> Path:
    cfg = resolve(cfg)
    study = tasks(cfg)
    ablation = ablation_runs(study, cfg.seeds, cfg.out_dir)
    _check_resumable(ablation)
    run_all(ablation)
    records = collect(ablation)
    sweep_task = next(t for t in study if t.name == most_moved_by_msg(records, [t.name for t in study]))
    sweep = sweep_runs(sweep_task, cfg.sweep_p, cfg.sweep_seeds, cfg.out_dir)
    _check_resumable(sweep)
    run_all(sweep)
    records = collect(ablation + sweep)

    titles = {t.name: t.title for t in study}
    labels = {p: ("none" if p == 0 else "MSG" if p == sweep_task.config.p else sweep_label(p)) for p in cfg.sweep_p}
    tables, costs, text = study_page(records, titles)
    sweep_table = sweep_rows(records, sweep_task.name, labels, cfg.sweep_seeds)
    figures = plot_all(records, titles, list(VARIANTS), sweep_table, sweep_task.name, cfg.sweep_seeds,
                       cfg.out_dir / "figures")
    text = "\n\n".join([text]
                       + [f"### p sweep on {titles[sweep_task.name]}, MSG alone, seeds {list(cfg.sweep_seeds)}"
                          f"\n\n{markdown_table(sweep_table, first='p')}"])
    write_json(cfg.out_dir / "results.json", {**provenance(_command(cfg), cfg), "tasks": titles, "ablation": tables, "cost": costs,
                                              "sweep_task": sweep_task.name, "sweep": sweep_table,
                                              "records": records, "tables_markdown": text})
    (cfg.out_dir / "results.md").write_text(text + "\n")
    print(f"\n{text}\n\nfigures: {', '.join(str(f) for f in figures)}\nresults: {cfg.out_dir / 'results.json'}")
    return cfg.out_dir


if __name__ == "__main__":
    main(tyro.cli(StudyConfig))
