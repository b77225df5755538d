"""The study's figures (PNG, matplotlib's Agg canvas, no pyplot): accuracy per variant, accuracy
against p (paper Fig. 5), TWO factors over epochs (Fig. 3), firing rate per layer (Fig. 6a) and
training time per epoch (Fig. 6b), each with and without MSG.

They follow the style of [sparsegrad.train.plots][sparsegrad.train.plots]: its variant colours and
order, layers by depth, TWO factors on ``0`` to ``2/T``, intervals only over several seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from sparsegrad.study.plan import VARIANTS
from sparsegrad.train.plots import factor_limits, layer_names, variant_color

__all__ = ["plot_all", "plot_epoch_time", "plot_factors", "plot_firing_rate", "plot_sweep", "plot_variants"]


def _figure(ncols: int, width: float = 4.6, height: float = 3.6) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95 % t interval (``None`` for one value: no bar)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), None
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def _pick(records, **match) -> list[dict]:
    return [r for r in records if all(r[k] == v for k, v in match.items())]


def plot_variants(records, tasks: dict[str, str], variants: Sequence[str], path: Path) -> Path:
    """Test accuracy per variant: seeds as grey paired lines, the mean (with its 95 % t interval
    over several seeds) in the variant's colour."""
    fig, axes = _figure(len(tasks))
    for ax, (task, title) in zip(axes, tasks.items()):
        by_seed: dict[int, list[float]] = {}
        for i, v in enumerate(variants):
            rows = _pick(records, task=task, variant=v)
            for r in rows:
                by_seed.setdefault(r["seed"], [math.nan] * len(variants))[i] = r["test_acc"]
            mean, half = _mean_ci([r["test_acc"] for r in rows])
            ax.errorbar(i, mean, yerr=half, fmt="o", color=variant_color(v), capsize=5, zorder=3)
        for accs in by_seed.values():
            ax.plot(range(len(variants)), accs, color="0.75", lw=0.8, zorder=1)
        ax.set_xticks(range(len(variants)), variants)
        ax.set_title(f"{title}\ntest accuracy per variant (Table 2)")
        ax.set_xlabel("variant (grey lines: the runs of one seed)")
        ax.set_ylabel("test accuracy (%)")
    return _save(fig, path)


def plot_sweep(rows: Sequence[dict], records, task: str, title: str, seeds: Sequence[int], path: Path) -> Path:
    """Accuracy against the drop probability p (MSG alone) on the sweep's seeds: each seed, and
    the mean with its 95 % t interval."""
    fig, (ax,) = _figure(1, width=5.5)
    means, halves = [], []
    for r in rows:
        accs = [x["test_acc"] for x in _pick(records, task=task, variant=r["variant"]) if x["seed"] in seeds]
        ax.scatter([r["p"]] * len(accs), accs, color="0.6", s=12, zorder=2)
        mean, half = _mean_ci(accs)
        means.append(mean)
        halves.append(half)
    ax.errorbar([r["p"] for r in rows], means, yerr=None if None in halves else halves, fmt="-o",
                color=variant_color("MSG"), capsize=5, zorder=3)
    ax.set_xlabel("MSG drop probability p")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}\naccuracy against p (Fig. 5)")
    return _save(fig, path)


def plot_factors(records, tasks: dict[str, str], path: Path) -> Path:
    """TWO factors after each epoch (uniform at epoch 0), mean over the seeds of the TWO variant (Fig. 3)."""
    fig, axes = _figure(len(tasks))
    for ax, (task, title) in zip(axes, tasks.items()):
        runs = np.array([r["factors_by_epoch"] for r in _pick(records, task=task, variant="TWO")])
        mean = runs.mean(0)  # [epochs, T]
        mean = np.vstack([np.full(mean.shape[1], 1 / mean.shape[1]), mean])  # uniform before training
        epochs = np.arange(mean.shape[0])
        for t in range(mean.shape[1]):
            ax.plot(epochs, mean[:, t], marker=".", label=f"t={t + 1}")
        ax.axhline(1 / mean.shape[1], color="0.5", ls=":", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(factor_limits(mean.shape[1], mean.ravel().tolist()))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("epoch")
        ax.set_ylabel("TWO factor (weight of timestep t)")
        ax.set_title(f"{title}\nTWO factors (Fig. 3)")
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def _paired_bars(ax, labels: Sequence[str], groups: dict[str, list[list[float]]]) -> None:
    width = 0.8 / len(groups)
    x = np.arange(len(labels))
    for i, (name, runs) in enumerate(groups.items()):
        values = np.array(runs, dtype=float)
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, values.mean(0), width, color=variant_color(name),
               yerr=values.std(0, ddof=1) if len(values) > 1 else None, capsize=3, label=name)
    ax.set_xticks(x, labels, fontsize=8)
    ax.legend(fontsize=8)


def plot_firing_rate(records, tasks: dict[str, str], path: Path) -> Path:
    """Mean firing rate of each LIF layer without and with MSG (Fig. 6a), mean ± sd over seeds."""
    fig, axes = _figure(len(tasks))
    for ax, (task, title) in zip(axes, tasks.items()):
        groups = {v: [list(r["firing_rate"].values()) for r in _pick(records, task=task, variant=v)]
                  for v in ("none", "MSG")}
        layers = layer_names(len(_pick(records, task=task, variant="none")[0]["firing_rate"]))
        _paired_bars(ax, layers, groups)
        ax.set_xlabel("LIF layer, input to output")
        ax.set_ylabel("firing rate (spikes per neuron per timestep)")
        ax.set_title(f"{title}\nfiring rate (Fig. 6a)")
    return _save(fig, path)


def plot_epoch_time(records, tasks: dict[str, str], path: Path) -> Path:
    """Training time per epoch of each variant (Fig. 6b): one point per seed (the run's median
    epoch), the bar at the median over seeds, robust to the slow first epoch that fills the
    frame cache and to other load on the machine."""
    variants = tuple(VARIANTS)
    fig, axes = _figure(len(tasks), width=3.8)
    for ax, (task, title) in zip(axes, tasks.items()):
        for i, v in enumerate(variants):
            times = [r["median_train_time_s"] for r in _pick(records, task=task, variant=v)]
            ax.bar(i, float(np.median(times)), 0.6, color=variant_color(v), alpha=0.6)
            ax.scatter([i] * len(times), times, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(variants)), variants)
        ax.set_xlabel("variant (dots: seeds, bar: median)")
        ax.set_ylabel("training time per epoch (s)")
        ax.set_title(f"{title}\ntraining time (Fig. 6b)")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_all(records, tasks: dict[str, str], variants: Sequence[str], sweep: Sequence[dict],
             sweep_task: str | None, sweep_seeds: Sequence[int], folder: Path) -> list[Path]:
    """Every figure of the study into ``folder`` (accuracy against p only with a ``sweep``);
    returns their paths."""
    return [
        plot_variants(records, tasks, variants, folder / "accuracy_per_variant.png"),
        *([plot_sweep(sweep, records, sweep_task, tasks[sweep_task], sweep_seeds, folder / "accuracy_vs_p.png")]
          if sweep else []),
        plot_factors(records, tasks, folder / "two_factors.png"),
        plot_firing_rate(records, tasks, folder / "firing_rate.png"),
        plot_epoch_time(records, tasks, folder / "epoch_time.png"),
    ]
