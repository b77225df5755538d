"""docs/results.md publishes one full run of ``make study``: its tables must be the ones that
run's records give (docs/study/results.json), and every figure it shows must be there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sparsegrad.study import ablation_rows, cost_rows, cost_table, markdown_table, sweep_rows

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = (DOCS / "results.md").read_text()
RUN = json.loads((DOCS / "study" / "results.json").read_text())


def test_every_table_is_recomputed_from_the_published_records():
    records = RUN["records"]
    for task in RUN["tasks"]:
        assert markdown_table(ablation_rows(records, task)) in PAGE, task
        assert cost_table(cost_rows(records, task)) in PAGE, task
    labels = {r["p"]: r["variant"] for r in RUN["sweep"]}
    seeds = RUN["config"]["sweep_seeds"]
    assert markdown_table(sweep_rows(records, RUN["sweep_task"], labels, seeds), first="p") in PAGE


def test_the_run_is_the_full_study():
    assert RUN["command"] == "python recipes/study.py"
    assert {r["n"] for rows in RUN["ablation"].values() for r in rows} == {5}
    assert [r["p"] for r in RUN["sweep"]] == [0.0, 0.25, 0.5, 0.75, 0.9]
    assert RUN["commit"] in PAGE and RUN["date"][:10] in PAGE


def test_every_figure_shown_exists():
    shown = [name for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", PAGE) if name.startswith("study/")]
    assert len(shown) == 5  # the depth part's figures: tests/test_results_depth.py
    for name in shown:
        assert (DOCS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
