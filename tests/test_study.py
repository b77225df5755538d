"""The study: its tables and figures on synthetic records, its plan, and the whole pipeline
(``recipes/study.py --quick``) end to end on the embedded data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsegrad.study import ablation_rows, markdown_table, most_moved_by_msg, paired_comparison, sweep_rows
from sparsegrad.study.figures import plot_all

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"features.1": 0.2, "features.4": 0.1}


def fake(task, variant, seed, acc, p=0.0):
    return {"task": task, "variant": variant, "seed": seed, "fold": seed % 5, "p": p, "test_acc": acc,
            "acc_per_step": [acc] * 4, "factors_by_epoch": [[0.25] * 4, [0.2, 0.3, 0.25, 0.25]],
            "firing_rate": LAYERS, "train_time_s": [2.0, 1.0], "median_train_time_s": 1.5, "msg_drop_frac": p}


@pytest.fixture
def records():
    base = {0: 50.0, 1: 52.0, 2: 49.0}
    shift = {"none": 0.0, "TWO": 0.5, "MSG": 2.0, "MSG&TWO": 1.0}
    rows = [fake(t, v, s, a + d + (t == "b") * 10) for t in "ab" for v, d in shift.items() for s, a in base.items()]
    rows += [fake("a", "MSG p=0.9", s, a - 3, p=0.9) for s, a in base.items()]
    return rows


def test_ablation_rows_pair_each_variant_with_none_by_seed(records):
    rows = {r["variant"]: r for r in ablation_rows(records, "a")}
    assert rows["none"]["acc_mean"] == pytest.approx(50.333333) and "mean_diff" not in rows["none"]
    assert rows["MSG"]["mean_diff"] == pytest.approx(2.0) and rows["MSG"]["sd_diff"] == 0
    expected = paired_comparison([50.5, 52.5, 49.5], [50, 52, 49])
    assert {k: rows["TWO"][k] for k in expected} == pytest.approx(expected)


def test_unpaired_seeds_are_refused(records):
    with pytest.raises(ValueError, match="not paired"):
        ablation_rows([r for r in records if not (r["variant"] == "none" and r["seed"] == 2)], "a")


def test_sweep_rows_compare_with_p_zero_on_the_sweep_seeds(records):
    rows = sweep_rows(records, "a", {0.0: "none", 0.5: "MSG", 0.9: "MSG p=0.9"}, seeds=[0, 1])
    assert [r["p"] for r in rows] == [0.0, 0.5, 0.9]
    assert rows[2]["mean_diff"] == pytest.approx(-3.0) and rows[2]["n"] == 2


def test_the_sweep_goes_to_the_task_msg_moved_most(records):
    moved = [dict(r, test_acc=r["test_acc"] + 5) if r["task"] == "b" and r["variant"] == "MSG" else r
             for r in records]
    assert most_moved_by_msg(records, ["a", "b"]) == "a"  # equal shifts: the first
    assert most_moved_by_msg(moved, ["a", "b"]) == "b"


def test_markdown_table_shows_interval_and_p_values(records):
    text = markdown_table(ablation_rows(records, "a"))
    assert "| MSG | 3 | 52.33 ± 1.53 | +2.00 | [+2.00, +2.00] | 0.250 | 0.250 |" in text
    assert "| none | 3 | 50.33 ± 1.53 | (baseline) |" in text


def test_figures_are_written(records, tmp_path):
    sweep = sweep_rows(records, "a", {0.0: "none", 0.5: "MSG", 0.9: "MSG p=0.9"}, seeds=[0, 1, 2])
    paths = plot_all(records, {"a": "A", "b": "B"}, ["none", "TWO", "MSG", "MSG&TWO"], sweep, "a", [0, 1, 2],
                     tmp_path)
    assert [p.name for p in paths] == ["accuracy_per_variant.png", "accuracy_vs_p.png", "two_factors.png",
                                       "firing_rate.png", "epoch_time.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def _study(out: Path) -> dict:
    subprocess.run([sys.executable, str(ROOT / "recipes" / "study.py"), "--quick", "--out-dir", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads((out / "results.json").read_text())


def test_quick_study_runs_the_whole_pipeline_and_resumes(tmp_path):
    first = _study(tmp_path)
    assert set(first["ablation"]) == {"nmnist", "cifar10"}
    for rows in first["ablation"].values():
        assert [r["variant"] for r in rows] == ["none", "TWO", "MSG", "MSG&TWO"]
        assert all(r["n"] == 2 for r in rows)
    assert [r["p"] for r in first["sweep"]] == [0.0, 0.25, 0.5, 0.75, 0.9]
    # seed s tests fold s % 5, and under one seed the variants share their fold
    assert {(r["seed"], r["fold"]) for r in first["records"]} == {(0, 0), (1, 1)}
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "accuracy_per_variant.png", "accuracy_vs_p.png", "epoch_time.png", "firing_rate.png", "two_factors.png"]
    # A study killed after a run's last checkpoint but before its results: the rerun resumes it.
    (tmp_path / "cifar10" / "msg" / "s1" / "results.json").unlink()
    again = _study(tmp_path)
    strip = ("train_time_s", "median_train_time_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again["records"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in first["records"]]
