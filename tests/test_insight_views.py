"""Issue 27's views, each against an independent computation: the oracle-gap decomposition (its parts add up to the
oracle gap per dataset and per map region), "% of the gap closed" (a hand-run seeded bootstrap), complementarity
(set differences of the TREC exports), the reviewer's per-cell statistics (scipy on the same vectors), expert arrows
(placement by brute force), cohorts (round trips and hostile links) and the per-query waterfall.

Expected values are recomputed here from the workspace's stored tables or files, never numbers of the sample."""

from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from explorer import analysis, export, views
from explorer.cli import main
from explorer.cohort import (COHORT_FIELD, MAX_CHARS, CohortError, clean_name, cohort_matrix, cohort_queries,
                             cohort_rows, decode, encode, parquet_bytes)
from explorer.evaluation import holm, mean_difference
from explorer.gap import (GAP_PARTS, GAP_RESAMPLES, TOLERANCE, gap_closed, gap_decomposition, query_gaps,
                          query_regions, region_decomposition)
from explorer.pages import ParamError, page_data
from explorer.projection import layout_reference, place
from explorer.reviewer_stats import cell_statistics, saturated

from .test_app import ws  # noqa: F401  (ws: the sample workspace fixture, shared)


def label_measure_frame(ws, measure):
    """Per evaluated query, read straight from the stored tables: dataset, every strategy's and encoder's score."""
    q = ws.queries[ws.queries["role"] == "eval"].set_index("row")
    sm = ws.strategy_metrics.pivot(index="row", columns="strategy", values=measure)
    m = ws.metrics.pivot(index="row", columns="system", values=measure).add_prefix("enc:")
    return q[["dataset", "qid"]].join(sm).join(m)


# --- the oracle gap -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["nDCG@10", "RR@10"])
def test_gap_parts_add_up_to_the_oracle_gap_per_dataset_and_region(ws, measure):  # noqa: F811
    oracle = views.instance_oracle(ws)
    table = analysis.summary(ws, measure)
    for strategy in (views.default_strategy(ws), "base", "prototype-merge", oracle):
        d = gap_decomposition(ws, strategy, measure)
        for col in d.index:  # the oracle gap of the score table, split exactly into parts
            assert d.loc[col, "gap"] == pytest.approx(table.loc[col, oracle] - table.loc[col, strategy], abs=1e-12)
            assert sum(d.loc[col, p] for p in GAP_PARTS) == pytest.approx(d.loc[col, "gap"], abs=1e-12)
            assert sum(d.loc[col, f"{p} queries"] for p in GAP_PARTS) == d.loc[col, "queries"]
        regions = region_decomposition(ws, strategy, "umap", measure)
        assert regions["queries"].sum() == len(ws.eval_rows())
        for r in regions.to_dict("records"):
            assert sum(r[p] for p in GAP_PARTS) == pytest.approx(r["gap"], abs=1e-12)
    assert (gap_decomposition(ws, oracle, measure)[["gap", "routing error"]].abs() < 1e-12).all().all()


def test_gap_parts_are_the_definitions_recomputed_from_the_stored_tables(ws):  # noqa: F811
    strategy, measure = views.default_strategy(ws), ws.label_measure
    oracle = views.instance_oracle(ws)
    experts = ws.strategy_info(oracle)["choices"]
    f = label_measure_frame(ws, measure)
    q = query_gaps(ws, strategy, measure)
    for row, r in f.iterrows():
        values = [r[f"enc:{e}"] for e in experts]
        gap = r[oracle] - r[strategy]
        if max(values) - min(values) <= TOLERANCE:
            want = "ties"
        elif r[oracle] <= r["enc:base"] + TOLERANCE:
            want = "no expert helps"
        elif gap > TOLERANCE:
            want = "routing error"
        else:
            want = "at or above the oracle"
        assert q.loc[row, "part"] == want and q.loc[row, "gap"] == pytest.approx(gap, abs=1e-12)
    # a region is a cell of a 4 x 4 grid over the layout's extent
    lay = ws.layout[ws.layout["method"] == "umap"]
    regions = query_regions(ws, "umap")
    x0, x1, y0, y1 = lay["x"].min(), lay["x"].max(), lay["y"].min(), lay["y"].max()
    for p in lay[lay["item"] == "query"].sample(30, random_state=1).itertuples():
        i, j = min(int((y1 - p.y) / (y1 - y0) * 4), 3), min(int((p.x - x0) / (x1 - x0) * 4), 3)
        assert regions[p.ref] == f"r{i}c{j}"


