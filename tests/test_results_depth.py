"""docs/results.md's "MSG on deep networks" publishes one full run of ``make study-depth``: its
tables must be the ones the run's records give (docs/study-depth/results.json), recomputed with
the study's own functions, and the MSG-on-the-last-k-layers table the ones its records
(docs/study-depth/last-k.json) give, paired with the run's ``none``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from sparsegrad.study.depth import DEPTH_VARIANTS, NETWORKS, depth_rows, depth_table, probe_summary, probe_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = (DOCS / "results.md").read_text()
SECTION = PAGE[PAGE.index("## MSG on deep networks"):]
RUN = json.loads((DOCS / "study-depth" / "results.json").read_text())
LAST = json.loads((DOCS / "study-depth" / "last-k.json").read_text())


def test_the_depth_table_is_recomputed_from_the_published_records():
    assert list(RUN["networks"]) == list(NETWORKS)
    rows = {n: depth_rows(RUN["records"], n, list(RUN["variants"])) for n in RUN["networks"]}
    table = depth_table(rows, RUN["networks"])
    assert table in SECTION
    assert table in RUN["tables_markdown"]  # the run's own report says the same


def test_the_probe_tables_are_the_published_probe():
    assert probe_summary(RUN["probe"], RUN["networks"]) in SECTION
    every_layer = probe_table(RUN["probe"], RUN["networks"])
    assert textwrap.indent(every_layer, "    ") in SECTION  # inside the collapsed note
    assert every_layer in RUN["tables_markdown"]


def test_the_last_k_table_pairs_its_records_with_the_runs_none():
    label = LAST["variant"]
    seeds = {}
    for r in LAST["records"]:
        seeds.setdefault(r["task"], set()).add(r["seed"])
    base = [r for r in RUN["records"] if r["variant"] == "none" and r["seed"] in seeds.get(r["task"], ())]
    rows = {n: depth_rows(base + LAST["records"], n, ["none", label]) for n in seeds}
    assert seeds["spiking_plain10"] == {0, 1, 2, 3, 4} and all(len(s) >= 2 for s in seeds.values())
    assert depth_table(rows, RUN["networks"]) in SECTION
    assert probe_summary(LAST["probe"], RUN["networks"]) in SECTION
    assert all(res["last"] == 2 for results in LAST["probe"].values() for res in results)


def test_the_run_is_the_full_depth_study():
    assert RUN["command"] == "python recipes/study_depth.py"
    assert RUN["config"]["seeds"] == [0, 1, 2, 3, 4] and RUN["config"]["epochs"] == 6
    assert RUN["variants"] == DEPTH_VARIANTS
    assert {r["n"] for rows in RUN["tables"].values() for r in rows} == {5}
    assert RUN["commit"] in SECTION and RUN["date"][:10] in SECTION
    assert LAST["commit"] in SECTION


def test_every_depth_figure_shown_exists():
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", SECTION)
    assert shown == ["study-depth/accuracy_vs_epoch.png", "study-depth/probe.png"]
    for name in shown:
        assert (DOCS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
