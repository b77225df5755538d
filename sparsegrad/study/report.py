"""The study's tables: accuracy per variant and each variant against the baseline, paired by seed."""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch

from sparsegrad.study.plan import VARIANTS
from sparsegrad.study.stats import mean_sd, paired_comparison

__all__ = ["ablation_rows", "cost_rows", "cost_table", "sweep_rows", "markdown_table", "most_moved_by_msg",
           "study_page", "provenance"]

BASELINE = "none"


def _by_seed(records: Sequence[dict], task: str, variant: str) -> dict[int, float]:
    return {r["seed"]: r["test_acc"] for r in records if r["task"] == task and r["variant"] == variant}


def _row(label: str, acc: dict[int, float], base: dict[int, float], baseline_label: str) -> dict:
    seeds = sorted(acc)
    mean, sd = mean_sd([acc[s] for s in seeds])
    row = {"variant": label, "n": len(seeds), "acc_mean": mean, "acc_sd": sd}
    if label != baseline_label:
        if sorted(base) != seeds:
            raise ValueError(f"{label!r} ran seeds {seeds}, the baseline {sorted(base)}: not paired")
        row.update(paired_comparison([acc[s] for s in seeds], [base[s] for s in seeds]))
    return row


def ablation_rows(records: Sequence[dict], task: str) -> list[dict]:
    """One row per variant of ``task``: accuracy mean ± sd (%) and, against ``none``, the mean
    paired difference (points) with its 95 % t interval, Wilcoxon and sign-flip p-values."""
    base = _by_seed(records, task, BASELINE)
    return [_row(label, _by_seed(records, task, label), base, BASELINE) for label in VARIANTS]


def sweep_rows(records: Sequence[dict], task: str, labels: dict[float, str], seeds: Sequence[int]) -> list[dict]:
    """One row per ``p`` (labels: ``{p: variant label}``) on ``seeds``, against ``p = 0``."""
    def acc(label: str) -> dict[int, float]:
        every = _by_seed(records, task, label)
        return {s: every[s] for s in seeds}

    base = acc(labels[0.0])
    return [{"p": p, **_row(label, acc(label), base, labels[0.0])} for p, label in sorted(labels.items())]


def most_moved_by_msg(records: Sequence[dict], tasks: Sequence[str]) -> str:
    """The task whose mean paired difference MSG - none is largest in size (the sweep's task)."""
    def moved(task: str) -> float:
        return abs(next(r for r in ablation_rows(records, task) if r["variant"] == "MSG")["mean_diff"])
    return max(tasks, key=moved)


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def markdown_table(rows: Sequence[dict], first: str = "variant") -> str:
    """A Markdown table of ablation or sweep rows (accuracy in %, differences in points)."""
    head = [first, "seeds", "test acc % (mean ± sd)", "Δ vs baseline (points)", "95 % CI", "Wilcoxon p",
            "sign-flip p"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        key = f"{r['p']:g}" if first == "p" else r["variant"]
        cells = [key, str(r["n"]), f"{r['acc_mean']:.2f} ± {r['acc_sd']:.2f}"]
        if "mean_diff" in r:
            cells += [f"{r['mean_diff']:+.2f}", f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
                      _fmt_p(r["wilcoxon_p"]), _fmt_p(r["permutation_p"])]
        else:
            cells += ["(baseline)", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_rows(records: Sequence[dict], task: str) -> list[dict]:
    """Per variant of ``task``: the median over seeds of each run's median training time per
    epoch (s), the mean firing rate over LIF layers and seeds, and the fraction of surrogate
    gradient entries MSG dropped."""
    rows = []
    for label in VARIANTS:
        runs = [r for r in records if r["task"] == task and r["variant"] == label]
        rows.append({"variant": label,
                     "epoch_time_s": statistics.median(r["median_train_time_s"] for r in runs),
                     "firing_rate": statistics.fmean(statistics.fmean(r["firing_rate"].values()) for r in runs),
                     "msg_drop_frac": statistics.fmean(r["msg_drop_frac"] for r in runs)})
    return rows


def cost_table(rows: Sequence[dict]) -> str:
    """A Markdown table of [cost_rows][sparsegrad.study.report.cost_rows]."""
    lines = ["| variant | training time per epoch (s, median) | mean firing rate | MSG dropped |",
             "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['epoch_time_s']:.1f} | {r['firing_rate']:.4f} | {r['msg_drop_frac']:.3f} |"
              for r in rows]
    return "\n".join(lines)


def study_page(records: Sequence[dict], titles: dict[str, str]) -> tuple[dict, dict, str]:
    """Per task of ``titles`` (``{task: title}``): the ablation rows, the cost rows, and both as
    one Markdown section (``### title``, the two tables).

    Returns:
        ``(tables, costs, text)``: ``{task: ablation rows}``, ``{task: cost rows}``, the sections.
    """
    tables = {task: ablation_rows(records, task) for task in titles}
    costs = {task: cost_rows(records, task) for task in titles}
    text = "\n\n".join(f"### {titles[task]}\n\n{markdown_table(tables[task])}\n\n{cost_table(costs[task])}"
                       for task in titles)
    return tables, costs, text


def provenance(command: str, cfg) -> dict:
    """What a published results.json records about its run: ``command``, the UTC date, the git
    commit of this checkout (``"unknown"`` outside one), machine, torch version and ``cfg`` (a
    dataclass) as JSON."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit or "unknown", "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.platform()}", "torch": torch.__version__,
            "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str))}
