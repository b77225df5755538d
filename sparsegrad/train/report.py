"""Results of runs: one seed's record, the summary over seeds, and the one table they print as.

Every table of the project (a run's seeds, the demo's variants, Table 2's ablation, Fig. 5's
sweep of p) is [format_table][sparsegrad.train.report.format_table] over rows that hold
``test_acc`` (and ``test_acc_sd``), ``best_test_acc``, ``acc_per_step``, ``factors`` and
``time_s``, the keys [summarise][sparsegrad.train.report.summarise] and
[seed_result][sparsegrad.train.report.seed_result] write.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from sparsegrad.train.record import EpochRecord, step_columns
from sparsegrad.train.store import write_csv, write_json

__all__ = ["format_table", "mean_sd", "seed_result", "summarise", "write_results", "write_variant_records"]


def seed_result(seed: int, epochs: int, history: Sequence[EpochRecord]) -> dict:
    """One seed's record from its epochs: final and best accuracy, per-timestep accuracy and
    factors of the last epoch, time."""
    last = history[-1]
    best = max(history, key=lambda h: h.test_acc)
    return {"seed": seed, "epochs": epochs, "complete": last.epoch == epochs,
            "test_acc": last.test_acc, "best_test_acc": best.test_acc, "best_epoch": best.epoch,
            "acc_per_step": list(last.test_acc_per_step), "factors": list(last.factors),
            "time_s": sum(h.epoch_time_s for h in history),
            "mean_epoch_time_s": statistics.fmean(h.epoch_time_s for h in history)}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1``; ``nan`` for a single value, where the
    sample sd is undefined).

    Raises:
        ValueError: ``values`` is empty.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd needs at least one value, got none")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def summarise(results: Sequence[Mapping]) -> dict:
    """Mean and sd over seeds of the final and best test accuracy; mean per-timestep accuracy,
    factors and time."""
    acc, acc_sd = mean_sd([r["test_acc"] for r in results])
    best, best_sd = mean_sd([r["best_test_acc"] for r in results])
    return {"seeds": [r["seed"] for r in results], "test_acc": acc, "test_acc_sd": acc_sd,
            "best_test_acc": best, "best_test_acc_sd": best_sd,
            "acc_per_step": [statistics.fmean(a) for a in zip(*(r["acc_per_step"] for r in results))],
            "factors": [statistics.fmean(f) for f in zip(*(r["factors"] for r in results))],
            "time_s": statistics.fmean(r["time_s"] for r in results)}


def _pct(row: Mapping, key: str) -> str:
    text = f"{100 * row[key]:.2f}"
    if math.isfinite(row.get(f"{key}_sd", math.nan)):
        text += f" ± {100 * row[f'{key}_sd']:.2f}"
    return text


def _cells(row: Mapping, label: str, paper: Mapping | None) -> tuple[str, ...]:
    best = _pct(row, "best_test_acc") + (f" ({row['best_epoch']})" if "best_epoch" in row else "")
    minutes, seconds = divmod(round(row["time_s"]), 60)
    cells = (str(row[label]), _pct(row, "test_acc"), best,
             " ".join(f"{100 * a:>3.0f}" for a in row["acc_per_step"]),
             " ".join(f"{f:.3f}".lstrip("0") for f in row["factors"]), f"{minutes}m{seconds:02d}s")
    if paper is not None:
        cells += (f"{paper[row[label]]:.2f}" if row[label] in paper else "-",)
    return cells


def format_table(rows: Sequence[Mapping], label: str = "seed", paper: Mapping[str, float] | None = None) -> str:
    """label | test acc % | best % | accuracy of each timestep alone | final TWO factors | time [| paper %].

    Args:
        rows: dicts with ``label``, ``test_acc`` (optional ``test_acc_sd``), ``best_test_acc``
            (optional ``best_test_acc_sd``, ``best_epoch``), ``acc_per_step``, ``factors``, ``time_s``.
        label: the key naming each row (``"seed"``, ``"variant"``, ``"p"``).
        paper: the paper's accuracy (%) per label; adds a column.

    Returns:
        The table as text, columns aligned.
    """
    head = (label, "test acc %", "best %", "acc % of timestep t = 1..T alone", "final TWO factors t = 1..T", "time")
    if paper is not None:
        head += ("paper %",)
    lines = [head] + [_cells(r, label, paper) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [" | ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(text)


def write_results(run_dir: Path, name: str, results: list[dict], summary: dict, table: str,
                  paper: str | None) -> None:
    """``results.json`` (summary, every seed, the table) and ``results.csv`` (one row per seed)."""
    write_json(run_dir / "results.json", {"name": name, "summary": summary, "runs": results, "table": table,
                                          "paper_result": paper})
    write_csv(run_dir / "results.csv", [
        {"seed": r["seed"], "test_acc": r["test_acc"], "best_test_acc": r["best_test_acc"],
         "best_epoch": r["best_epoch"], **step_columns("acc_t", r["acc_per_step"]),
         **step_columns("factor_t", r["factors"]),
         "time_s": r["time_s"]} for r in results])


def write_variant_records(folder: Path, stem: str, name: str, rows: list[dict], table: str,
                          columns: Sequence[str]) -> None:
    """A set of variants' records: ``table.txt``, ``<stem>.json`` (rows and table) and
    ``<stem>.csv`` (``columns`` of every row)."""
    (folder / "table.txt").write_text(table + "\n", encoding="utf-8")
    write_json(folder / f"{stem}.json", {"recipe": name, "rows": rows, "table": table})
    write_csv(folder / f"{stem}.csv", [{k: r.get(k) for k in columns} for r in rows])
