"""Rank fusion and array measures against independent computations: hand-computed fusions (RRF, CombSUM, CombMNZ,
z-score, weights, trec_eval's tie order) and ir_measures (trec_eval) on many random rankings."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.evaluation import per_query, run_dict
from explorer.fusion import Fusion, RunPool, pool_of, tie_keys
from explorer.rankmetrics import Judgements, evaluate, supported

IDS = ["d0", "d1", "d2", "d3", "d4"]


def _pool(docs, scores, ids=IDS) -> RunPool:
    docs = np.asarray(docs, dtype=np.int64)
    return pool_of(docs, np.asarray(scores, dtype=np.float32), np.array(["x"] * docs.shape[1], dtype=object),
                   {"x": ids})


# two systems, one query: A ranks d0 (0.9), d1 (0.5), d2 (0.1); B ranks d2 (3.0), d3 (1.0)
TWO = _pool([[[0, 1, 2]], [[2, 3, -1]]], [[[0.9, 0.5, 0.1]], [[3.0, 1.0, np.nan]]])


def _ranked(pool, weights, fusion, depth=5):
    docs, scores = pool.run(np.asarray([weights], dtype=float), fusion, depth)
    return [IDS[d] for d in docs[0] if d >= 0], scores[0]


def test_rrf_by_hand_with_trec_eval_ties():
    # d2: 1/63 + 1/61; d0: 1/61; d1 and d3: 1/62 each -> tied, trec_eval puts the larger id first (d3)
    names, scores = _ranked(TWO, [1, 1], Fusion("rrf", rrf_k=60))
    assert names == ["d2", "d0", "d3", "d1"]
    assert scores[:2] == pytest.approx([1 / 63 + 1 / 61, 1 / 61], rel=1e-6)


def test_combsum_and_combmnz_min_max_by_hand():
    # A min-max: d0 1, d1 0.5, d2 0; B: d2 1, d3 0. Sum: d2 1, d0 1 (tie: d2 first), d1 0.5, d3 0
    names, scores = _ranked(TWO, [1, 1], Fusion("combsum", "min-max"))
    assert names == ["d2", "d0", "d1", "d3"] and scores.tolist() == pytest.approx([1, 1, 0.5, 0])
    # MNZ: d2 held by both lists -> 2
    names, scores = _ranked(TWO, [1, 1], Fusion("combmnz", "min-max"))
    assert names == ["d2", "d0", "d1", "d3"] and scores.tolist() == pytest.approx([2, 1, 0.5, 0])


def test_combsum_z_score_and_weights_by_hand():
    a = np.array([0.9, 0.5, 0.1], dtype=np.float32).astype(float)
    za = (a - a.mean()) / a.std()
    # B: z of (3, 1) = (1, -1); weights 0.25 / 0.75
    expect = {"d0": 0.25 * za[0], "d1": 0.25 * za[1], "d2": 0.25 * za[2] + 0.75, "d3": -0.75}
    names, scores = _ranked(TWO, [0.25, 0.75], Fusion("combsum", "z-score"))
    assert names == sorted(expect, key=lambda d: -expect[d])
    assert scores.tolist() == pytest.approx([expect[d] for d in names], abs=1e-6)


def test_zero_weight_lists_are_left_out():
    names, _ = _ranked(TWO, [1, 0], Fusion("rrf"))
    assert names == ["d0", "d1", "d2"]  # d3 is only in B, whose weight is 0


def test_uniform_weights_give_the_plain_method_and_depth_cuts():
    full, _ = _ranked(TWO, [0.5, 0.5], Fusion("combmnz"))
    cut, _ = _ranked(TWO, [0.5, 0.5], Fusion("combmnz"), depth=2)
    assert full == _ranked(TWO, [1, 1], Fusion("combmnz"))[0] and cut == full[:2]


def test_fusion_settings_out_of_range_are_refused():
    for bad in (dict(method="borda"), dict(norm="max"), dict(method="rrf", rrf_k=-1)):
        with pytest.raises(ValueError):
            Fusion(**bad)


def test_tie_keys_follow_trec_eval_string_order():
    keys = tie_keys(["b", "a10", "a9", "a"])
    assert [k for _, k in sorted(zip(keys, ["b", "a10", "a9", "a"]))] == ["a", "a10", "a9", "b"]


def _random_case(rng, n_queries=60, n_docs=40, depth=20, systems=3):
    ids = [f"doc{j}" for j in rng.permutation(n_docs)]
    docs = np.full((systems, n_queries, depth), -1, dtype=np.int64)
    scores = np.full((systems, n_queries, depth), np.nan, dtype=np.float32)
    for s in range(systems):
        for q in range(n_queries):
            k = int(rng.integers(0, depth + 1))
            docs[s, q, :k] = rng.choice(n_docs, k, replace=False)
            scores[s, q, :k] = np.sort(np.round(rng.normal(size=k), 1))[::-1]  # rounded: ties happen
    qrels, query, doc, grade = {}, [], [], []
    for q in range(n_queries):
        judged = rng.choice(n_docs + 2, int(rng.integers(0, 8)), replace=False)
        for j in judged:  # positions beyond the corpus: judged documents the corpus lacks
            g = int(rng.integers(0, 3))
            did = ids[j] if j < n_docs else f"missing{j}"
            qrels.setdefault(f"q{q}", {})[did] = g
            query.append(q), doc.append(j if j < n_docs else -1), grade.append(g)
    return ids, docs, scores, qrels, Judgements(n_queries, np.array(query), np.array(doc), np.array(grade))


@pytest.mark.parametrize("measure", ["nDCG@10", "R@100", "RR@10", "AP", "P@5", "nDCG", "R@5"])
def test_array_measures_equal_ir_measures_on_fused_rankings(measure):
    """Fused rankings of random runs with ties, graded judgements and judged documents missing from the corpus:
    every query's value equals trec_eval's (ir_measures over pytrec_eval) on the same ranking."""
    assert supported(measure)
    rng = np.random.default_rng(7)
    ids, docs, scores, qrels, judged = _random_case(rng)
    pool = pool_of(docs, scores, np.array(["x"] * docs.shape[1], dtype=object), {"x": ids})
    qids = [f"q{q}" for q in range(docs.shape[1])]
    for fusion in (Fusion("rrf"), Fusion("combsum"), Fusion("combmnz", "z-score")):
        weights = rng.dirichlet(np.ones(3), size=len(qids))
        fused, fused_scores = pool.run(weights, fusion, 100)
        mine = evaluate(measure, judged.grades(np.arange(len(qids)), fused), judged, np.arange(len(qids)))
        run = run_dict(qids, ids, fused, np.nan_to_num(fused_scores))
        theirs = per_query({q: qrels[q] for q in qids if q in qrels}, run, [measure], qids)[measure]
        judged_q = [i for i, q in enumerate(qids) if q in qrels]
        assert mine[judged_q] == pytest.approx(theirs.reindex([qids[i] for i in judged_q]).to_numpy(), abs=1e-9)


def test_unsupported_measures_are_said_so():
    assert not supported("Judged@10") and not supported("nDCG@10(dcg='exp-log2')") and not supported("nonsense")
    with pytest.raises(ValueError, match="per_query"):
        evaluate("Judged@10", np.zeros((1, 1)), Judgements(1, np.array([0]), np.array([0]), np.array([1])), [0])


@pytest.mark.parametrize("measure", ["nDCG@10", "R@100", "RR@10", "AP", "P@5", "nDCG", "AP@5"])
def test_measures_from_the_ranks_of_judged_documents_equal_those_of_the_whole_ranking(measure):
    """The what-if scores a fused ranking from where each judged document lands in it (RunPool.ranks_of,
    evaluate_ranks): the same values as scoring the ranked list itself, ties and run depth included."""
    from explorer.rankmetrics import evaluate_ranks, judged_columns

    rng = np.random.default_rng(11)
    ids, docs, scores, _, judged = _random_case(rng)
    pool = pool_of(docs, scores, np.array(["x"] * docs.shape[1], dtype=object), {"x": ids})
    rows = np.arange(docs.shape[1])
    cols, grades = judged_columns(judged, rows, pool.union)
    for fusion, depth in ((Fusion("rrf"), 100), (Fusion("combsum"), 7), (Fusion("combmnz", "z-score"), 30)):
        weights = rng.dirichlet(np.ones(3), size=len(rows))
        fused = pool.fuse(weights, fusion)
        ranked, _ = pool.run(weights, fusion, depth)
        expect = evaluate(measure, judged.grades(rows, ranked), judged, rows)
        got = evaluate_ranks(measure, pool.ranks_of(fused, cols), grades, judged, rows, depth)
        assert got == pytest.approx(expect, abs=1e-12)


def test_switching_lists_off_a_kept_fusion_equals_fusing_the_rest_afresh():
    """The what-if keeps the sums of a uniform fusion and subtracts the lists switched off: the rankings equal a
    fresh fusion of the lists still on (asked for every query by position, a fusion takes the direct path)."""
    rng = np.random.default_rng(5)
    ids, docs, scores, _, _ = _random_case(rng, systems=4)
    kept = pool_of(docs, scores, np.array(["x"] * docs.shape[1], dtype=object), {"x": ids})
    n = docs.shape[1]
    for fusion in (Fusion("rrf"), Fusion("combsum"), Fusion("combmnz", "z-score")):
        kept.fuse(np.full((n, 4), 0.25), fusion)
        for on in ([0, 1, 3], [2], [1, 2]):
            weights = np.zeros((n, 4))
            weights[:, on] = 1 / len(on)
            fresh = pool_of(docs, scores, np.array(["x"] * n, dtype=object), {"x": ids})
            direct = fresh.fuse(weights, fusion, np.arange(n))
            assert np.array_equal(kept.top(kept.fuse(weights, fusion), 100), fresh.top(direct, 100)), (fusion, on)
