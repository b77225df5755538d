"""The figures as a researcher would put them in a draft (issue 18), read back from the figure
objects each plot function saves: titles, axis labels, the TWO axis range, layer names, error
bars only over several seeds, one colour per variant everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from sparsegrad.study import VARIANTS
from sparsegrad.study.figures import plot_all
from sparsegrad.train.paper import ABLATION
from sparsegrad.train.plots import VARIANT_COLORS, plot_run, plot_sweep, plot_variants, run_title, variant_color
from sparsegrad.train.record import EpochRecord

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def saved(monkeypatch) -> dict[str, Figure]:
    """Every figure saved during the test, by file name."""
    figures, savefig = {}, Figure.savefig

    def keep(self, path, *args, **kwargs):
        figures[Path(path).name] = self
        return savefig(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _history(T: int = 4, epochs: int = 3, factors=None) -> list[EpochRecord]:
    # TWO off: the factors stay 1/T up to float32 rounding, the case that drew an offset axis.
    factors = factors or (0.10000000149,) * T
    return [EpochRecord(epoch=e, lr=1e-3, train_loss=2.0 / e, train_acc=0.2 * e, test_loss=2.1 / e,
                        test_acc=0.2 * e, best_test_acc=0.2 * e, test_acc_per_step=(0.1 * e,) * T,
                        factors=tuple(factors), train_time_s=3.0, eval_time_s=1.0, epoch_time_s=4.0, msg_p=0.5,
                        msg_seen=10, msg_dropped=5, msg_drop_frac=0.5) for e in range(1, epochs + 1)]


def _words(label: str) -> bool:
    return len(label) > 3 and any(c == " " for c in label) or label in ("epoch", "loss", "variant")


def _offset(ax) -> str:
    ax.figure.canvas.draw()
    return ax.yaxis.get_offset_text().get_text()


def test_run_figures_have_words_a_fixed_two_axis_and_layers_by_depth(saved, tmp_path):
    title = run_title("spiking_convnet_s", "nmnist", msg=True, two=False, p=0.5, seed=0)
    rates = {"features.2.lif": 0.1, "stages.1.0.1": 0.05, "head.lif": 0.2}
    plot_run(tmp_path, _history(T=10), rates, title=title)
    assert set(saved) == {"curves.png", "acc_per_timestep.png", "two_factors.png", "epoch_time.png",
                          "firing_rate.png"}
    for name, fig in saved.items():
        assert fig.get_suptitle() == "spiking_convnet_s on nmnist, MSG (p = 0.5), seed 0", name
        for ax in fig.axes:
            assert _words(ax.get_xlabel()) and _words(ax.get_ylabel()), (name, ax.get_xlabel(), ax.get_ylabel())
            assert ax.get_title()
    (two,) = saved["two_factors.png"].axes
    assert two.get_ylim() == pytest.approx((0.0, 2 / 10))
    assert _offset(two) == ""
    assert "TWO factor" in two.get_ylabel()
    (rate,) = saved["firing_rate.png"].axes
    assert [t.get_text() for t in rate.get_xticklabels()] == ["LIF 1", "LIF 2", "LIF 3"]
    assert "%" in rate.get_ylabel()


def test_two_axis_widens_only_for_a_factor_above_two_over_T(saved, tmp_path):
    plot_run(tmp_path, _history(T=4, factors=(0.05, 0.05, 0.1, 0.8)), None)
    assert saved["two_factors.png"].axes[0].get_ylim() == pytest.approx((0.0, 0.88))


def _rows(seeds: int) -> list[dict]:
    return [{"variant": v, "test_acc": 0.5 + 0.01 * i, "test_acc_sd": 0.02 if seeds > 1 else float("nan"),
             "seeds": list(range(seeds)), "p": 0.25 * i} for i, v in enumerate(ABLATION)]


@pytest.mark.parametrize("seeds", [1, 3])
def test_error_bars_only_over_several_seeds_and_colours_per_variant(saved, tmp_path, seeds):
    plot_variants(_rows(seeds), tmp_path / "v.png", title="Ablation of MSG and TWO: m on d")
    plot_sweep(_rows(seeds), tmp_path / "s.png")
    (bars,) = saved["v.png"].axes
    assert bars.get_title() == "Ablation of MSG and TWO: m on d"
    assert any(isinstance(c, ErrorbarContainer) for c in bars.containers) == (seeds > 1)
    assert [p.get_facecolor() for p in bars.patches] == [to_rgba(VARIANT_COLORS[v]) for v in ABLATION]
    (sweep,) = saved["s.png"].axes
    assert sweep.get_xlabel() == "MSG drop probability p"
    assert (len(sweep.containers[0].lines[2]) > 0) == (seeds > 1)  # the error bar segments


def test_demo_labels_share_the_ablation_colours():
    assert [variant_color(v) for v in ("SG", "+TWO", "+MSG", "+MSG&TWO")] == list(VARIANT_COLORS.values())
    assert variant_color("MSG p=0.25") == VARIANT_COLORS["MSG"]
    assert list(VARIANT_COLORS) == list(ABLATION) == list(VARIANTS)


def test_study_figures_of_the_published_records(saved, tmp_path):
    run = json.loads((DOCS / "study" / "results.json").read_text())
    plot_all(run["records"], run["tasks"], list(VARIANTS), run["sweep"], run["sweep_task"],
             run["config"]["sweep_seeds"], tmp_path)
    for name, fig in saved.items():
        for ax in fig.axes:
            assert _words(ax.get_xlabel()) and _words(ax.get_ylabel()), (name, ax.get_xlabel(), ax.get_ylabel())
            assert ax.get_title() and not re.search(r"\d{8}-\d{6}|seed-\d|/", ax.get_title())  # no run ids
    for ax, task in zip(saved["two_factors.png"].axes, run["tasks"]):
        T = len(next(r for r in run["records"] if r["task"] == task)["acc_per_step"])
        assert ax.get_ylim() == pytest.approx((0.0, 2 / T))
        assert _offset(ax) == ""
    for ax in saved["firing_rate.png"].axes:
        assert all(t.get_text().startswith("LIF ") for t in ax.get_xticklabels())
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none", "MSG"]
    for ax in saved["epoch_time.png"].axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == list(VARIANTS)
        assert [p.get_facecolor()[:3] for p in ax.patches] == [to_rgba(VARIANT_COLORS[v])[:3] for v in VARIANTS]
