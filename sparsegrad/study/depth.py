"""The depth study (issue 19): what MSG costs on deeper networks, planned, run and tabulated.

Five networks (``spiking_plain2/6/10``: 2, 6, 10 LIF layers of 32 channels; ``spiking_resnet18``;
``sew_resnet18``) x four variants of MSG (TWO off in all) x paired seeds, on one
[RecipeConfig][sparsegrad.train.RecipeConfig] with ``folds`` set (seed ``s`` tests fold
``s % folds``). Under one seed the variants share initial weights, batches and fold
(docs/design.md §6), so every comparison with ``none`` is paired. Each run is one folder
``<out>/<network>/<variant>/s<seed>/`` of [run][sparsegrad.train.run]; finished runs are
skipped and interrupted ones resume ([run_all][sparsegrad.study.plan.run_all]).

Outputs per network: final accuracy per variant with paired 95 % intervals against ``none``
([paired_comparison][sparsegrad.study.stats.paired_comparison]), test accuracy after each epoch
(mean ± sd over seeds), and the first epoch at which a variant's mean curve reaches 90 % of
``none``'s final mean accuracy. The gradient probe's results
([gradient_probe][sparsegrad.study.probe.gradient_probe]) are tabulated per layer
([probe_table][sparsegrad.study.depth.probe_table]) and at the first and last LIF layer
([probe_summary][sparsegrad.study.depth.probe_summary]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparsegrad.study.plan import Planned, Task
from sparsegrad.study.stats import mean_sd, paired_comparison
from sparsegrad.train.store import SeedFolder, slug

__all__ = ["NETWORKS", "DEPTH_VARIANTS", "curve", "depth_runs", "depth_rows", "depth_table", "epochs_to_reach",
           "probe_summary", "probe_table"]

NETWORKS: dict[str, str] = {
    "spiking_plain2": "plain, 2 LIF layers",
    "spiking_plain6": "plain, 6 LIF layers",
    "spiking_plain10": "plain, 10 LIF layers",
    "spiking_resnet18": "Spiking ResNet18 (17 LIF layers)",
    "sew_resnet18": "SEW-ResNet18 (17 LIF layers)",
}
"""The networks of the study, by timm name, with their titles."""

DEPTH_VARIANTS: dict[str, dict[str, Any]] = {
    "none": {"msg": False},
    "MSG p=0.5": {"msg": True, "p": 0.5, "msg_rescale": False},
    "MSG p=0.5 rescale": {"msg": True, "p": 0.5, "msg_rescale": True},
    "MSG p=0.25": {"msg": True, "p": 0.25, "msg_rescale": False},
}
"""Field overrides of each variant (TWO is off in the base config)."""

BASELINE = "none"
REACH = 0.9


def depth_runs(tasks: Sequence[Task], variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int],
               out: Path) -> list[Planned]:
    """Every task x seed x variant, seed-major within a task (a partial study stays paired).

    Raises:
        ValueError: ``variants`` lacks ``"none"``, the baseline.
    """
    if BASELINE not in variants:
        raise ValueError(f"depth_runs: the variants must include {BASELINE!r}, got {list(variants)}")
    runs = []
    for task in tasks:
        for seed in seeds:
            for label, overrides in variants.items():
                cfg = dataclasses.replace(task.config, **overrides, seeds=(seed,), fold=seed % task.config.folds,
                                          name=f"{task.name}-{slug(label)}-s{seed}", out_dir=out, resume=None)
                runs.append(Planned(task.name, label, seed, cfg, out / task.name / slug(label) / f"s{seed}"))
    return runs


def curve(planned: Planned) -> list[float]:
    """Test accuracy (%) after each epoch of a finished run, from its ``metrics.csv``."""
    history = SeedFolder(planned.run_dir / f"seed-{planned.seed}").read_history()
    return [100 * record.test_acc for record in history]


def epochs_to_reach(mean_curve: Sequence[float], target: float) -> int | None:
    """The first epoch (1-based) whose value is at least ``target``; None if none is."""
    return next((e for e, acc in enumerate(mean_curve, 1) if acc >= target), None)


def _pick(records: Sequence[dict], task: str, variant: str) -> dict[int, dict]:
    return {r["seed"]: r for r in records if r["task"] == task and r["variant"] == variant}


def depth_rows(records: Sequence[dict], task: str, variants: Sequence[str]) -> list[dict]:
    """One row per variant of ``task``: accuracy mean ± sd (%), the curve's mean and sd per epoch,
    the epochs to reach 90 % of ``none``'s final mean accuracy and, against ``none``, the paired
    difference (points) with its 95 % t interval and p-values.

    ``records`` are [collect][sparsegrad.study.collect]'s records with a ``curve`` added.

    Raises:
        ValueError: a variant ran other seeds than ``none`` (not paired).
    """
    base = _pick(records, task, BASELINE)
    target = REACH * mean_sd([r["test_acc"] for r in base.values()])[0]
    rows = []
    for label in variants:
        runs = _pick(records, task, label)
        seeds = sorted(runs)
        accs = [runs[s]["test_acc"] for s in seeds]
        curves = np.array([runs[s]["curve"] for s in seeds])
        mean, sd = mean_sd(accs)
        row = {"variant": label, "n": len(seeds), "seeds": seeds, "acc_mean": mean, "acc_sd": sd,
               "curve_mean": curves.mean(0).tolist(),
               "curve_sd": (curves.std(0, ddof=1) if len(seeds) > 1 else np.zeros(curves.shape[1])).tolist(),
               "target": target, "epochs_to_target": epochs_to_reach(curves.mean(0), target)}
        if label != BASELINE:
            if sorted(base) != seeds:
                raise ValueError(f"{task} {label!r} ran seeds {seeds}, {BASELINE!r} {sorted(base)}: not paired")
            row.update(paired_comparison(accs, [base[s]["test_acc"] for s in seeds]))
        rows.append(row)
    return rows


def depth_table(rows_by_task: Mapping[str, Sequence[dict]], titles: Mapping[str, str]) -> str:
    """A Markdown table: network, variant, accuracy, paired difference, interval, epochs to 90 %."""
    head = ["network", "variant", "seeds", "test acc % (mean ± sd)", "Δ vs none (points)", "95 % CI",
            "sign-flip p", "epochs to 90 % of none"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, rows in rows_by_task.items():
        for r in rows:
            cells = [titles[task], r["variant"], str(r["n"]), f"{r['acc_mean']:.2f} ± {r['acc_sd']:.2f}"]
            if "mean_diff" in r:
                cells += [f"{r['mean_diff']:+.2f}", f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
                          f"{r['permutation_p']:.3f}"]
            else:
                cells += ["(baseline)", "", ""]
            cells.append("never" if r["epochs_to_target"] is None else str(r["epochs_to_target"]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _probe_label(res: dict) -> str:
    last = res.get("last")  # the published study's probe predates gradient_probe(last=)
    return f"{res['p']:g}" + (" rescale" if res["rescale"] else "") + (f" last={last}" if last else "")


def probe_table(probes: Mapping[str, Sequence[dict]], titles: Mapping[str, str]) -> str:
    """A Markdown table of the probe, one row per network, probed ``p`` and layer group."""
    lines = ["| network | p | layer l | L - l | (1-p)^(L-l) | cosine | gain | norm ratio |", "|" + "---|" * 8]
    for task, results in probes.items():
        for res in results:
            lines += [f"| {titles[task]} | {_probe_label(res)} | {r['layer']} | {r['masks_crossed']} | "
                      f"{r['paths_kept']:.3g} | {r['cosine']:.3f} | {r['gain']:.3g} | {r['norm_ratio']:.3f} |"
                      for r in res["layers"]]
    return "\n".join(lines)


def probe_summary(probes: Mapping[str, Sequence[dict]], titles: Mapping[str, str]) -> str:
    """A Markdown table of the probe at two depths per network and probed ``p``: the first layer
    group (``l = 0``, every LIF layer above it; paths kept ``(1 - p)^L``, or ``(1 - p)^last``) and
    the last LIF layer's (``l = L - 1``, one mask)."""
    head = ["network", "LIF layers L", "p", "l = 0: paths kept", "gain", "cosine", "l = L-1: cosine"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, results in probes.items():
        for res in results:
            rows = {r["layer"]: r for r in res["layers"]}
            first, last = rows[0], rows[res["depth"] - 1]
            lines.append(f"| {titles[task]} | {res['depth']} | {_probe_label(res)} | {first['paths_kept']:.3g} | "
                         f"{first['gain']:.3g} | {first['cosine']:.3f} | {last['cosine']:.3f} |")
    return "\n".join(lines)
