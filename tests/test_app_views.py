"""Issue 13's views under AppTest on the sample workspace: the Query inspector (decision order, URL rows, the
reader with marked terms, two strategies A vs B and their delta scatter), the Routing map (pilot toggle and
metadata filter in the URL), Experts (formats and column order) and the Playground (examples, every corpus,
out-of-domain signal, rejected queries kept out of the URL). Values are compared with explorer.views /
explorer.analysis computed directly; clicks on tables and charts are driven in tests/test_browser_views.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from explorer import analysis, views
from explorer.pages import PAGES

from .test_app import assert_drawn, ws  # noqa: F401  (ws: the sample workspace fixture, shared)

ROOT = Path(__file__).resolve().parents[1]
PAGE = {"map": "explorer/ui/routing_map.py", "inspector": "explorer/ui/inspector.py",
        "experts": "explorer/ui/experts.py", "playground": "explorer/ui/playground.py",
        "decisions": "explorer/ui/decisions.py"}
TITLES = {key: page.title for key, page in PAGES.items()}


def drawn(at):
    assert_drawn(at)
    return at


def app(ws, page: str, params: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["workspace_path"] = str(ws.path)
    # opened as a link does (?page=<key>): straight onto the page, its parameters untouched by another page
    at.query_params.update({"page": page, **{k: str(v) for k, v in (params or {}).items()}})
    at.run()
    assert at.title[0].value == TITLES[page]
    return drawn(at)


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
                     + [w.value for w in at.warning] + [e.value for e in at.error])


def by_label(elements, label):
    return next(e for e in elements if e.label == label)


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(v) -> list:
    """A Plotly array from a figure's JSON: a list, or typed binary data ({dtype, bdata})."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


# --- Query inspector ----------------------------------------------------------------------------------------------
def test_inspector_decisions_rankings_and_reader(ws):
    row = int(ws.eval_rows(ws.datasets[1])["row"].iloc[2])
    at = app(ws, "inspector", {"row": row})
    dec = at.dataframe[0].value
    expected = views.decision_table(ws, row)
    assert dec["strategy"].tolist() == views.strategy_order(ws) == expected["strategy"].tolist()
    fixed = [s for s in ws.strategies if views.strategy_families(ws)[s] == "fixed"]
    assert (dec.set_index("strategy").loc[fixed, "margin"] == "–").all()
    assert "None" not in dec["margin"].tolist() and "weights" in dec.columns
    # four rankings: rank, grade, score and "doc id: title" in each, the top documents of each system
    options = views.column_options(ws, row, views.default_strategy(ws))
    cols = ["routed", "base", "oracle", ws.candidates[-1]]
    by_label(at.multiselect, "Compare (2–4 rankings)").set_value(cols).run()
    drawn(at)
    tables = at.dataframe[1:5]
    for key, table in zip(cols, tables):
        frame = table.value
        assert frame.columns.tolist() == ["rank", "rel", "score", "document"]
        top = ws.ranking(options[key][1], row)
        # an untitled document is named by its first words
        named = [t or " ".join(x.split()[:8]) + (" …" if len(x.split()) > 8 else "") for t, x in zip(top["title"],
                                                                                                   top["text"])]
        assert frame["document"].tolist() == [f"{d}: {t}" for d, t in zip(top["doc_id"], named)]
    # the reader: the document in the URL, the query's terms marked in an HTML block of escaped pieces
    from explorer.terms import shared_terms
    from explorer.ui.highlight import reader

    doc = ws.ranking(ws.candidates[-1], row).iloc[0]
    at.selectbox(key="w_inspector_doc").set_value(doc["doc_id"]).run()
    drawn(at)
    assert at.query_params["doc"] == doc["doc_id"]
    terms = shared_terms(ws.queries.iloc[row]["text"], doc["title"], doc["text"])
    body = reader(doc["title"], doc["text"], terms)
    assert any(m.value == body and m.proto.allow_html for m in at.markdown)
    assert body.count("<mark") == sum(1 for t in re.findall(r"[^\W_]+", doc["title"] + " " + doc["text"])
                                      if t.lower() in terms)
    # a link with the document reopens it
    at2 = app(ws, "inspector", {"row": row, "doc": doc["doc_id"], "cols": ",".join(cols)})
    assert at2.selectbox(key="w_inspector_doc").value == doc["doc_id"]


