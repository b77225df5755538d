"""The depth study's figures (PNG, matplotlib's Agg canvas): accuracy against epoch per network
and variant (mean ± sd over seeds), and the gradient probe against depth beside the paths-kept
prediction ``(1 - p)^(L - l)``. ``none`` has the colour it has in every figure
([variant_color][sparsegrad.train.plots.variant_color]); the MSG variants follow in matplotlib's cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sparsegrad.train.plots import variant_color

__all__ = ["plot_curves", "plot_probe"]


def _figure(ncols: int, width: float = 3.8, height: float = 3.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_curves(rows_by_task: Mapping[str, Sequence[dict]], titles: Mapping[str, str], path: Path) -> Path:
    """Test accuracy after each epoch, one panel per network, mean (± sd over several seeds) per
    variant; the dotted line is 90 % of ``none``'s final accuracy."""
    fig, axes = _figure(len(rows_by_task))
    for ax, (task, rows) in zip(axes, rows_by_task.items()):
        for i, r in enumerate(rows):
            mean, sd = np.array(r["curve_mean"]), np.array(r["curve_sd"])
            epochs = np.arange(1, mean.size + 1)
            color = variant_color("none") if r["variant"] == "none" else f"C{i}"
            ax.plot(epochs, mean, marker=".", color=color, label=r["variant"])
            if r["n"] > 1:
                ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        ax.axhline(rows[0]["target"], color="0.5", ls=":", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(titles[task], fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_probe(probes: Mapping[str, Sequence[dict]], titles: Mapping[str, str], path: Path) -> Path:
    """Per network: the cosine (solid) and the gain ``<g_mask, g>/|g|^2`` (dashed) of each LIF
    layer's masked gradient, with the paths-kept prediction (dotted), for each probed ``p``."""
    fig, axes = _figure(len(probes))
    for ax, (task, results) in zip(axes, probes.items()):
        for i, res in enumerate(results):
            layers = [r["layer"] for r in res["layers"]]
            label = f"p={res['p']:g}" + (" rescale" if res["rescale"] else "")
            ax.plot(layers, [r["cosine"] for r in res["layers"]], "-o", ms=3, color=f"C{i}", label=f"{label} cosine")
            ax.plot(layers, [r["gain"] for r in res["layers"]], "--", color=f"C{i}", lw=1)
            ax.plot(layers, [r["paths_kept"] for r in res["layers"]], ":", color=f"C{i}", lw=1.5)
        ax.set_yscale("log")
        ax.set_xlabel("layer l, input to readout L")
        ax.set_ylabel("cosine (solid), gain (dashed), (1-p)^(L-l) (dotted)")
        ax.set_title(titles[task], fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(fig, path)
