"""The depth study (issue 19): MSG on plain nets of 2, 6 and 10 LIF layers and on ResNet18s.

Networks ``spiking_plain2``, ``spiking_plain6``, ``spiking_plain10`` (32 channels),
``spiking_resnet18`` and ``sew_resnet18`` (ImageNet stems), on the embedded CIFAR-10 subset
(2,000 JPEGs, 5 folds per class; seed s tests fold s % 5), resized to 16 x 16, T = 2, a fixed
random 480 of the 1,600 training images of the fold and 200 of its 400 test images, 6 epochs,
batch 32, TWO off, the paper's AdamW / cosine / label smoothing, the ``pl`` surrogate. Variants:
none, MSG p = 0.5, p = 0.5 with ``rescale=True`` (Eq. 13), p = 0.25; seeds 0-4, paired (over the 5 seeds every test image is tested once per variant).
Then the gradient probe ([gradient_probe][sparsegrad.study.probe.gradient_probe]) at each
network's seed-0 initial weights on one training batch of 32, for p = 0.25, 0.5 and 0.5 rescaled,
8 masks each.

Why this data and size: on this 2-core machine, shared, one epoch of 320 training images at
32 x 32, T = 4 took (s, train): plain2 2.6, plain6 13.8, plain10 24.4 (MSG 28.0), ResNet18 32.7
(MSG 41.5), SEW-ResNet18 72.2; N-MNIST (T = 10, 34 x 34) took 104 (plain10) and 109 (ResNet18),
four times CIFAR's, so CIFAR it is. The full fold at 32 x 32, T = 4 would cost about 780 s per
epoch for one variant and seed of all five networks, 9,400 s per epoch of the study. At 16 x 16
(1/4), T = 2 (1/2), 480 images (0.3) that is about 350 s per epoch of the study. Measured: the
published run (docs/results.md) took 40 min wall on this 2-core machine, other work running at
low priority beside it (seeds 0-2 in 28 min, then seeds 3-4 resumed on top in 12 min).

Writes ``<out-dir>/results.json`` (provenance, configuration, tables, curves, probe, records),
``results.md`` and ``figures/accuracy_vs_epoch.png``, ``figures/probe.png``; run folders below
``<out-dir>/<network>/``, the probe in ``<out-dir>/probe/``. Killed, it continues where it
stopped when run again with the same ``--out-dir``.

    python recipes/study_depth.py            # the full study (make study-depth)
    python recipes/study_depth.py --quick    # the whole pipeline on tiny subsets, 2 networks
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from accelerate.utils import set_seed

from sparsegrad.study import Task, collect, run_all
from sparsegrad.study.depth import (DEPTH_VARIANTS, NETWORKS, curve, depth_rows, depth_runs, depth_table,
                                    probe_table)
from sparsegrad.study.depth_figures import plot_curves, plot_probe
from sparsegrad.study.probe import gradient_probe
from sparsegrad.study.report import provenance
from sparsegrad.train import RecipeConfig
from sparsegrad.train.build import build_datasets, build_model, input_spec
from sparsegrad.train import write_json

DATA = Path(__file__).resolve().parents[1] / "data"
QUICK_NETWORKS = ("spiking_plain2", "spiking_plain6")


@dataclass
class DepthConfig:
    """Settings of the depth study (the defaults are the planned run)."""

    out_dir: Path = Path("runs/study-depth")
    """Folder of the study; running again with the same folder resumes it."""
    networks: tuple[str, ...] = tuple(NETWORKS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Paired seeds (seed s tests on fold s % 5)."""
    epochs: int = 6
    T: int = 2
    img_size: int = 16
    """Side the 32 x 32 JPEGs are resized to."""
    train_limit: int = 480
    eval_limit: int = 200
    probe_p: tuple[float, ...] = (0.25, 0.5)
    """Drop probabilities of the probe (p = 0.5 is also probed with rescale=True)."""
    probe_masks: int = 8
    probe_batch: int = 32
    quick: bool = False
    """The whole pipeline in a minute or two: 2 networks, 64 / 32 samples, 1 epoch, seeds 0 1."""


