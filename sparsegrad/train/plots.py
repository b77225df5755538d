"""The paper's figures from a run's records, drawn with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` directly (no ``pyplot``), so
nothing touches the process-wide backend or needs a display. Each function of one run reads
its [EpochRecord][sparsegrad.train.record.EpochRecord]s (``SeedFolder.read_history()``) and
writes one PNG.

Every figure follows one style (issue 18): axes labelled in words with units; the TWO factors
on a fixed ``0`` to ``2/T`` axis without offset notation; error bars only over several seeds;
neuron layers named by depth (``LIF 1``, ``LIF 2``, ...); the ablation's variants always in
[ABLATION][sparsegrad.train.paper.ABLATION]'s order and in the colours of
[variant_color][sparsegrad.train.plots.variant_color]; titles say what is shown, never a run id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sparsegrad.train.paper import ABLATION
from sparsegrad.train.record import EpochRecord

__all__ = [
    "VARIANT_COLORS",
    "factor_limits",
    "layer_names",
    "plot_curves",
    "plot_epoch_time",
    "plot_factors",
    "plot_firing_rate",
    "plot_per_timestep",
    "plot_run",
    "plot_sweep",
    "plot_variants",
    "run_title",
    "variant_color",
]

VARIANT_COLORS: dict[str, str] = dict(zip(ABLATION, ("tab:gray", "tab:blue", "tab:orange", "tab:green")))
"""The colour of each of Table 2's variants, in every figure of the project."""
_ALIASES = {"SG": "none"}  # the demo's label of plain surrogate gradients


def variant_color(label: str) -> str:
    """The colour of a variant label: Table 2's (``"MSG&TWO"``), the demo's (``"+MSG&TWO"``,
    ``"SG"``) or a sweep's (``"MSG p=0.25"``, drawn as MSG)."""
    name = label.lstrip("+")
    name = _ALIASES.get(name, name)
    if name not in VARIANT_COLORS and name.startswith("MSG p="):
        name = "MSG"
    return VARIANT_COLORS.get(name, "tab:purple")


def layer_names(count: int) -> list[str]:
    """``LIF 1`` ... ``LIF count``: neuron layers by depth, in network order."""
    return [f"LIF {i}" for i in range(1, count + 1)]


def run_title(model: str, dataset: str, msg: bool, two: bool, p: float, seed: int) -> str:
    """What one run's figures show: network, data, method and seed (``spiking_convnet_s on
    nmnist, MSG (p = 0.5) & TWO, seed 0``)."""
    method = " & ".join(([f"MSG (p = {p:g})"] if msg else []) + (["TWO"] if two else [])) or "plain SG"
    return f"{model} on {dataset}, {method}, seed {seed}"


def factor_limits(T: int, factors) -> tuple[float, float]:
    """The TWO factor axis: ``0`` to ``2/T`` (``1/T`` is uniform), wider only if a factor is."""
    return 0.0, max(2 / T, 1.1 * max(factors, default=0.0))


def _figure(ncols: int = 1, width: float = 5.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _epochs_axis(epochs: Sequence[int], *axes) -> None:
    """Whole epochs on the x axis: each one when few (a single epoch gets one tick, not 0.95-1.05)."""
    for ax in axes:
        if len(epochs) <= 12:
            ax.set_xticks(list(epochs))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: str | os.PathLike, title: str = "") -> Path:
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_curves(history: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """Loss and accuracy per epoch, training and test (paper Fig. 4)."""
    epochs = [r.epoch for r in history]
    fig, (loss, acc) = _figure(2)
    loss.plot(epochs, [r.train_loss for r in history], "o-", ms=3, label="train")
    loss.plot(epochs, [r.test_loss for r in history], "o-", ms=3, label="test")
    loss.set(xlabel="epoch", ylabel="loss", title="loss (train: label-smoothed)")
    acc.plot(epochs, [100 * r.train_acc for r in history], "o-", ms=3, label="train")
    acc.plot(epochs, [100 * r.test_acc for r in history], "o-", ms=3, label="test")
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss, acc):
        ax.grid(alpha=0.3)
        ax.legend()
    _epochs_axis(epochs, loss, acc)
    return _save(fig, path, title)


