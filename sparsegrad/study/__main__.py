"""The paired ablation of MSG and TWO on any dataset and model: ``python -m sparsegrad.study``.

    python -m sparsegrad.study --dataset imagefolder --data-root DIR --model spiking_resnet18 --T 4 \\
        --epochs 10 --seeds 0 1 2 3 4
    python -m sparsegrad.study --dataset cifar10 --data-root /data/cifar --epochs 30
    python -m sparsegrad.study ... --resume runs/study-imagefolder-spiking_resnet18-<time>

Every flag of ``python -m sparsegrad.train`` is taken. Per seed the four variants of the
paper's Table 2 ([ABLATION][sparsegrad.train.paper.ABLATION]: none, TWO, MSG, MSG&TWO) share
initial weights, batch order and fold: the data are cut into ``--folds`` per-class chunks
(default 5) and seed ``s`` tests chunk ``s % folds`` (docs/design.md §6). The study folder
``<out-dir>/study-<dataset>-<model>-<time>/`` then holds one run folder per variant and seed,
``results.md`` (accuracy per variant with each variant against ``none``: paired differences,
95 % t intervals, Wilcoxon and sign-flip p-values; cost per variant), ``results.json`` (the
tables and every run's record) and ``figures/*.png``. Run again with ``--resume`` on the folder,
finished runs are kept and interrupted ones continue. ``recipes/study.py`` is the published
study on the embedded data (with the p sweep).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import tyro

from sparsegrad.study.collect import collect
from sparsegrad.study.figures import plot_all
from sparsegrad.study.plan import VARIANTS, Task, ablation_runs, run_all
from sparsegrad.study.report import study_page
from sparsegrad.train import RecipeConfig, write_json
from sparsegrad.train.config import validate
from sparsegrad.train.store import slug

_FOLDS = 5


def _folder(cfg: RecipeConfig) -> Path:
    if cfg.resume is not None:
        folder = Path(cfg.resume)
        if not (folder / "study.json").is_file():
            raise FileNotFoundError(f"--resume {folder}: not a study folder (no study.json)")
        return folder
    return Path(cfg.out_dir) / f"study-{slug(cfg.dataset)}-{slug(cfg.model)}-{time.strftime('%Y%m%d-%H%M%S')}"


def main(cfg: RecipeConfig) -> Path:
    """Runs the ablation of ``cfg`` on every seed, writes the tables, page and figures; returns
    the study folder.

    Raises:
        ValueError: fewer than two seeds (nothing to pair), or a bad field (as
            [validate][sparsegrad.train.config.validate] says).
    """
    if len(cfg.seeds) < 2:
        raise ValueError(f"--seeds {' '.join(map(str, cfg.seeds))}: the paired study needs at least 2 seeds")
    cfg = dataclasses.replace(cfg, folds=cfg.folds or _FOLDS, plots=False, tensorboard=False)
    validate(cfg)
    folder = _folder(cfg)
    name = f"{cfg.dataset}-{cfg.model}"
    title = f"{cfg.model} on {cfg.dataset}" + (f" ({cfg.data_root.name})" if cfg.data_root else "")
    task = Task(slug(name), title, dataclasses.replace(cfg, resume=None, out_dir=folder,
                                                       cache_dir=cfg.cache_dir or folder / "frame_cache"))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "study.json", {"argv": sys.argv, "config": cfg.jsonable()})
    plan = ablation_runs([task], cfg.seeds, folder)
    run_all(plan)
    records = collect(plan)
    titles = {task.name: title}
    tables, costs, text = study_page(records, titles)
    figures = plot_all(records, titles, list(VARIANTS), [], None, (), folder / "figures")
    page = (f"# MSG and TWO on {title}\n\n{len(cfg.seeds)} paired seeds, {cfg.epochs} epoch(s), "
            f"{cfg.folds} folds (seed s tests fold s % {cfg.folds}).\n\n{text}\n\n"
            + "\n".join(f"![{f.stem}](figures/{f.name})" for f in figures) + "\n")
    (folder / "results.md").write_text(page, encoding="utf-8")
    write_json(folder / "results.json", {"argv": sys.argv, "config": cfg.jsonable(), "tasks": titles,
                                         "ablation": tables, "cost": costs, "records": records,
                                         "tables_markdown": text})
    print(f"\n{text}\n\nresults: {folder / 'results.md'}")
    return folder


if __name__ == "__main__":
    main(tyro.cli(RecipeConfig, prog="python -m sparsegrad.study", description=__doc__))