def test_gap_closed_is_a_hand_run_seeded_stratified_bootstrap(ws):  # noqa: F811
    measure, reference = ws.label_measure, "base"
    oracle = views.instance_oracle(ws)
    closed = gap_closed(ws, measure, reference, resamples=300, seed=5)
    f = label_measure_frame(ws, measure)
    names = list(ws.strategies)
    rng = np.random.default_rng(5)
    boot = {}
    for d in ws.datasets:  # the same draws, one call per resample, and plain means of the gathered queries
        x = f[f["dataset"] == d][names].to_numpy(float)
        boot[d] = np.array([x[rng.integers(0, len(x), len(x))].mean(axis=0) for _ in range(300)])
    boot["average"] = np.mean([boot[d] for d in ws.datasets], axis=0)
    table = analysis.summary(ws, measure)
    for col, b in boot.items():
        ri, oi = names.index(reference), names.index(oracle)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (b - b[:, [ri]]) / (b[:, [oi]] - b[:, [ri]])
        for s in (views.default_strategy(ws), "multi-task", "dataset-router"):
            row = closed[(closed["dataset"] == col) & (closed["strategy"] == s)].iloc[0]
            ref = table.loc[col, reference]
            point = (table.loc[col, s] - ref) / (table.loc[col, oracle] - ref)
            assert row["closed"] == pytest.approx(point, abs=1e-12)
            r = ratio[:, names.index(s)]
            r = r[np.isfinite(r)]
            assert [row["low"], row["high"]] == pytest.approx(np.percentile(r, [2.5, 97.5]), abs=1e-9)
            assert row["low"] <= row["closed"] <= row["high"]
    ends = closed[closed["strategy"].isin([reference, oracle])]
    assert set(ends.loc[ends["strategy"] == reference, "closed"]) == {0.0}
    assert np.allclose(ends.loc[ends["strategy"] == oracle, ["closed", "low", "high"]], 1.0)
    again = gap_closed(ws, measure, reference, resamples=300, seed=5)
    pd.testing.assert_frame_equal(closed, again)  # seeded: the same interval every time


def test_gap_on_a_cohort_is_the_gap_of_its_queries(ws):  # noqa: F811
    strategy = views.default_strategy(ws)
    ev = ws.eval_rows()
    rows = ev[ev["dataset"].isin(ws.datasets[:2])]["row"].to_numpy()[::2]
    d = gap_decomposition(ws, strategy, rows=rows)
    assert list(d.index) == [*ws.datasets[:2], analysis.AVERAGE]
    q = query_gaps(ws, strategy)
    for ds in ws.datasets[:2]:
        part = q.loc[[r for r in rows if q.loc[r, "dataset"] == ds]]
        assert d.loc[ds, "gap"] == pytest.approx(part["gap"].mean(), abs=1e-12)
    assert set(gap_closed(ws, rows=rows, resamples=50)["dataset"]) == {*ws.datasets[:2], analysis.AVERAGE}


def embedding_experts(ws) -> list[str]:
    """The experts that embed queries (every encoder but base and a lexical one): those with expert arrows."""
    return [e for e in ws.encoders[1:] if ws.has_embedding(e)]