def plot_per_timestep(history: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """Test accuracy of each timestep's own output: per epoch, and at the last epoch."""
    epochs = [r.epoch for r in history]
    per_step = [r.test_acc_per_step for r in history]
    T = len(per_step[-1])
    fig, (lines, bars) = _figure(2)
    for t in range(T):
        lines.plot(epochs, [100 * a[t] for a in per_step], ".-", label=f"t={t + 1}", lw=1.2)
    lines.plot(epochs, [100 * r.test_acc for r in history], "k.--", lw=1.5, label="weighted output")
    lines.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy of each timestep's output alone")
    lines.legend(fontsize="x-small", ncols=2)
    bars.bar(range(1, T + 1), [100 * a for a in per_step[-1]], color="tab:blue")
    bars.axhline(100 * history[-1].test_acc, color="k", ls="--", label="weighted output")
    bars.set(xlabel="timestep t", ylabel="test accuracy (%)", title=f"epoch {epochs[-1]}",
             xticks=range(1, T + 1))
    bars.legend(fontsize="small")
    for ax in (lines, bars):
        ax.grid(alpha=0.3)
    _epochs_axis(epochs, lines)
    return _save(fig, path, title)


def plot_factors(history: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """The TWO factors of every timestep over the epochs, from ``1/T`` at epoch 0 (Fig. 3)."""
    factors = [r.factors for r in history]
    T = len(factors[-1])
    epochs = [0] + [r.epoch for r in history]
    fig, (ax,) = _figure(1, 6.0)
    for t in range(T):
        ax.plot(epochs, [1 / T] + [f[t] for f in factors], label=f"t={t + 1}")
    ax.set(xlabel="epoch", ylabel="TWO factor (weight of timestep t)", title="TWO factors (Eq. 17)",
           ylim=factor_limits(T, [v for f in factors for v in f]))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.axhline(1 / T, color="0.5", ls=":", lw=1, label="uniform, 1/T")
    ax.grid(alpha=0.3)
    _epochs_axis(epochs, ax)
    ax.legend(fontsize="x-small", ncols=2)
    return _save(fig, path, title)


def plot_firing_rate(rates: Mapping[str, float], path: str | os.PathLike, title: str = "") -> Path:
    """Mean spike rate of every LIF layer, in network order (Fig. 6a)."""
    names = list(rates)
    fig, (ax,) = _figure(1, max(5.0, 0.45 * len(names) + 2))
    ax.bar(range(len(names)), [100 * rates[n] for n in names], color="tab:orange")
    ax.set_xticks(range(len(names)), layer_names(len(names)), rotation=45 if len(names) > 8 else 0)
    ax.set(xlabel="LIF layer, input to output", ylabel="firing rate (% of neurons per timestep)",
           title="firing rate per LIF layer")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, title)


def plot_epoch_time(history: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """Wall time of every epoch, training and evaluation stacked (Fig. 6b)."""
    epochs = [r.epoch for r in history]
    train = [r.train_time_s for r in history]
    test = [r.eval_time_s for r in history]
    fig, (ax,) = _figure(1, 6.0)
    ax.bar(epochs, train, label="train")
    ax.bar(epochs, test, bottom=train, label="eval")
    ax.set(xlabel="epoch", ylabel="wall time (s)", title="time per epoch")
    ax.grid(alpha=0.3, axis="y")
    _epochs_axis(epochs, ax)
    ax.legend()
    return _save(fig, path, title)


def plot_run(folder: str | os.PathLike, history: Sequence[EpochRecord], firing_rate: Mapping[str, float] | None,
             title: str = "") -> list[Path]:
    """All of a run's figures into ``folder``; returns their paths."""
    folder = Path(folder)
    paths = [
        plot_curves(history, folder / "curves.png", title),
        plot_per_timestep(history, folder / "acc_per_timestep.png", title),
        plot_factors(history, folder / "two_factors.png", title),
        plot_epoch_time(history, folder / "epoch_time.png", title),
    ]
    if firing_rate:
        paths.append(plot_firing_rate(firing_rate, folder / "firing_rate.png", title))
    return paths


def _several(rows: Sequence[Mapping]) -> bool:
    return all(len(r.get("seeds", ())) > 1 for r in rows)


def plot_variants(rows: Sequence[Mapping], path: str | os.PathLike, title: str = "") -> Path:
    """Bars of test accuracy per variant (mean; ± sd only over several seeds); ``rows`` have
    ``variant``, ``test_acc``, ``test_acc_sd``, ``seeds`` and optionally ``paper`` (in %)."""
    fig, (ax,) = _figure(1, 6.0)
    xs = range(len(rows))
    seeds = len(rows[0].get("seeds", ())) if rows else 0
    ax.bar(xs, [100 * r["test_acc"] for r in rows], color=[variant_color(r["variant"]) for r in rows],
           yerr=[100 * r["test_acc_sd"] for r in rows] if _several(rows) else None, capsize=4,
           label=f"this run (mean ± sd, {seeds} seeds)" if _several(rows) else f"this run ({seeds} seed)")
    papers = [(x, r["paper"]) for x, r in zip(xs, rows) if r.get("paper") is not None]
    if papers:
        ax.plot(*zip(*papers), "k*", ms=10, label="paper")
    ax.set_xticks(list(xs), [r["variant"] for r in rows])
    ax.set(xlabel="variant", ylabel="test accuracy (%)", title=title or "ablation of MSG and TWO")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_sweep(rows: Sequence[Mapping], path: str | os.PathLike, title: str = "") -> Path:
    """Test accuracy (mean; ± sd only over several seeds) against the MSG drop probability ``p`` (Fig. 5)."""
    fig, (ax,) = _figure(1, 6.0)
    ax.errorbar([r["p"] for r in rows], [100 * r["test_acc"] for r in rows],
                yerr=[100 * r["test_acc_sd"] for r in rows] if _several(rows) else None, fmt="o-", capsize=4,
                color=VARIANT_COLORS["MSG"])
    ax.set(xlabel="MSG drop probability p", ylabel="test accuracy (%)", title=title or "accuracy against p")
    ax.grid(alpha=0.3)
    return _save(fig, path)
