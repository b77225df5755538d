"""Reading the study's run folders into one record per run."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence

from sparsegrad.study.plan import Planned

__all__ = ["collect", "record"]


def _steps(row: dict, prefix: str) -> list[float]:
    keys = sorted((k for k in row if k.startswith(prefix) and k[len(prefix):].isdigit()),
                  key=lambda k: int(k[len(prefix):]))
    return [float(row[k]) for k in keys]


def record(planned: Planned) -> dict:
    """One finished run as a flat record.

    Returns:
        ``task``, ``variant``, ``seed``, ``fold``, ``p`` (0 when MSG is off), ``msg``, ``two``,
        ``test_acc`` (final epoch, %), ``acc_per_step`` (%, t = 1..T), ``factors_by_epoch``
        (TWO factors after each epoch), ``firing_rate`` (``{layer: mean spikes per neuron and
        timestep}``), ``train_time_s`` (per epoch), ``median_train_time_s`` and
        ``msg_drop_frac`` (fraction of surrogate-gradient entries dropped over the run).

    Raises:
        FileNotFoundError: the run has not written its results.
    """
    cfg, seed_dir = planned.config, planned.run_dir / f"seed-{planned.seed}"
    result = json.loads((planned.run_dir / "results.json").read_text())["runs"][0]
    with open(seed_dir / "metrics.csv", newline="") as f:
        history = list(csv.DictReader(f))
    times = [float(h["train_time_s"]) for h in history]
    seen = sum(int(h["msg_seen"]) for h in history)
    return {
        "task": planned.task, "variant": planned.variant, "seed": planned.seed, "fold": cfg.fold,
        "p": cfg.p if cfg.msg else 0.0, "msg": cfg.msg, "two": cfg.two,
        "test_acc": 100 * result["test_acc"],
        "acc_per_step": [100 * a for a in result["acc_per_step"]],
        "factors_by_epoch": [_steps(h, "factor_t") for h in history],
        "firing_rate": json.loads((seed_dir / "firing_rate.json").read_text()),
        "train_time_s": times,
        "median_train_time_s": statistics.median(times),
        "msg_drop_frac": sum(int(h["msg_dropped"]) for h in history) / seen if seen else 0.0,
    }


def collect(plan: Sequence[Planned]) -> list[dict]:
    """Records of every run in ``plan``, each run once (the sweep reuses ablation runs)."""
    seen, records = set(), []
    for planned in plan:
        if planned.run_dir not in seen:
            seen.add(planned.run_dir)
            records.append(record(planned))
    return records
