"""The Streamlit app under AppTest: every page on the sample workspace, its main controls, and bad input.

Numbers shown on the pages are compared with explorer.analysis / explorer.views computed directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from explorer import WORKSPACE_FORMAT_VERSION, analysis, views
from explorer.pages import PAGES

ROOT = Path(__file__).resolve().parents[1]
PAGE = {key: page.script for key, page in PAGES.items()}


@pytest.fixture(scope="module")
def ws(request, trains):
    """The session's sample workspace (EXPLORER_TEST_WORKSPACE=DIR reuses a built one while developing)."""
    given = os.environ.get("EXPLORER_TEST_WORKSPACE")
    if given:
        from explorer.workspace import Workspace

        return Workspace(given)
    return request.getfixturevalue("sample_workspace")


BOUNDARY = "could not be drawn from this workspace"


def assert_drawn(at) -> bool:
    """The page ran to its end: no exception, and no message from app.py's error boundary (which turns a page's
    exception into a short st.error)."""
    assert not at.exception, [e.value for e in at.exception]
    failed = [e.value for e in at.error if BOUNDARY in e.value]
    assert not failed, failed
    return True


def app(ws_path, page: str | None = None, params: dict | None = None, timeout: float = 120, drawn: bool = True):
    """An AppTest on app.py with the workspace given, opened on `page` with URL `params`; the page must have run
    to its end unless `drawn` is off (tests of the error boundary itself)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.session_state["workspace_path"] = str(ws_path)
    # opened as a link to the page opens it (?page=<key>): its parameters are read by the page they are for
    at.query_params.update({**({"page": page} if page else {}), **{k: str(v) for k, v in (params or {}).items()}})
    at.run()
    if drawn:
        assert_drawn(at)
    return at


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
                     + [e.value for e in at.error])


def errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def x100(v) -> str:
    return f"{100 * v:.1f}"


def by_label(elements, label):
    return next(e for e in elements if e.label == label)


# --- Overview -----------------------------------------------------------------------------------------------------
def test_overview_table_matches_summary(ws):
    at = app(ws.path)
    assert at.title[0].value == "Overview"
    table = analysis.summary(ws, "nDCG@10")
    md = next(m.value for m in at.markdown if m.value.startswith("| strategy"))
    base_row = next(line for line in md.splitlines() if line.startswith("| `base`"))
    for ds in ws.datasets:
        assert x100(table.loc[ds, "base"]) in base_row
    assert x100(table.loc["average", "base"]) in base_row
    # the best real strategy per dataset is bold
    real = views.real_strategies(ws)
    ds = ws.datasets[0]
    best = table.loc[ds, real].idxmax()
    best_row = next(line for line in md.splitlines() if line.startswith(f"| `{best}`"))
    assert f"**{x100(table.loc[ds, best])}" in best_row
    assert "gap: instance-oracle" in md
    assert "×100" in texts(at)
    assert len(at.get("download_button")) == 4  # CSV, LaTeX, Markdown, TREC run
    assert at.get("plotly_chart")


def test_overview_measure_reference_and_chart_controls(ws):
    at = app(ws.path)
    by_label(at.selectbox, "Measure").set_value("AP").run()
    assert at.query_params["measure"] == "AP"
    table = analysis.summary(ws, "AP")
    md = next(m.value for m in at.markdown if m.value.startswith("| strategy"))
    row = next(line for line in md.splitlines() if line.startswith("| `pilot-mean`"))
    assert x100(table.loc["average", "pilot-mean"]) in row
    by_label(at.selectbox, "Reference for significance").set_value("pilot-mean").run()
    assert_drawn(at)
    assert at.query_params["reference"] == "pilot-mean"
    by_label(at.multiselect, "Strategies in the chart").set_value([]).run()
    assert "Pick one or more strategies" in texts(at)


def test_overview_reopens_from_link(ws):
    at = app(ws.path, params={"measure": "RR@10", "reference": "multi-task"})
    assert by_label(at.selectbox, "Measure").value == "RR@10"
    assert by_label(at.selectbox, "Reference for significance").value == "multi-task"


# --- Routing map --------------------------------------------------------------------------------------------------
def test_routing_map_controls_and_open_in_inspector(ws):
    at = app(ws.path, "map")
    assert at.title[0].value == "Routing map"
    assert at.get("plotly_chart")
    for colour in ("oracle", "dataset", "correct", "regret", "routed"):
        by_label(at.selectbox, "Colour test queries by").set_value(colour).run()
        assert_drawn(at)
    by_label(at.radio, "Layout").set_value("pca").run()
    assert at.query_params["layout"] == "pca"
    by_label(at.multiselect, "Datasets").set_value([ws.datasets[1]]).run()
    assert_drawn(at)
    by_label(at.selectbox, "Strategy").set_value("prototype").run()
    row = ws.eval_rows(ws.datasets[1])["row"].iloc[2]
    at.selectbox(key="map_pick").set_value(int(row)).run()
    at.button(key="map_open").click().run()
    assert_drawn(at)
    assert at.title[0].value == "Query inspector"
    assert at.query_params["row"] == str(row)
    assert at.query_params["strategy"] == "prototype"
    assert ws.queries.iloc[row]["text"] in texts(at)


# --- Routing decisions --------------------------------------------------------------------------------------------
def test_decisions_page(ws):
    at = app(ws.path, "decisions", params={"strategy": "pilot-nearest"})
    assert at.title[0].value == "Routing decisions"
    report = analysis.routing_report(ws, "pilot-nearest")
    shown = at.dataframe[0].value
    assert shown.loc[ws.datasets[0], "accuracy %"] == pytest.approx(100 * report.loc[ws.datasets[0], "accuracy"],
                                                                    abs=0.051)
    assert len(at.get("plotly_chart")) >= 4  # two heatmaps, regret bars, confusion, margins
    pairs = views.decisions_view(ws, "pilot-nearest")["pairs"]
    assert len(pairs) > 0  # the sample's routers do make mistakes: the table of the commonest ones is drawn
    assert at.dataframe[1].value["queries"].tolist() == pairs["queries"].tolist()
    by_label(at.checkbox, "Leave out queries where every expert ties").check().run()
    assert_drawn(at)
    by_label(at.selectbox, "Strategy").set_value("base").run()
    assert_drawn(at)
    assert at.query_params["strategy"] == "base" and at.query_params["skip_ties"] == "1"


# --- Query inspector ----------------------------------------------------------------------------------------------
def test_inspector_shows_query_decisions_and_rankings(ws):
    row = int(ws.eval_rows(ws.datasets[2])["row"].iloc[3])
    at = app(ws.path, "inspector", params={"row": row, "strategy": "pilot-mean"})
    assert at.title[0].value == "Query inspector"
    info = views.query_info(ws, row)
    assert by_label(at.selectbox, "Dataset").value == info["dataset"]
    assert info["text"] in texts(at)
    dec = at.dataframe[0].value
    expected = views.decision_table(ws, row)  # routers first, then oracles and fixed experts
    assert dec["strategy"].tolist() == expected["strategy"].tolist()
    assert dec["chosen"].tolist() == expected["chosen"].tolist()
    assert dec["score"].tolist() == pytest.approx(expected["score"].tolist())
    # three default columns: routed, base, oracle; each caption shows its per-query metrics
    caps = [c.value for c in at.caption]
    base_nd = views.column_score(ws, "base", row, "nDCG@10")
    assert any(c.startswith(f"nDCG@10 {x100(base_nd)}") for c in caps)
    # four columns, including a fixed expert
    ms = by_label(at.multiselect, "Compare (2–4 rankings)")
    ms.set_value(["routed", "base", "oracle", ws.candidates[-1]]).run()
    assert_drawn(at)
    assert at.query_params["cols"] == ["routed", "base", "oracle", ws.candidates[-1]]
    top = ws.ranking(ws.candidates[-1], row).iloc[0]
    assert any(f"{top['doc_id']}: {top['title']}" in df.value["document"].tolist() for df in at.dataframe[1:])
    # read a document on demand: its text, the query's terms marked (tests/test_app_views.py checks the marks)
    at.selectbox(key="w_inspector_doc").set_value(top["doc_id"]).run()
    from explorer.terms import shared_terms
    from explorer.ui.highlight import reader

    assert reader(top["title"], top["text"], shared_terms(info["text"], top["title"], top["text"])) in texts(at)
    # fewer than two columns explains what to do
    by_label(at.multiselect, "Compare (2–4 rankings)").set_value(["base"]).run()
    assert "Pick at least two rankings" in texts(at)


def test_inspector_link_names_its_query_even_the_default_one(ws):
    row = views.showcase_row(ws, ws.datasets[0], views.default_strategy(ws))  # the query the inspector shows when none is given
    at = app(ws.path, "inspector", params={"row": row, "strategy": "pilot-mean"})
    assert_drawn(at)
    assert at.query_params["row"] == str(row)
    assert at.query_params["dataset"] == ws.datasets[0]
    assert "strategy" not in at.query_params or at.query_params["strategy"] != views.default_strategy(ws)


def test_inspector_switch_query(ws):
    at = app(ws.path, "inspector")
    ds = ws.datasets[-1]
    by_label(at.selectbox, "Dataset").set_value(ds).run()
    rows = ws.eval_rows(ds)["row"].tolist()
    by_label(at.selectbox, "Query").set_value(rows[1]).run()
    assert at.query_params["row"] == str(rows[1])
    assert ws.queries.iloc[rows[1]]["text"] in texts(at)


# --- Error analysis -----------------------------------------------------------------------------------------------
def test_errors_filters_match_query_table(ws):
    at = app(ws.path, "errors", params={"strategy": "pilot-mean"})
    assert at.title[0].value == "Error analysis"
    qt = analysis.query_table(ws, "pilot-mean")
    assert len(at.dataframe[0].value) == len(qt)
    assert at.dataframe[0].value["regret"].iloc[0] == pytest.approx(round(100 * qt["regret"].max(), 1))
    by_label(at.checkbox, "routed ≠ oracle").check().run()
    assert len(at.dataframe[0].value) == int((~qt["correct"]).sum())
    by_label(at.checkbox, "routed ≠ oracle").uncheck().run()
    by_label(at.checkbox, "routing hurt vs base").check().run()
    hurt = int((qt["routed_score"] < qt["base_score"] - 1e-12).sum())
    assert hurt > 0  # routing hurts some of the sample's queries: the filter has rows to show
    assert len(at.dataframe[0].value) == hurt
    by_label(at.checkbox, "routing hurt vs base").uncheck().run()
    by_label(at.checkbox, "margin below").check().run()
    by_label(at.number_input, "margin below x").set_value(0.02).run()
    assert len(at.dataframe[0].value) == int((qt["margin"] < 0.02).sum())
    by_label(at.multiselect, "Datasets").set_value([ws.datasets[0]]).run()
    sel = qt[(qt["margin"] < 0.02) & (qt["dataset"] == ws.datasets[0])]
    assert len(sel) > 0
    assert len(at.dataframe[0].value) == len(sel)
    row = int(at.dataframe[0].value["row"].iloc[0])
    at.selectbox(key="errors_pick").set_value(row).run()
    at.button(key="errors_open").click().run()
    assert at.title[0].value == "Query inspector"
    assert at.query_params["row"] == str(row)


# --- Experts ------------------------------------------------------------------------------------------------------
def test_experts_cards_and_whatif(ws):
    at = app(ws.path, "experts")
    assert at.title[0].value == "Experts"
    cards = views.expert_cards(ws)
    metrics = at.metric
    assert len(metrics) == 2 * len(cards)
    first = cards[0]
    assert metrics[0].value == x100(first["in_domain"])
    assert metrics[1].value == x100(first["out_of_domain"])
    assert len(at.get("plotly_chart")) == sum(1 for c in cards if c["loss_curve"])
    # ERA's two training stages are two traces: a query-adapter card with both stages draws "labelled pairs"
    two_stage = [c for c in cards if 0 < c["hyper_parameters"].get("alignment_steps", 0) < len(c["loss_curve"])]
    assert two_stage == [c for c in cards if c["kind"] == "query-adapter"]
    assert sum("labelled pairs" in chart.proto.spec for chart in at.get("plotly_chart")) == len(two_stage)
    # all on: no difference
    diff = at.dataframe[1].value
    assert (diff.abs() < 1e-9).all().all()
    off = ws.candidates[0]
    at.checkbox(key=f"exp_on_{off}").uncheck().run()
    assert_drawn(at)
    assert at.query_params["off"] == off
    enabled = [e["name"] for e in ws.experts if e["name"] != off]
    now, _ = analysis.WhatIf(ws).run(enabled)
    shown = at.dataframe[0].value
    assert shown.loc["average", "pilot-mean"] == pytest.approx(round(100 * now.loc["average", "pilot-mean"], 1))
    full, _ = analysis.WhatIf(ws).run([e["name"] for e in ws.experts])
    d = at.dataframe[1].value
    assert d.loc["average", "pilot-mean"] == pytest.approx(
        round(100 * (now.loc["average", "pilot-mean"] - full.loc["average", "pilot-mean"]), 1), abs=0.051)
    assert f"fixed:{off}" not in shown.columns


# --- Playground ---------------------------------------------------------------------------------------------------
def test_playground_empty_long_and_real_query(ws):
    at = app(ws.path, "playground")
    assert at.title[0].value == "Playground"
    assert "Type a query above" in texts(at)
    at.main.text_input[0].set_value("   ").run()
    assert "Type a query above" in texts(at)
    at.main.text_input[0].set_value("x" * 10_000).run()
    assert "10,000 characters" in errors(at)
    assert_drawn(at)
    by_label(at.selectbox, "Search the corpus of").set_value("homefix").run()
    at.main.text_input[0].set_value("my kitchen tap keeps dripping after I turn it off").run()
    assert_drawn(at) and not at.error
    assert at.query_params["q"] == "my kitchen tap keeps dripping after I turn it off"
    decisions = at.dataframe[0].value
    assert "pilot-mean" in decisions["strategy"].tolist()
    assert "instance-oracle" not in decisions["strategy"].tolist()
    assert len(at.dataframe) >= 3  # decisions + chosen + base (+ another expert)
    assert all(d.startswith("hf-") for d in at.dataframe[2].value["doc_id"])
    assert any("Answered in" in c.value for c in at.caption)


# --- bad workspaces -----------------------------------------------------------------------------------------------
def test_not_a_workspace(tmp_path):
    at = app(tmp_path)
    assert "not a workspace" in errors(at)
    at2 = app(tmp_path / "missing")
    assert "no such folder" in errors(at2)


def test_newer_format_version(ws, tmp_path):
    fake = tmp_path / "newer"
    fake.mkdir()
    manifest = json.loads((ws.path / "manifest.json").read_text())
    manifest["format_version"] = WORKSPACE_FORMAT_VERSION + 1
    (fake / "manifest.json").write_text(json.dumps(manifest))
    at = app(fake)
    assert "newer" in errors(at)


def test_sidebar_switches_workspace(ws, tmp_path):
    at = app(ws.path)
    at.sidebar.text_input[0].set_value(str(tmp_path)).run()
    assert "not a workspace" in errors(at)
    at.sidebar.text_input[0].set_value(str(ws.path)).run()
    assert not at.error and at.title[0].value == "Overview"


def test_cli_argument(monkeypatch, tmp_path):
    from explorer.ui import state

    assert state.cli_workspace(["--workspace", "/x/y"]) == "/x/y"
    assert state.cli_workspace(["--other"]) is None
    monkeypatch.setenv(state.ENV_WORKSPACE, str(tmp_path))
    monkeypatch.setattr("sys.argv", ["app.py"])
    assert state.initial_workspace() == str(tmp_path)
