"""Issue 13's data for the Query inspector, Routing map, Experts and Playground, computed on the sample workspace
and checked against the workspace's own tables (never against numbers written here): the decision table's order
and margins, URL rows, two strategies per query, selections and metadata filters, the out-of-domain reference,
query-term highlighting built from escaped pieces, label placement, and the Playground's merged search."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from explorer import analysis, views
from explorer.terms import STOP_WORDS, query_terms, shared_terms, spans, tokens, window

from .test_app import ws  # noqa: F401  (the sample workspace fixture, shared)




# --- query terms and highlighting ---------------------------------------------------------------------------------
def test_query_terms_are_lowercased_words_without_stop_words():
    terms = query_terms("Why do Stars twinkle, but the PLANETS do not? stars!")
    assert terms == ["stars", "twinkle", "planets"]  # query order, each once, stop words out
    assert not set(terms) & STOP_WORDS
    assert shared_terms("twinkling stars and planets", "Stars", "no planets here") == ["stars", "planets"]
    assert shared_terms("the of and", "the of and") == []  # only stop words: nothing to mark


def test_spans_give_the_text_back_and_mark_whole_words_only():
    text = "Starship stars: STARS, stars-and-planets."
    pieces = spans(text, ["stars"])
    assert "".join(p for p, _ in pieces) == text
    assert [p for p, hit in pieces if hit] == ["stars", "STARS", "stars"]  # not the "Star" of "Starship"
    snippet, cut_start, cut_end = window("word " * 200 + "needle " + "word " * 200, ["needle"], 80)
    assert "needle" in snippet and cut_start and cut_end and len(snippet) <= 80


def test_marked_html_is_escaped_pieces_and_marks_only():
    from explorer.ui.highlight import marked, reader, snippet_list

    hostile = 'Stars <img src=x onerror=alert(1)> & "stars" **bold** ![x](http://127.0.0.1:9/x.png)'
    out = marked(hostile, ["stars", "img"])
    assert "<img" not in out and out.count("<mark") == 3
    assert html.unescape(re.sub(r"</?mark[^>]*>", "", out)) == hostile
    block = reader("A <b>title</b>", "line one\n\n# heading\nstars", ["stars"])
    assert block.startswith("<div>") and "\n" not in block and "<b>title" not in block
    assert set(re.findall(r"<(\w+)", block)) <= {"div", "mark", "br"}
    listing = snippet_list([{"rank": 1, "grade": "●", "doc_id": "d<1>", "title": "t\"'<", "text": "x stars"}],
                           lambda r: ["stars"])
    assert listing.startswith("<div>") and "d&lt;1&gt;" in listing and "title='t&quot;&#x27;&lt;'" in listing


def test_query_and_document_terms_on_the_workspace(ws):
    row = int(ws.eval_rows()["row"].iloc[0])
    q = ws.queries.iloc[row]
    top = ws.ranking("base", row, depth=1).iloc[0]
    shared = shared_terms(q["text"], top["title"], top["text"])
    words = set(tokens(top["title"])) | set(tokens(top["text"]))
    assert shared == [t for t in query_terms(q["text"]) if t in words]


# --- Query inspector ----------------------------------------------------------------------------------------------
def test_decision_table_lists_routers_then_oracles_then_fixed(ws):
    row = int(ws.eval_rows()["row"].iloc[5])
    table = views.decision_table(ws, row)
    fam = views.strategy_families(ws)
    oracles = set(views.oracle_strategies(ws))
    kinds = ["oracle" if s in oracles else ("fixed" if fam[s] == "fixed" else "router") for s in table["strategy"]]
    assert sorted(table["strategy"]) == sorted(ws.strategies)
    assert kinds == sorted(kinds, key=["router", "oracle", "fixed"].index)  # routers first, fixed last
    d = ws.decisions[ws.decisions["row"] == row].set_index("strategy")
    sm = ws.strategy_metrics[ws.strategy_metrics["row"] == row].set_index("strategy")["nDCG@10"]
    for r in table.itertuples():
        margin = d.loc[r.strategy, "margin"]
        assert r.margin == ("–" if pd.isna(margin) else f"{margin:.3f}")  # never "None" or "nan"
        assert r.score == pytest.approx(round(100 * sm[r.strategy], 1))
    assert (table["weights"] != "").all()


def test_inspect_row_names_unknown_and_pilot_rows(ws):
    ev = int(ws.eval_rows()["row"].iloc[0])
    pilot = ws.queries[ws.queries["role"] == "pilot"].iloc[0]
    assert views.inspect_row(ws, str(ev)) == (ev, None)
    assert views.inspect_row(ws, None) == (None, None)
    row, why = views.inspect_row(ws, str(len(ws.queries) + 5))
    assert row is None and f"row {len(ws.queries) + 5} is not a test query" in why
    row, why = views.inspect_row(ws, str(int(pilot["row"])))
    assert row is None and "pilot query" in why and pilot["qid"] in why
    for bad in ("abc", "1e999", "9" * 5000, "-5"):
        row, why = views.inspect_row(ws, bad)
        assert row is None and why


def test_strategy_pair_matches_the_stored_per_query_metrics(ws):
    a, b = "base", views.default_strategy(ws)
    pair = views.strategy_pair(ws, a, b)
    sm = ws.strategy_metrics.set_index(["strategy", "row"])["nDCG@10"]
    assert len(pair) == len(ws.eval_rows())
    for r in pair.sample(20, random_state=0).itertuples():
        assert r.score_a == pytest.approx(sm[(a, r.row)]) and r.score_b == pytest.approx(sm[(b, r.row)])
    counts = views.pair_counts(pair)
    assert sum(counts.values()) == len(pair)
    assert counts["B better"] == int((pair["delta"] > 1e-9).sum())
    flipped = views.pair_counts(views.strategy_pair(ws, b, a))
    assert (flipped["A better"], flipped["B better"]) == (counts["B better"], counts["A better"])
    assert views.pair_counts(views.strategy_pair(ws, a, a))["tie"] == len(pair)


def test_query_strategy_names_the_run_it_used(ws):
    row = int(ws.eval_rows()["row"].iloc[7])
    for s in ws.strategies:
        d = views.query_strategy(ws, s, row)
        assert d["system"] == ws.strategy_system(s, row)
        assert d["score"] == pytest.approx(views.column_score(ws, d["system"], row, "nDCG@10"))


# --- Routing map --------------------------------------------------------------------------------------------------
def test_selected_queries_are_the_evaluated_ones_in_order(ws):
    ev = ws.eval_rows()["row"].astype(int).tolist()
    pilot = int(ws.queries.loc[ws.queries["role"] == "pilot", "row"].iloc[0])
    picked = [ev[9], pilot, ev[2], ev[9]]
    sel = views.selected_queries(ws, picked, "pilot-mean")
    qt = analysis.query_table(ws, "pilot-mean")
    assert sel["row"].tolist() == [ev[9], ev[2]]
    for r in sel.itertuples():
        assert (r.routed, r.oracle) == (qt.loc[r.row, "routed"], qt.loc[r.row, "oracle"])
        assert r.regret == pytest.approx(qt.loc[r.row, "regret"])


def test_metadata_filter_keeps_the_queries_of_the_chosen_values(ws):
    kinds = ws.metadata("kind")
    value = kinds[ws.queries["role"] == "eval"].value_counts().index[-1]
    rows = views.metadata_filter(ws, {"kind": [value]})
    assert rows == set(ws.queries.loc[kinds == value, "row"].astype(int))
    assert views.metadata_filter(ws, {"kind": []}) == set(ws.queries["row"].astype(int))


def test_place_labels_never_overlap():
    from explorer.ui.figures import place_labels

    rng = np.random.default_rng(0)
    xy = [tuple(p) for p in rng.normal(size=(40, 2))]
    texts = [f"expert-{i % 7}" for i in range(40)]
    span = (-3.0, 3.0, -3.0, 3.0)
    size = (700, 420)
    spots = place_labels(xy, texts, span, size)
    assert any(s is not None for s in spots) and any(s is None for s in spots)  # crowded: some left to hover
    sx, sy = size[0] / 6, size[1] / 6
    boxes = []
    for (x, y), text, s in zip(xy, texts, spots):
        if s is None:
            continue
        px, py = (x + 3) * sx + s[0], (3 - y) * sy + s[1]
        w = 6.6 * len(text) + 8
        boxes.append((px - w / 2, py - 8, px + w / 2, py + 8))
    markers = [((x + 3) * sx - 12, (3 - y) * sy - 12, (x + 3) * sx + 12, (3 - y) * sy + 12) for x, y in xy]
    for i, p in enumerate(boxes):
        assert 0 <= p[0] and p[2] <= size[0] and 0 <= p[1] and p[3] <= size[1]
        for q in boxes[i + 1:] + markers:
            assert p[2] <= q[0] + 1e-6 or q[2] <= p[0] + 1e-6 or p[3] <= q[1] + 1e-6 or q[3] <= p[1] + 1e-6


# --- Experts ------------------------------------------------------------------------------------------------------
def test_expert_page_number_formats_and_order(ws):
    from explorer.ui.experts import expert_order, one_decimal, signed

    assert [signed(v) for v in (-0.04, 0.0, -0.0, 0.04, -0.06, 1.25)] == ["0.0", "0.0", "0.0", "0.0", "-0.1", "+1.2"]
    assert [one_decimal(v) for v in (-0.04, 92.34)] == ["0.0", "92.3"]
    shuffled = list(reversed(ws.encoders)) + ["mixture"]
    assert expert_order(ws, shuffled) == ws.encoders + ["mixture"]


# --- Playground ---------------------------------------------------------------------------------------------------
def test_pilot_best_similarity_and_out_of_domain(ws):
    best = views.pilot_best_similarity(ws)
    pilot_rows = ws.queries.loc[ws.queries["role"] == "pilot", "row"].to_numpy()
    emb = ws.embeddings("base")
    label = dict(zip(ws.pilot_labels["row"], ws.pilot_labels["label"]))
    dataset = dict(zip(ws.queries["row"], ws.queries["dataset"]))

    def leave_one_out(r):  # each pilot query against every centroid, its own group's rebuilt without it
        out = []
        for j, (ds, expert) in enumerate(zip(ws.pilots["dataset"], ws.pilots["expert"])):
            others = [o for o in pilot_rows if o != r and dataset[o] == ds and label.get(o) == expert]
            if dataset[r] == ds and label.get(r) == expert and others:
                centre = emb[others].mean(axis=0)
                out.append(float(emb[r] @ (centre / np.linalg.norm(centre))))
            else:
                out.append(float(emb[r] @ ws.pilot_centroids[j]))
        return max(out)

    assert best == pytest.approx(np.array([leave_one_out(r) for r in pilot_rows]), abs=1e-5)
    plain = (emb[pilot_rows] @ ws.pilot_centroids.T).max(axis=1)
    assert (best < plain - 1e-4).any()  # no longer flattered by its own centroid
    low = views.out_of_domain(ws, float(best.min()) - 0.05)
    assert low["likely_ood"] and low["percentile"] == 0
    mid = views.out_of_domain(ws, float(np.median(best)))
    assert not mid["likely_ood"] and 45 <= mid["percentile"] <= 60
    assert mid["threshold"] == pytest.approx(np.percentile(best, 5))
    test_best = views.pilot_best_similarity(ws, "eval")
    assert mid["test_percentile"] == pytest.approx(100 * np.mean(test_best <= np.median(best)))


@pytest.fixture(scope="module")
def router(ws):
    from explorer.live import LiveRouter

    return LiveRouter.open(ws)


def test_search_all_merges_every_corpus_by_score(router, ws):
    text = ws.eval_rows()["text"].iloc[0]
    merged = router.search_all(text, None, k=15)
    assert merged["rank"].tolist() == list(range(1, 16))
    assert (np.diff(merged["score"].to_numpy()) <= 1e-7).all()  # score descending
    every = pd.concat([router.search(text, None, d, k=15).assign(dataset=d) for d in ws.datasets])
    top = every.sort_values("score", ascending=False).head(15)
    assert merged["score"].to_numpy() == pytest.approx(top["score"].to_numpy(), abs=1e-6)
    assert set(zip(merged["dataset"], merged["doc_id"])) <= set(zip(every["dataset"], every["doc_id"]))
    result = router.route(text)
    near = result.nearest_pilot
    assert near["similarity"] == pytest.approx(float(result.pilot_similarity["similarity"].max()))
