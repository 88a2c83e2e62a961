"""A built workspace with a lexical expert and every kind of mixing: the fused runs the build stores equal an
independent fusion of the stored expert runs, their metrics equal trec_eval's (ir_measures) on the exported TREC
runs, BM25's runs equal bm25s's own, the what-if fuses again, the pages show mixtures as weights, and the
Playground searches BM25 and fusions live exactly as the build did."""

from __future__ import annotations

import io
from pathlib import Path

import ir_measures
import numpy as np
import pytest

from explorer import WORKSPACE_FORMAT_VERSION, analysis, views
from explorer.data import load_beir
from explorer.export import trec_run_text
from explorer.index import trec_key
from explorer.pages import page_data
from explorer.workspace import WorkspaceError

from .conftest import ROOT, two_domain_config

VARIANTS = """
[[routing.variants]]
name = "pilot-mean/soft"
router = "pilot-mean"
soft = true

[[routing.variants]]
name = "pilot-mean/hybrid"
router = "pilot-mean"
hybrid = true
hybrid_datasets = "pilot"

[[routing.variants]]
name = "rrf/with-base-bm25"
router = "rrf"
base_as_candidate = true
lexical_as_candidate = true
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory, trains):
    from explorer.build import build
    from explorer.config import load_config

    tmp = tmp_path_factory.mktemp("mixing")
    experts = "".join(f'[[experts]]\nname = "{n}"\nsources = [{{dataset = "{n}", source = "qrels", '
                      f"max_pairs = 32}}]\n" for n in ("homefix", "pycode"))
    experts += '[[experts]]\nname = "bm25"\nkind = "bm25"\n'
    cfg = two_domain_config(tmp / "mixing.toml", ROOT / ".explorer-cache", tables=VARIANTS, experts=experts)
    return build(load_config(cfg), tmp / "ws", progress=False)


def _row_runs(ws, row: int) -> dict[str, list[tuple[str, float, int]]]:
    ids = ws.docs(ws.queries.iloc[row]["dataset"])["doc_id"].to_numpy()
    r = ws.run_rows(None, [row]).sort_values(["system", "rank"])
    return {s: [(ids[d], float(sc), int(k)) for d, sc, k in zip(g["doc"], g["score"], g["rank"])]
            for s, g in r.groupby("system")}


def test_fused_runs_equal_an_independent_fusion(ws):
    """RRF and the hybrid (CombSUM over min-max scores) recomputed with dicts from the stored expert runs, ordered
    as trec_eval orders (score descending, ties by document id descending), equal the stored mix: runs."""
    d = ws.decisions.set_index(["strategy", "row"])
    for row in ws.eval_rows()["row"].iloc[::3]:
        runs = _row_runs(ws, int(row))
        for strategy in ("rrf", "hybrid", "rrf/with-base-bm25"):
            weights = {e: d.loc[(strategy, row), f"weight:{e}"] for e in ws.encoders}
            fused: dict[str, float] = {}
            for e, w in weights.items():
                if w <= 0:
                    continue
                scores = [s for _, s, _ in runs[e]]
                lo, hi = min(scores), max(scores)
                for doc, s, rank in runs[e]:
                    part = 1 / (60 + rank) if strategy.startswith("rrf") else (s - lo) / (hi - lo) if hi > lo else 1
                    fused[doc] = fused.get(doc, 0.0) + w * part
            expect = sorted(fused.items(), key=lambda kv: trec_key(np.float32(kv[1]), kv[0]))[:100]
            stored = runs[f"mix:{strategy}"]
            assert [doc for doc, _, _ in stored] == [doc for doc, _ in expect], (strategy, row)
            assert [s for _, s, _ in stored] == pytest.approx([s for _, s in expect], rel=1e-5)


def test_fused_and_bm25_metrics_equal_trec_eval_on_the_exported_runs(ws):
    """Every strategy's stored nDCG@10 and R@100 per dataset equal ir_measures (pytrec_eval) on its exported TREC
    run, with the qrels read from the BEIR folder."""
    table = {m: analysis.summary(ws, m) for m in ("nDCG@10", "R@100")}
    for dataset in ws.datasets:
        beir = load_beir(ROOT / "sample_data" / dataset, dataset, splits=("test",))
        qids = set(ws.eval_rows(dataset)["qid"])
        qrels = [ir_measures.Qrel(q, d, g) for q, docs in beir.qrels["test"].items() if q in qids
                 for d, g in docs.items()]
        for strategy in ("fixed:bm25", "rrf", "combmnz", "hybrid", "pilot-mean/hybrid", "pilot-mean/soft"):
            run = list(ir_measures.read_trec_run(io.StringIO(trec_run_text(ws, strategy, dataset))))
            got = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.R @ 100], qrels, run)
            for m in ("nDCG@10", "R@100"):
                assert table[m].loc[dataset, strategy] == pytest.approx(got[ir_measures.parse_measure(m)],
                                                                         abs=1e-9), (dataset, strategy, m)


def test_bm25_runs_equal_bm25s_own_scores(ws):
    import bm25s
    import Stemmer

    dataset = ws.datasets[0]
    docs = ws.docs(dataset)
    passages = [f"{t} {x}".strip() if t else x for t, x in zip(docs["title"], docs["text"])]
    model = bm25s.BM25()
    model.index(bm25s.tokenize(passages, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False),
                show_progress=False)
    rows = ws.eval_rows(dataset)
    texts = rows["text"].tolist()
    found, scores = model.retrieve(bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                                                  show_progress=False), k=len(docs), show_progress=False)
    stored = ws.run_rows(["bm25"], rows["row"].tolist())
    for i, row in enumerate(rows["row"]):  # every scored document, in trec_eval's order, the first 100
        mine = stored[stored["row"] == row].sort_values("rank")
        keep = scores[i] > 0
        theirs = sorted(zip(scores[i][keep], found[i][keep]),
                        key=lambda sd: trec_key(sd[0], docs["doc_id"].iloc[sd[1]]))[:100]
        assert mine["doc"].tolist() == [d for _, d in theirs]
        assert mine["score"].tolist() == pytest.approx([s for s, _ in theirs], rel=1e-6)


def test_manifest_records_choices_made_on_pilot_queries(ws):
    info = {s["name"]: s for s in ws.manifest["strategies"]}
    soft = info["pilot-mean/soft"]["settings"]
    assert soft["soft_k"] in (1, 2, 3) and "k=1" in soft["soft_cv"]
    assert max(soft["soft_cv"].values()) == soft["soft_cv"][
        "k=1" if soft["soft_k"] == 1 else f"k={soft['soft_k']} T={soft['soft_temperature']:g}"]
    hybrid = info["pilot-mean/hybrid"]["settings"]
    assert set(hybrid["hybrid_on"]) == set(ws.datasets)
    for ds, (without, with_) in hybrid["hybrid_cv"].items():
        assert hybrid["hybrid_on"][ds] == (with_ > without)
    assert ws.manifest["format_version"] == WORKSPACE_FORMAT_VERSION == 3
    assert {e["name"]: e["capabilities"] for e in ws.experts}["bm25"] == ["lexical"]
    assert "bm25" not in ws.candidates  # lexical experts are not candidates unless they say so


def test_whatif_fuses_the_experts_still_on(ws):
    whatif = analysis.WhatIf(ws)
    names = [e["name"] for e in ws.experts]
    for measure in ws.measures:
        table, _ = whatif.run(names, measure)
        assert np.allclose(table.to_numpy(), analysis.summary(ws, measure)[table.columns].to_numpy(), atol=1e-12)
    table, choices = whatif.run(["homefix", "bm25"])
    assert table.loc["average", "rrf"] == pytest.approx(table.loc["average", "fixed:homefix"])
    assert (choices["rrf"] == ws.encoders.index("homefix")).all()
    table, _ = whatif.run(["homefix", "pycode"])
    assert "hybrid" not in table.columns and "rrf" in table.columns  # BM25 off: no hybrid left


def test_lexical_expert_has_no_query_embedding_and_pages_still_draw(ws):
    with pytest.raises(WorkspaceError, match="bm25 has no query embedding"):
        ws.embeddings("bm25")
    assert ws.embeddings("base").shape[0] == len(ws.queries)
    data = page_data("map", ws, {"strategy": "fixed:bm25"})
    assert {r["routed"] for r in data["queries"] if r["role"] == "eval"} == {"bm25"}


def test_pages_show_a_mixture_as_its_weights(ws):
    row = int(ws.eval_rows()["row"].iloc[0])
    data = page_data("inspector", ws, {"row": str(row), "strategy": "rrf"})
    chosen = {d["strategy"]: d["chosen"] for d in data["decisions"]}
    assert chosen["rrf"] == "mix: homefix 0.50 · pycode 0.50" and chosen["pilot-mean"] in ("homefix", "pycode")
    contrib = data["contributions"]
    runs = _row_runs(ws, row)
    for c in contrib:
        for expert in ("homefix", "pycode"):
            ranks = {doc: rank for doc, _, rank in runs[expert]}
            assert c[f"{expert} (0.50)"] == ranks.get(c["doc_id"])
    errors = page_data("errors", ws, {"strategy": "hybrid"})["queries"]
    assert {e["routed"] for e in errors} == {"mix: base 0.50 · bm25 0.50"}
    groups = page_data("overview", ws, {"groups": "mix,lexical"})["groups"]
    assert groups["rrf"] == "mix" and groups["fixed:bm25"] == groups["hybrid"] == "lexical"
    md = views.overview_table(ws, "nDCG@10", with_marks=False, groups=("lexical",))["markdown"]
    assert "| `hybrid` |" in md and "| `pilot-mean` |" not in md


def test_playground_searches_bm25_and_fusions_as_the_build_did(ws):
    from explorer.live import LiveRouter

    router = LiveRouter.open(ws)
    q = ws.eval_rows(ws.datasets[0]).iloc[2]
    stored = _row_runs(ws, int(q["row"]))
    live = router.search(q["text"], "bm25", q["dataset"], k=10)
    assert live["doc_id"].tolist() == [d for d, _, _ in stored["bm25"][:10]]
    result = router.route(q["text"])
    for strategy in ("hybrid", "rrf"):
        choice = router.choice(result.decisions[strategy])
        assert views.choice_label(choice).startswith("mix: ")
        live = router.search(q["text"], choice, q["dataset"], k=10)
        assert live["doc_id"].tolist() == [d for d, _, _ in stored[f"mix:{strategy}"][:10]], strategy
    assert "qpp-learned" in router.left_out and "qpp-learned" not in result.decisions
    assert "qpp-learned" not in views.live_strategies(ws)