# --- complementarity against the TREC exports ---------------------------------------------------------------------
def top10_from_trec(text: str) -> dict[str, set[str]]:
    """qid -> the documents of ranks 1-10 in a TREC run file (its rank column as written)."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        qid, _, doc, rank, _, _ = line.split()
        if int(rank) <= 10:
            out.setdefault(qid, set()).add(doc)
    return out


def test_complementarity_counts_are_set_differences_of_the_trec_exports(ws):  # noqa: F811
    dataset = ws.datasets[1]
    view = views.complementarity_view(ws, dataset)
    qrels = {q: {d for d, g in docs.items() if g > 0} for q, docs in ws.qrels(dataset).items()}
    qids = set(ws.eval_rows(dataset)["qid"])
    found = {}
    for enc in ws.encoders:
        strategy = "base" if enc == "base" else views.fixed_strategy(ws, enc)
        top = top10_from_trec(export.trec_run_text(ws, strategy, dataset))
        found[enc] = {(q, d) for q in qids for d in qrels.get(q, set()) & top.get(q, set())}
    relevant = {(q, d) for q in qids for d in qrels.get(q, set())}
    assert view["relevant"] == len(relevant)
    for a in ws.encoders:
        for b in ws.encoders:
            assert view["pairs"].loc[a, b] == len(found[a] - found[b]), (a, b)
        others = set().union(*(found[e] for e in ws.encoders if e != a))
        assert view["per_encoder"].loc[a, "only"] == len(found[a] - others)
        assert view["per_encoder"].loc[a, "found"] == len(found[a])
    missed = relevant - set().union(*found.values())
    assert set(zip(view["missed"]["qid"], view["missed"]["doc_id"])) == missed
    # document side: each listed document's gains and losses against base, counted over its queries
    docs = view["documents"]
    assert len(docs)
    for r in docs.itertuples():
        judged = [q for q in qids if r.doc_id in qrels.get(q, set())]
        gained = sum((q, r.doc_id) in found[r.expert] and (q, r.doc_id) not in found["base"] for q in judged)
        lost = sum((q, r.doc_id) not in found[r.expert] and (q, r.doc_id) in found["base"] for q in judged)
        assert (r.gained, r.lost, r.judged, r.net) == (gained, lost, len(judged), gained - lost)
        assert (r.direction == "gains") == (r.net > 0) and r.net != 0
        assert ws.queries.loc[ws.queries["row"] == r.row, "qid"].iloc[0] in judged


# --- reviewer statistics ------------------------------------------------------------------------------------------
def test_cell_statistics_equal_scipy_on_the_same_vectors(ws):  # noqa: F811
    measure, reference = ws.label_measure, "base"
    cells = cell_statistics(ws, measure, reference)
    f = label_measure_frame(ws, measure)
    others = [s for s in ws.strategies if s != reference]
    for ds in [ws.datasets[0], ws.datasets[-1]]:
        part = f[f["dataset"] == ds]
        got = cells[cells["dataset"] == ds].set_index("strategy").loc[others]
        p_t = []
        for s in others:
            t = stats.ttest_rel(part[s], part[reference])
            diff = (part[s] - part[reference]).to_numpy()
            if np.allclose(diff, 0):
                assert got.loc[s, "p_t"] == 1.0 and got.loc[s, "low"] == got.loc[s, "high"] == 0.0
            else:
                assert got.loc[s, "p_t"] == pytest.approx(t.pvalue, rel=1e-9)
                ci = t.confidence_interval(0.95)
                if diff.std() > 0:
                    assert [got.loc[s, "low"], got.loc[s, "high"]] == pytest.approx([ci.low, ci.high], rel=1e-9)
                    assert got.loc[s, "d_z"] == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-9)
            assert got.loc[s, "delta"] == pytest.approx(diff.mean(), abs=1e-12)
            p_t.append(got.loc[s, "p_t"])
        # the randomization test: scipy's permutation test on the same differences, flips seeded as the table's
        diffs = (part[others].to_numpy() - part[[reference]].to_numpy()).T
        perm = stats.permutation_test((diffs,), lambda d, axis: np.mean(d, axis=axis), permutation_type="samples",
                                      n_resamples=analysis.SIGNIFICANCE_RESAMPLES, vectorized=True, axis=1,
                                      rng=np.random.default_rng(0)).pvalue
        same = np.all(np.isclose(diffs, 0), axis=1)
        assert got["p_rand"].to_numpy() == pytest.approx(np.where(same, 1.0, perm), abs=1e-12)
        assert got["p_t_holm"].to_numpy() == pytest.approx(holm_by_hand(p_t), abs=1e-12)


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: sort, multiply by (m - rank), carry the running maximum."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_average_column_tests_the_macro_average_difference(ws):  # noqa: F811
    measure, reference = ws.label_measure, "base"
    f = label_measure_frame(ws, measure)
    n_d = f["dataset"].map(f["dataset"].value_counts())
    weight = len(f) / (f["dataset"].nunique() * n_d)
    table = analysis.summary(ws, measure)
    cells = cell_statistics(ws, measure, reference)
    avg = cells[cells["dataset"] == analysis.AVERAGE].set_index("strategy")
    for s in (views.default_strategy(ws), "multi-task"):
        d = ((f[s] - f[reference]) * weight).to_numpy()
        assert d.mean() == pytest.approx(table.loc[analysis.AVERAGE, s] - table.loc[analysis.AVERAGE, reference])
        assert avg.loc[s, "delta"] == pytest.approx(d.mean(), abs=1e-12)
        assert avg.loc[s, "p_t"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-9)
    # the marks on the Overview's average column are these tests' (Holm across strategies, both below 0.05)
    view = views.overview_table(ws, measure, reference)
    sig = avg[avg["significant"]]
    marks = {s: ("▲" if r.delta > 0 else "▼") for s, r in sig.iterrows()}
    assert {s: m for (c, s), m in view["marks"].items() if c == analysis.AVERAGE} == marks


def test_mean_difference_edges():
    ref = np.array([0.1, 0.5, 0.9])
    same = mean_difference(ref, np.stack([ref, ref + 0.1]))
    assert list(same["low"]) == pytest.approx([0.0, 0.1]) and list(same["high"]) == pytest.approx([0.0, 0.1])
    assert same["d_z"][0] == 0.0 and same["d_z"][1] == np.inf
    one = mean_difference(ref[:1], ref[None, :1] + 0.2)
    assert np.isnan(one["low"][0]) and one["delta"][0] == pytest.approx(0.2)


def test_saturated_columns_are_named_with_why(ws):  # noqa: F811
    for measure in ws.measures:
        table = analysis.summary(ws, measure)
        shown = (100 * table).round(1)
        want = {c: float(shown.loc[c].iloc[0]) for c in table.index if shown.loc[c].nunique() == 1}
        view = views.overview_table(ws, measure, with_marks=False)
        assert saturated(table) == want == view["saturated"]
        note = views.saturation_note(view, measure)
        assert bool(note) == bool(want)
        if any(v == 100.0 for v in want.values()):
            assert "saturated" in note and "cannot tell the strategies apart" in note
    lines = views.overview_table(ws, ws.label_measure, "multi-task", with_marks=False)["markdown"].splitlines()
    assert [line.split(" | ")[0] for line in lines if "◆" in line] == ["| `multi-task` ◆ *reference*"]


# --- expert arrows and placement ----------------------------------------------------------------------------------
def test_a_reference_point_is_placed_on_itself():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    xy = rng.normal(size=(50, 2))
    assert place(emb[[3, 17]], emb, xy) == pytest.approx(xy[[3, 17]].astype(np.float32))
    left_out = place(emb[[3]], emb, xy, exclude=np.array([3]))[0]
    assert not np.allclose(left_out, xy[3])
    # brute force: the similarity-weighted mean of the 10 nearest others
    sims = emb[3] @ emb.T
    sims[3] = -np.inf
    near = np.argsort(-sims)[:10]
    w = np.exp((sims[near] - sims[near].max()) / 0.05)
    assert left_out == pytest.approx((w[:, None] * xy[near]).sum(0) / w.sum(), abs=1e-5)


def test_expert_arrows_are_each_experts_placed_move_coloured_by_its_score(ws):  # noqa: F811
    rows = ws.eval_rows()["row"].astype(int).tolist()[3:6]
    arrows = views.expert_arrows(ws, rows, "umap")
    assert len(arrows) == len(rows) * len(embedding_experts(ws))
    assert set(arrows["expert"]) == set(embedding_experts(ws))  # BM25 embeds nothing: no arrow
    ref_emb, ref_xy = layout_reference(ws, "umap")
    stored = ws.layout[(ws.layout["method"] == "umap") & (ws.layout["item"] == "query")].set_index("ref")
    scores = ws.metrics.pivot(index="row", columns="system", values=ws.label_measure)
    for r in arrows.sample(12, random_state=0).itertuples():
        own = np.flatnonzero(np.sort(stored.index.to_numpy()) == r.row)
        moved = (place(ws.embeddings(r.expert)[[r.row]], ref_emb, ref_xy, exclude=own)
                 - place(ws.embeddings("base")[[r.row]], ref_emb, ref_xy, exclude=own))[0]
        assert (r.x0, r.y0) == pytest.approx((stored.loc[r.row, "x"], stored.loc[r.row, "y"]))
        assert (r.x1 - r.x0, r.y1 - r.y0) == pytest.approx(tuple(moved), abs=1e-4)
        delta = scores.loc[r.row, r.expert] - scores.loc[r.row, "base"]
        assert r.effect == ("better" if delta > 1e-9 else "worse" if delta < -1e-9 else "same")
    pilot = int(ws.queries.loc[ws.queries["role"] == "pilot", "row"].iloc[0])
    assert views.expert_arrows(ws, [pilot], "umap").empty  # pilot queries have no scores to colour by


def test_map_search_and_extent(ws):  # noqa: F811
    q = ws.eval_rows().iloc[4]
    found = views.search_queries(ws, q["qid"].upper())
    assert found.iloc[0]["row"] == q["row"] and found.iloc[0]["match"] == "id"
    word = max(q["text"].split(), key=len)
    by_text = views.search_queries(ws, word)
    assert set(by_text["row"]) == set(ws.eval_rows().loc[ws.eval_rows()["text"].str.casefold().str.contains(
        word.casefold(), regex=False) & (ws.eval_rows()["qid"].str.casefold() != word.casefold()), "row"])
    assert views.search_queries(ws, "   ").empty and views.search_queries(ws, "x" * 10_000).empty
    lay = ws.layout[ws.layout["method"] == "umap"]
    ext = views.map_extent(ws, "umap")
    assert ext["x"][0] < lay["x"].min() and ext["x"][1] > lay["x"].max() and ext["y"][0] < lay["y"].min()


# --- cohorts ------------------------------------------------------------------------------------------------------
def test_cohort_text_round_trips_and_takes_the_shorter_form():
    rng = np.random.default_rng(0)
    for rows in ([5], list(range(100, 400)), sorted(rng.choice(50_000, 2_000, replace=False)), []):
        text = encode(rows, 50_000)
        assert list(decode(text, 50_000)) == sorted(set(rows)) and len(text) <= MAX_CHARS
    assert encode(range(100, 400), 50_000) == "r.100-399"
    assert encode([1, 2, 3, 7, 9, 10], 100) == "r.1-3_7_9-10"
    assert encode(rng.choice(50_000, 2_000, replace=False), 50_000).startswith("b.")
    with pytest.raises(CohortError, match="more than"):
        encode(rng.choice(500_000, 100_000, replace=False), 500_000)


@pytest.mark.parametrize("text, why", [
    ("x.1-2", "neither"), ("r.1-2;3", "neither"), ("r.5-2", "rows 5–2"), ("r.0-100000", "rows 0–99"),
    ("b.!!", "neither"), ("b.abc", "cannot be read"), ("r." + "1" * 5000, "at most"),
])
def test_hostile_cohort_texts_are_refused_with_why(text, why):
    with pytest.raises(CohortError, match=why):
        decode(text, 100)


def test_a_bitset_cannot_inflate_past_its_workspace():
    bomb = base64.urlsafe_b64encode(zlib.compress(b"\0" * 2_500_000, 9)).decode().rstrip("=")
    assert len(bomb) < MAX_CHARS
    with pytest.raises(CohortError, match="not one of 100 queries"):
        decode("b." + bomb, 100)
    past = np.zeros(16, dtype=bool)
    past[13] = True
    text = base64.urlsafe_b64encode(zlib.compress(np.packbits(past, bitorder="little").tobytes())).decode()
    with pytest.raises(CohortError, match="past the last"):
        decode("b." + text.rstrip("="), 10)
    assert clean_name("  a\x00b\n  c " + "d" * 100) == "ab c " + "d" * 55 and clean_name("") == "selection"


def test_a_cohort_filters_every_page_and_exports_its_matrix(ws):  # noqa: F811
    ev = ws.eval_rows()
    rows = ev["row"].to_numpy()[::3]
    text = encode(rows, len(ws.queries))
    assert list(cohort_rows(ws, text)) == sorted(rows)
    pilot = int(ws.queries.loc[ws.queries["role"] == "pilot", "row"].iloc[0])
    with pytest.raises(CohortError, match="pilot"):
        cohort_rows(ws, encode([pilot, int(rows[0])], len(ws.queries)))
    f = label_measure_frame(ws, ws.label_measure).loc[sorted(rows)]
    # Overview: the cohort is a slice; its table is the per-dataset means of its queries
    over = page_data("overview", ws, {"cohort": text, "cohort_name": "every third"})
    by = f.groupby("dataset")[ws.strategies].mean()
    for r in over["table"]:
        if r["dataset"] in by.index:
            assert r["base"] == pytest.approx(round(100 * by.loc[r["dataset"], "base"], 1))
    assert over["queries"]["average"] == len(rows)
    # Error analysis and Routing decisions keep its queries only
    errors = page_data("errors", ws, {"cohort": text})
    assert sorted(e["row"] for e in errors["queries"]) == sorted(rows)
    dec = page_data("decisions", ws, {"cohort": text})
    assert next(r for r in dec["report"] if r["dataset"] == "average")["queries"] == len(rows)
    with pytest.raises(ParamError, match="cohort"):
        page_data("errors", ws, {"cohort": "r.0-99999999"})
    # exports: its qids, and the query x strategy matrix as CSV and Parquet
    qids = cohort_queries(ws, rows)
    assert list(qids["qid"]) == list(f["qid"])
    matrix = cohort_matrix(ws, rows)
    assert list(matrix.columns) == ["row", "dataset", "qid", *ws.strategies]
    assert matrix.set_index("row")[ws.strategies].to_numpy() == pytest.approx(f[ws.strategies].to_numpy())
    back = pd.read_parquet(io.BytesIO(parquet_bytes(matrix)))
    pd.testing.assert_frame_equal(back, matrix)
    # the paper table says it is a cohort
    md = export.paper_table(ws, None, None, "markdown", slice_by=(COHORT_FIELD, text))
    assert "Only the queries of a cohort" in md


# --- waterfall ----------------------------------------------------------------------------------------------------
def test_waterfall_is_the_sorted_per_query_difference(ws):  # noqa: F811
    a, b = "base", views.default_strategy(ws)
    f = label_measure_frame(ws, ws.label_measure)
    wf = views.difference_waterfall(ws, a, b)
    bars = wf["bars"]
    assert wf["queries"] == len(f) and not wf["sampled"]
    assert list(bars["delta"]) == sorted(bars["delta"])
    assert sorted(bars["delta"]) == pytest.approx(sorted(f[b] - f[a]))
    assert wf["mean"] == pytest.approx((f[b] - f[a]).mean())
    small = views.difference_waterfall(ws, a, b, limit=20)
    assert small["sampled"] and len(small["bars"]) == 20
    assert small["bars"]["position"].iloc[[0, -1]].tolist() == [0, len(f) - 1]
    assert list(small["bars"]["delta"]) == sorted(small["bars"]["delta"])
    rows = f.index[:30]
    assert set(views.difference_waterfall(ws, a, b, rows=rows)["bars"]["row"]) == set(rows)


# --- explorer view ------------------------------------------------------------------------------------------------
def test_explorer_view_exposes_the_new_views_as_data(ws, capsys):  # noqa: F811
    assert main(["view", "gap", str(ws.path), "--json"]) == 0
    gap = json.loads(capsys.readouterr().out)
    assert gap["resamples"] == GAP_RESAMPLES and gap["oracle"] == views.instance_oracle(ws)
    for r in gap["decomposition"]:
        assert sum(r[p] for p in GAP_PARTS) == pytest.approx(r["gap"], abs=1e-12)
    assert main(["view", "complementarity", str(ws.path), "--param", f"dataset={ws.datasets[2]}", "--json"]) == 0
    comp = json.loads(capsys.readouterr().out)
    assert comp["dataset"] == ws.datasets[2] and len(comp["pairs"]) == len(ws.encoders)
    assert main(["view", "map", str(ws.path), "--param", f"focus={int(ws.eval_rows()['row'].iloc[0])}",
                 "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["arrows"]) == len(embedding_experts(ws))
    assert main(["view", "overview", str(ws.path), "--param", "vs=multi-task", "--json"]) == 0
    over = json.loads(capsys.readouterr().out)
    assert over["waterfall"]["queries"] == len(ws.eval_rows()) and over["waterfall"]["b"] == "multi-task"
    assert over["statistics"]
    assert main(["view", "gap", str(ws.path), "--param", "layout=nope"]) == 2
    assert "layout='nope'" in capsys.readouterr().err


def test_a_workspace_stored_before_the_average_rows_gets_them_computed(ws, tmp_path):  # noqa: F811
    import shutil

    from explorer.workspace import Workspace

    dst = tmp_path / "ws"
    shutil.copytree(ws.path, dst)
    sig = pd.read_parquet(dst / "significance.parquet")
    sig[sig["dataset"] != analysis.AVERAGE].to_parquet(dst / "significance.parquet", index=False)
    old = Workspace(dst)
    table = analysis.significance_table(old, old.label_measure)
    pd.testing.assert_frame_equal(table, analysis.compute_significance(old, old.label_measure, "base"))
    assert (table["dataset"] == analysis.AVERAGE).sum() == len(old.strategies) - 1