def test_inspector_says_when_the_url_row_is_not_a_test_query(ws):
    first = ws.queries.iloc[views.showcase_row(ws, ws.datasets[0], views.default_strategy(ws))]  # the query the inspector opens on
    pilot = ws.queries[ws.queries["role"] == "pilot"].iloc[3]
    for raw, phrase in ((len(ws.queries) + 100, "is not a test query"), (int(pilot["row"]), "is a pilot query"),
                        ("abc", "is not a row number")):
        at = app(ws, "inspector", {"row": raw})
        warning = "\n".join(w.value for w in at.warning)
        assert phrase in warning and f"showing {first['qid']}" in warning.replace("\\", ""), warning
        assert at.query_params["row"] == str(int(first["row"]))  # the query shown, named in the link
        assert not at.error
    at = app(ws, "inspector", {"row": int(first["row"])})
    assert not at.warning


def test_inspector_two_strategies_and_delta_scatter(ws):
    row = int(ws.eval_rows(ws.datasets[2])["row"].iloc[1])
    a, b = "base", views.default_strategy(ws)
    at = app(ws, "inspector", {"row": row, "view": "compare", "a": a, "b": b, "by": "outcome"})
    assert by_label(at.selectbox, "Strategy A (x axis)").value == a
    assert by_label(at.selectbox, "Strategy B (y axis)").value == b
    caps = [c.value.replace("\\", "") for c in at.caption]
    for s in (a, b):
        d = views.query_strategy(ws, s, row)
        assert any(c.startswith(f"chose {d['chosen']} · margin {d['margin']}") and
                   f"nDCG@10 {views.x100(d['score'])}" in c for c in caps), (s, caps)
    # the two rankings are the runs each strategy used
    for side, s, table in zip("AB", (a, b), at.dataframe[1:3]):
        top = ws.ranking(ws.strategy_system(s, row), row)
        assert table.value["document"].tolist() == [f"{d}: {t}" for d, t in zip(top["doc_id"], top["title"])]
    pair = views.strategy_pair(ws, a, b)
    counts = views.pair_counts(pair)
    assert any(f"B better on {counts['B better']} queries, A better on {counts['A better']}, tied on "
               f"{counts['tie']}" in c for c in caps)
    scatter = next(c for c in charts(at) if any(t.get("name") == "this query" for t in c["data"]))
    points = [t for t in scatter["data"] if t.get("name") != "this query"]
    assert sorted(r for t in points for r in t["customdata"]) == sorted(pair["row"].astype(int))
    by_name = {t["name"]: t for t in points}
    assert set(by_name) <= {"B better", "A better", "tie"}
    for t in points:
        rows = pair.set_index("row").loc[t["customdata"]]
        assert (rows["outcome"] == t["name"]).all()
        assert values(t["x"]) == pytest.approx((100 * rows["score_a"]).tolist())
        assert values(t["y"]) == pytest.approx((100 * rows["score_b"]).tolist())
    here = next(t for t in scatter["data"] if t.get("name") == "this query")
    assert here["customdata"] == [row]
    # colour by the expert B routed to; the state is in the URL
    by_label(at.selectbox, "Colour points by").set_value("b").run()
    drawn(at)
    assert at.query_params["by"] == "b" and at.query_params["view"] == "compare"
    names = {t["name"] for c in charts(at) for t in c["data"] if "customdata" in t and t["name"] != "this query"}
    assert names <= set(pair["chosen_b"]) | {"none"} and names


# --- Routing map --------------------------------------------------------------------------------------------------
def _test_points(at) -> list[int]:
    fig = next(c for c in charts(at) if any(str(t.get("name", "")).startswith("test") for t in c["data"]))
    return sorted(r for t in fig["data"] if str(t.get("name", "")).startswith("test") for r in t["customdata"])


def _pilot_points(at) -> int:
    fig = charts(at)[0]
    return sum(len(values(t["x"])) for t in fig["data"] if str(t.get("name", "")).startswith("pilot queries"))


