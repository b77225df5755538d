"""The study and the ablation on a user's own image folder (issue 18): ``python -m sparsegrad.study``
and ``recipes/ablation.py any``, each on a tiny folder for one epoch."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import load_script, write_image_folder

from sparsegrad.study.__main__ import main as study
from sparsegrad.train import RecipeConfig
from sparsegrad.train.paper import RECIPES, paper_row, run_label

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["accuracy_per_variant.png", "epoch_time.png", "firing_rate.png", "two_factors.png"]


def _folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "shapes", {"circle": 10, "square": 10, "star": 10}, mode="L")


def test_the_study_runs_on_an_image_folder_and_writes_its_page(tmp_path):
    cfg = RecipeConfig(dataset="imagefolder", data_root=_folder(tmp_path), model="spiking_convnet_s", T=2,
                       epochs=1, seeds=(0, 1), num_workers=0, out_dir=tmp_path / "runs")
    folder = study(cfg)
    assert folder.parent == tmp_path / "runs" and folder.name.startswith("study-imagefolder-spiking-convnet-s-")
    result = json.loads((folder / "results.json").read_text())
    (task,) = result["ablation"]
    rows = result["ablation"][task]
    assert [r["variant"] for r in rows] == ["none", "TWO", "MSG", "MSG&TWO"] and {r["n"] for r in rows} == {2}
    assert all("ci_low" in r and "wilcoxon_p" in r for r in rows[1:])
    # paired: under one seed every variant tested the same fold (seed s tests fold s % 5)
    assert {(r["seed"], r["fold"]) for r in result["records"]} == {(0, 0), (1, 1)}
    page = (folder / "results.md").read_text()
    assert "# MSG and TWO on spiking_convnet_s on imagefolder (shapes)" in page
    assert result["tables_markdown"] in page
    assert sorted(p.name for p in (folder / "figures").iterdir()) == FIGURES
    assert all(f"(figures/{name})" in page for name in FIGURES)


def test_the_ablation_takes_any_data_and_names_it(tmp_path, capsys):
    ablation = load_script(ROOT / "recipes" / "ablation.py")
    cfg = RecipeConfig(name="ablation", dataset="imagefolder", data_root=_folder(tmp_path),
                       model="spiking_convnet_s", T=2, smoke=True, num_workers=0, out_dir=tmp_path / "runs")
    folder = ablation.main(ablation.Ablation(recipe=cfg, variants=("none", "MSG&TWO")))
    assert folder.name.startswith("ablation-imagefolder-shapes_spiking_convnet_s-")
    out = capsys.readouterr().out
    assert "Ablation of MSG and TWO, spiking_convnet_s on imagefolder, 1 seed(s) per variant" in out
    assert "paper" not in (folder / "table.txt").read_text()


def test_a_paper_column_only_for_the_paper_row(tmp_path):
    row = RECIPES["dvs_cifar10_vggsnn"]
    assert paper_row(row) == "dvs_cifar10_vggsnn" and run_label(row) == "dvs_cifar10_vggsnn"
    moved = RecipeConfig(**{**row.__dict__, "dataset": "imagefolder", "data_root": tmp_path / "pets"})
    assert paper_row(moved) is None and run_label(moved) == "imagefolder-pets_vggsnn"
