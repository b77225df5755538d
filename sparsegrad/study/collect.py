"""Reading the study's run folders into one record per run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from sparsegrad.study.plan import Planned
from sparsegrad.train.store import RunFolder

__all__ = ["collect", "record"]


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
    cfg, run = planned.config, RunFolder(planned.run_dir)
    result = run.read_results()["runs"][0]
    history = run.seed(planned.seed).read_history()
    times = [h.train_time_s for h in history]
    seen = sum(h.msg_seen for h in history)
    return {
        "task": planned.task, "variant": planned.variant, "seed": planned.seed, "fold": cfg.fold,
        "p": cfg.p if cfg.msg else 0.0, "msg": cfg.msg, "two": cfg.two,
        "test_acc": 100 * result["test_acc"],
        "acc_per_step": [100 * a for a in result["acc_per_step"]],
        "factors_by_epoch": [list(h.factors) for h in history],
        "firing_rate": run.seed(planned.seed).read_firing_rate(),
        "train_time_s": times,
        "median_train_time_s": statistics.median(times),
        "msg_drop_frac": sum(h.msg_dropped for h in history) / seen if seen else 0.0,
    }


def collect(plan: Sequence[Planned]) -> list[dict]:
    """Records of every run in ``plan``, each run once (the sweep reuses ablation runs)."""
    seen, records = set(), []
    for planned in plan:
        if planned.run_dir not in seen:
            seen.add(planned.run_dir)
            records.append(record(planned))
    return records