def test_routing_map_pilot_toggle_and_metadata_filter_in_the_url(ws):
    at = app(ws, "map")
    assert _pilot_points(at) > 0
    assert _test_points(at) == sorted(ws.eval_rows()["row"].astype(int))
    at.toggle[0].set_value(False).run()
    drawn(at)
    assert at.query_params["pilots"] == "0" and _pilot_points(at) == 0
    kinds = analysis.metadata_values(ws, "kind")
    kind = kinds["value"].iloc[-1]
    by_label(at.multiselect, "Test query kind").set_value([kind]).run()
    drawn(at)
    assert at.query_params["kind"] == kind
    expected = ws.eval_rows()[ws.metadata("kind")[ws.queries["role"] == "eval"] == kind]["row"]
    assert _test_points(at) == sorted(expected.astype(int)) and len(expected) == int(kinds["queries"].iloc[-1])
    # the link reopens both; centroid labels are annotations with expert names
    at2 = app(ws, "map", {"pilots": "0", "kind": kind})
    assert _pilot_points(at2) == 0 and _test_points(at2) == sorted(expected.astype(int))
    labels = [a["text"] for a in charts(at2)[0]["layout"].get("annotations", [])]
    assert labels and set(labels) <= set(ws.pilots["expert"])


# --- A measure other than the label measure: Routing decisions and Routing map ------------------------------------
OTHER_MEASURE = "R@100"


def _other_measure(ws) -> str:
    """A measure of the workspace that is not the one pilots were labelled by (the pages' default)."""
    assert OTHER_MEASURE in ws.measures and OTHER_MEASURE != ws.label_measure, (ws.measures, ws.label_measure)
    return OTHER_MEASURE


def test_decisions_page_computes_with_the_measure_in_the_url(ws):
    measure, strategy = _other_measure(ws), "pilot-nearest"
    at = app(ws, "decisions", {"strategy": strategy, "measure": measure})
    assert by_label(at.selectbox, "Measure").value == measure and at.query_params["measure"] == measure
    other = 100 * views.decisions_view(ws, strategy, measure=measure)["report"]["regret"]
    label = 100 * views.decisions_view(ws, strategy, measure=ws.label_measure)["report"]["regret"]
    shown = at.dataframe[0].value  # accuracy and regret per dataset, then the average row
    assert shown.index.tolist() == other.index.tolist()
    assert shown["regret ×100"].tolist() == pytest.approx(other.tolist())
    assert shown["regret ×100"].tolist() != pytest.approx(label.tolist(), abs=0.05)  # the measure matters here
    assert f"by its {measure};" in texts(at)  # the oracle heatmap's caption names it
    # back to the default: it leaves the URL, and the page is the label measure's again
    by_label(at.selectbox, "Measure").set_value(ws.label_measure).run()
    drawn(at)
    assert "measure" not in at.query_params
    assert at.dataframe[0].value["regret ×100"].tolist() == pytest.approx(label.tolist())


def _map_tests(at, name: str) -> list[dict]:
    fig = next(c for c in charts(at) if any(str(t.get("name", "")).startswith("test") for t in c["data"]))
    return [t for t in fig["data"] if str(t.get("name", "")).startswith(name)]


def test_routing_map_computes_with_the_measure_in_the_url(ws):
    measure, strategy = _other_measure(ws), "pilot-nearest"
    at = app(ws, "map", {"strategy": strategy, "measure": measure, "colour": "regret"})
    assert by_label(at.selectbox, "Measure").value == measure and at.query_params["measure"] == measure
    method = by_label(at.radio, "Layout").value

    def expected(m):
        q = views.map_points(ws, method, strategy, measure=m)["queries"]
        return q[q["role"] == "eval"].set_index("row")

    other, label = expected(measure), expected(ws.label_measure)
    (trace,) = _map_tests(at, "test queries")  # coloured by regret: one trace, the colour is regret ×100
    rows = [int(r) for r in trace["customdata"]]
    assert sorted(rows) == sorted(other.index.astype(int))
    shown = values(trace["marker"]["color"])
    assert shown == pytest.approx((100 * other.loc[rows, "regret"]).tolist())
    assert shown != pytest.approx((100 * label.loc[rows, "regret"]).tolist(), abs=0.05)
    # coloured by outcome: which queries are routed right is the measure's too
    by_label(at.selectbox, "Colour test queries by").set_value("correct").run()
    drawn(at)
    wrong = sorted(int(r) for t in _map_tests(at, "test: wrong") for r in t["customdata"])
    assert wrong == sorted(other.index[~other["correct"].astype(bool)].astype(int))
    assert wrong != sorted(label.index[~label["correct"].astype(bool)].astype(int))


