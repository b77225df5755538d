"""The depth study: the plain networks, the plan's pairing, the tables, and
``recipes/study_depth.py --quick`` end to end with a resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import sparsegrad.models  # noqa: F401  (registers the models)
from sparsegrad.models.plain import plain_layout
from sparsegrad.neuron import LIF
from sparsegrad.study import Task
from sparsegrad.study.depth import DEPTH_VARIANTS, depth_rows, depth_runs, depth_table, epochs_to_reach
from sparsegrad.train import RecipeConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("depth", [2, 6, 10])
def test_plain_nets_have_their_number_of_lif_layers(depth):
    net = timm.create_model(f"spiking_plain{depth}", in_chans=3, img_size=16, num_classes=10, T=2)
    assert sum(isinstance(m, LIF) for m in net.modules()) == depth
    assert plain_layout(depth).count(32) == depth
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 2, 10)


def test_plain_layout_spreads_three_pools():
    assert plain_layout(2) == (32, "A", 32, "A")
    assert plain_layout(10) == (32,) * 4 + ("A",) + (32,) * 3 + ("A",) + (32,) * 3 + ("A",)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        plain_layout(0)


def test_the_plan_pairs_variants_by_seed_and_fold(tmp_path):
    task = Task("net", "Net", RecipeConfig(folds=5, two=False))
    plan = depth_runs([task], DEPTH_VARIANTS, (0, 6), tmp_path)
    assert len(plan) == 8
    assert {(p.seed, p.config.fold) for p in plan} == {(0, 0), (6, 1)}
    rescaled = next(p for p in plan if p.variant == "MSG p=0.5 rescale")
    assert (rescaled.config.msg, rescaled.config.p, rescaled.config.msg_rescale) == (True, 0.5, True)
    assert not next(p for p in plan if p.variant == "none").config.msg
    assert len({p.run_dir for p in plan}) == 8
    with pytest.raises(ValueError, match="must include 'none'"):
        depth_runs([task], {"MSG": {"msg": True}}, (0,), tmp_path)


def test_epochs_to_reach():
    assert epochs_to_reach([10, 50, 80], 50) == 2
    assert epochs_to_reach([10, 20], 50) is None


def _records():
    rows = []
    for seed, (base, msg) in enumerate([(80, 70), (82, 74), (78, 66)]):
        rows.append({"task": "t", "variant": "none", "seed": seed, "test_acc": base, "curve": [60, base]})
        rows.append({"task": "t", "variant": "MSG", "seed": seed, "test_acc": msg, "curve": [40, msg]})
    return rows


def test_depth_rows_pair_with_none_and_count_epochs_to_ninety_percent():
    none, msg = depth_rows(_records(), "t", ["none", "MSG"])
    assert none["acc_mean"] == pytest.approx(80) and none["target"] == pytest.approx(72)
    assert none["epochs_to_target"] == 2 and msg["epochs_to_target"] is None  # MSG's mean 70 < 72
    assert msg["mean_diff"] == pytest.approx(-10) and msg["ci_high"] < 0
    assert msg["curve_mean"] == pytest.approx([40, 70]) and msg["curve_sd"] == pytest.approx([0, 4])
    assert "| Net | MSG | 3 | 70.00 ± 4.00 | -10.00 |" in depth_table({"t": [none, msg]}, {"t": "Net"})
    with pytest.raises(ValueError, match="not paired"):
        depth_rows(_records()[:-1], "t", ["none", "MSG"])


def _study(out: Path) -> dict:
    subprocess.run([sys.executable, str(ROOT / "recipes" / "study_depth.py"), "--quick", "--out-dir", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads((out / "results.json").read_text())


def test_quick_depth_study_runs_the_whole_pipeline_and_resumes(tmp_path):
    first = _study(tmp_path)
    assert list(first["tables"]) == ["spiking_plain2", "spiking_plain6"]
    for rows in first["tables"].values():
        assert [r["variant"] for r in rows] == list(DEPTH_VARIANTS)
        assert all(r["n"] == 2 and len(r["curve_mean"]) == 1 for r in rows)
    assert {(r["seed"], r["fold"]) for r in first["records"]} == {(0, 0), (1, 1)}
    probe = first["probe"]["spiking_plain6"]
    assert [(r["p"], r["rescale"]) for r in probe] == [(0.25, False), (0.5, False), (0.5, True)]
    assert [r["masks_crossed"] for r in probe[0]["layers"]] == [6, 5, 4, 3, 2, 1, 0]
    assert {"command", "date", "commit", "machine", "config"} <= set(first)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["accuracy_vs_epoch.png", "probe.png"]
    # Killed after a run's last checkpoint but before its results: the rerun resumes it.
    (tmp_path / "spiking_plain6" / "msg-p-0.5" / "s1" / "results.json").unlink()
    again = _study(tmp_path)
    strip = ("train_time_s", "median_train_time_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again["records"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in first["records"]]
    assert again["probe"] == first["probe"]