def _effective(cfg: DepthConfig) -> DepthConfig:
    if not cfg.quick:
        return cfg
    return dataclasses.replace(cfg, networks=QUICK_NETWORKS, seeds=cfg.seeds[:2], epochs=1, train_limit=64,
                               eval_limit=32, probe_masks=2, probe_batch=8)


def base_config(cfg: DepthConfig, model: str) -> RecipeConfig:
    return RecipeConfig(
        dataset="imagefolder", data_root=DATA / "cifar10_small" / "test", model=model, T=cfg.T,
        img_size=cfg.img_size, epochs=cfg.epochs, batch_size=32, surrogate="pl", two=False, folds=5,
        augment=False, train_limit=cfg.train_limit, eval_limit=cfg.eval_limit, plots=False, tensorboard=False,
        num_workers=0, keep_checkpoints=1, out_dir=cfg.out_dir)


def probe_network(cfg: DepthConfig, model: str) -> list[dict]:
    """The probe of ``model`` at seed 0's initial weights, cached in ``<out>/probe/<model>.json``."""
    path = cfg.out_dir / "probe" / f"{model}.json"
    settings = {"p": list(cfg.probe_p), "masks": cfg.probe_masks, "batch": cfg.probe_batch,
                "T": cfg.T, "img_size": cfg.img_size}
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["settings"] == settings:
            return cached["results"]
    recipe = dataclasses.replace(base_config(cfg, model), fold=0, seeds=(0,))
    train, test = build_datasets(recipe)
    spec = input_spec(recipe, train, test)
    samples = [train[i] for i in range(min(cfg.probe_batch, len(train)))]
    x, y = torch.stack([s[0] for s in samples]), torch.tensor([int(s[1]) for s in samples])
    set_seed(0)  # as the training run of seed 0 builds its model (process 0)
    net = build_model(recipe, spec)
    runs = [(p, False) for p in cfg.probe_p] + [(0.5, True)]
    results = [gradient_probe(net, x, y, p, masks=cfg.probe_masks, rescale=rescale, seed=0) for p, rescale in runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"settings": settings, "results": results})
    return results


def _command(cfg) -> str:
    return "python recipes/study_depth.py" + (" --quick" if cfg.quick else "")


def main(cfg: DepthConfig) -> Path:
    cfg = _effective(cfg)
    unknown = [n for n in cfg.networks if n not in NETWORKS]
    if unknown:
        raise ValueError(f"--networks {unknown}: choose from {list(NETWORKS)}")
    titles = {n: NETWORKS[n] for n in cfg.networks}
    tasks = [Task(n, titles[n], base_config(cfg, n)) for n in cfg.networks]
    plan = depth_runs(tasks, DEPTH_VARIANTS, cfg.seeds, cfg.out_dir)
    run_all(plan)
    records = [{**r, "curve": curve(p)} for r, p in zip(collect(plan), plan)]
    rows = {n: depth_rows(records, n, list(DEPTH_VARIANTS)) for n in cfg.networks}
    probes = {n: probe_network(cfg, n) for n in cfg.networks}
    figures = [plot_curves(rows, titles, cfg.out_dir / "figures" / "accuracy_vs_epoch.png"),
               plot_probe(probes, titles, cfg.out_dir / "figures" / "probe.png")]
    text = (f"### MSG against depth: CIFAR-10 subset, {cfg.img_size} x {cfg.img_size}, T = {cfg.T}, "
            f"{cfg.epochs} epochs, seeds {list(cfg.seeds)}\n\n{depth_table(rows, titles)}\n\n"
            f"### Gradient probe at initialisation\n\n{probe_table(probes, titles)}")
    write_json(cfg.out_dir / "results.json", {**provenance(_command(cfg), cfg), "networks": titles, "variants": DEPTH_VARIANTS,
                                              "tables": rows, "probe": probes, "records": records,
                                              "tables_markdown": text})
    (cfg.out_dir / "results.md").write_text(text + "\n")
    print(f"\n{text}\n\nfigures: {', '.join(str(f) for f in figures)}\nresults: {cfg.out_dir / 'results.json'}")
    return cfg.out_dir


if __name__ == "__main__":
    main(tyro.cli(DepthConfig))