# --- Experts ------------------------------------------------------------------------------------------------------
def test_experts_formats_and_column_order(ws):
    off = ws.candidates[0]
    at = app(ws, "experts", {"off": off})
    # no -0.0 anywhere in the what-if tables; zero differences read 0.0
    import pyarrow as pa

    for i, table in enumerate(at.dataframe[:2]):
        styler = table.proto.arrow_data.styler
        shown = pa.ipc.open_stream(styler.display_values).read_pandas()  # the texts the cells show
        cells = {str(v) for v in shown.to_numpy().ravel()}
        assert not {"-0.0", "−0.0", "+0.0", "nan"} & cells, i
        if i == 1:  # the differences: "0.0" where nothing changed, signed otherwise
            diff = table.value
            for v, text in zip(diff.to_numpy().ravel(), shown[diff.columns].to_numpy().ravel()):
                assert text == ("0.0" if round(v, 1) == 0 else f"{round(v, 1):+.1f}")
    lib, shares = at.dataframe[2].value, at.dataframe[3].value
    order = [e for e in ws.encoders]
    assert list(lib.columns) == [e for e in order if e in lib.columns]
    assert list(shares.columns) == [e for e in order if e in shares.columns]
    assert off not in lib.columns
    # hyper-parameter lines leave out unset entries
    hyper = [c.value for c in at.caption if c.value.startswith("epochs")]
    assert hyper and not any("None" in c for c in hyper)
    cards = views.expert_cards(ws)
    unset = {k for c in cards for k, v in c["hyper_parameters"].items() if v is None}
    for key in unset:
        assert not any(re.search(rf"(^| · ){re.escape(key.replace('_', chr(92) + '_'))}( · |$)", c)
                       for c in hyper), key
    routing = by_label(at.selectbox, "Routing now, strategy")
    other = [s for s in routing.options if s != routing.value][-1]
    routing.set_value(other).run()
    drawn(at)
    assert at.query_params["routing"] == other


# --- Playground ---------------------------------------------------------------------------------------------------
def test_playground_examples_every_corpus_ood_and_rejected_queries(ws):
    from explorer.ui.playground import ALL, EXAMPLES

    at = app(ws, "playground")
    at.button(key="pg_example_1").click().run()
    drawn(at)
    assert at.query_params["q"] == EXAMPLES[1] and at.main.text_input[0].value == EXAMPLES[1]
    assert any("Answered in" in c.value for c in at.caption)
    # every corpus: a dataset column, merged by score
    by_label(at.selectbox, "Search the corpus of").set_value(ALL).run()
    drawn(at)
    assert at.query_params["dataset"] == ALL
    merged = at.dataframe[1].value
    assert merged.columns.tolist() == ["rank", "dataset", "title", "score"]
    assert merged["score"].is_monotonic_decreasing and set(merged["dataset"]) <= set(ws.datasets)
    # the out-of-domain line shows views.out_of_domain for the query's nearest pilot centroid
    from explorer.live import LiveRouter

    result = LiveRouter.open(ws).route(EXAMPLES[1])
    ood = views.out_of_domain(ws, result.nearest_pilot["similarity"])
    line = next(t for t in texts(at).splitlines() if "nearest pilot centroid" in t).replace("\\", "")
    assert f"similarity {ood['best']:.3f}" in line and f"closer than {ood['percentile']:.0f}%" in line
    assert ("Likely out of domain" in line) == ood["likely_ood"]
    far = views.out_of_domain(ws, float(views.pilot_best_similarity(ws).min()) - 0.1)
    assert far["likely_ood"]
    # a rejected query is not written into the URL (and the previous one is gone from it)
    at.main.text_input[0].set_value("x" * 5000).run()
    drawn(at)
    assert "5,000 characters" in "\n".join(e.value for e in at.error)
    assert "q" not in at.query_params
    at.main.text_input[0].set_value("   ").run()
    assert "q" not in at.query_params


def test_inspector_opens_on_the_query_where_routing_gains_most(ws):
    """Issue 12: the default view tells the demo's story: the query where the default strategy beats base most."""
    strategy = views.default_strategy(ws)
    sm = ws.strategy_metrics
    for dataset in ws.datasets:
        rows = ws.eval_rows(dataset)["row"]
        score = {s: sm[(sm["strategy"] == s) & sm["row"].isin(rows)].set_index("row")["nDCG@10"]
                 for s in ("base", strategy)}
        gain = score[strategy] - score["base"]
        row = views.showcase_row(ws, dataset, strategy)
        assert row in set(rows) and gain[row] == gain.max() and gain[row] > 0, (dataset, gain.max())
    at = app(ws, "inspector", {})
    assert at.query_params["row"] == str(views.showcase_row(ws, ws.datasets[0], strategy))
