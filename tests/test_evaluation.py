"""Metrics equal trec_eval's: checked by hand and against an independent implementation; TREC files round-trip."""

from __future__ import annotations

import math

import ir_measures
import numpy as np
import pytest

from explorer.evaluation import holm, paired_tests, per_query, significance, write_trec_run


def reference_metrics(qrels: dict[str, int], run: dict[str, float]) -> dict[str, float]:
    """An independent implementation of trec_eval's definitions (linear gains, ties by docid descending)."""
    order = sorted(sorted(run, reverse=True), key=lambda d: -run[d])  # stable: ties keep docid descending
    rel = {d: g for d, g in qrels.items() if g > 0}
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(order[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    rr = next((1 / (i + 1) for i, d in enumerate(order[:10]) if d in rel), 0.0)
    hits, ap = 0, 0.0
    for i, d in enumerate(order):
        if d in rel:
            hits += 1
            ap += hits / (i + 1)
    return {"nDCG@10": dcg / idcg if idcg else 0.0, "RR@10": rr, "AP": ap / len(rel) if rel else 0.0,
            "R@100": sum(d in rel for d in order[:100]) / len(rel) if rel else 0.0}


def test_hand_checked_query():
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "d": 1}}
    run = {"q": {"x": 4.0, "a": 3.0, "c": 2.0, "b": 1.0}}
    got = per_query(qrels, run).loc["q"]
    # DCG = 2/log2(3) + 1/log2(5); IDCG = 2 + 1/log2(3) + 1/log2(4)
    assert got["nDCG@10"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3) + 0.5))
    assert got["nDCG@10"] == pytest.approx(0.540586, abs=1e-6)
    assert got["RR@10"] == pytest.approx(0.5)
    assert got["AP"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert got["R@100"] == pytest.approx(2 / 3)


def test_ties_are_broken_by_docid_descending_as_trec_eval_does():
    got = per_query({"q": {"d1": 1}}, {"q": {"d1": 1.0, "d2": 1.0, "d3": 0.5}}).loc["q"]
    assert got["RR@10"] == pytest.approx(0.5)  # d2 sorts before d1
    assert got["nDCG@10"] == pytest.approx(1 / math.log2(3))
    import pytrec_eval  # trec_eval itself agrees

    direct = pytrec_eval.RelevanceEvaluator({"q": {"d1": 1}}, {"recip_rank"}).evaluate({"q": {"d1": 1.0, "d2": 1.0}})
    assert direct["q"]["recip_rank"] == pytest.approx(0.5)


def test_random_runs_match_the_independent_implementation():
    rng = np.random.default_rng(7)
    qrels, run = {}, {}
    for q in range(40):
        docs = [f"doc{j}" for j in range(60)]
        qrels[f"q{q}"] = {d: int(rng.integers(0, 4)) for d in rng.choice(docs, 12, replace=False)}
        run[f"q{q}"] = {d: float(np.round(rng.random(), 2)) for d in rng.choice(docs, 30, replace=False)}  # ties
    got = per_query(qrels, run)
    for q in qrels:
        ref = reference_metrics(qrels[q], run[q])
        for m, v in ref.items():
            assert got.at[q, m] == pytest.approx(v, abs=1e-9), (q, m)


def test_judged_query_with_empty_run_scores_zero():
    got = per_query({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}})
    assert got.at["q1", "nDCG@10"] == 1.0 and got.at["q2", "nDCG@10"] == 0.0


def test_trec_run_file_round_trips_through_ir_measures(tmp_path):
    qrels = {"q": {"a": 2, "b": 1}}
    hits = {"q": {"a": 0.5, "b": 0.5, "c": 0.7}}
    path = tmp_path / "run.trec"
    write_trec_run(path, hits, "test")
    lines = path.read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["c", "b", "a"]  # ties: docid descending
    assert [line.split()[3] for line in lines] == ["1", "2", "3"]
    from_file = {m.query_id: m.value for m in ir_measures.iter_calc(
        [ir_measures.parse_measure("nDCG@10")], qrels, ir_measures.read_trec_run(str(path)))}
    assert from_file["q"] == pytest.approx(per_query(qrels, hits).at["q", "nDCG@10"])


def test_holm_matches_definition():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])


def test_paired_tests_detect_a_real_difference_and_not_noise():
    rng = np.random.default_rng(0)
    a = rng.random(80)
    better = paired_tests(a, a + 0.1 + rng.normal(0, 0.02, 80))
    assert better["p_t"] < 1e-6 and better["p_rand"] < 0.01 and better["delta"] > 0
    same = paired_tests(a, a)
    assert same["p_t"] == 1.0 and same["p_rand"] == 1.0


def test_significance_is_holm_corrected_across_systems():
    rng = np.random.default_rng(1)
    ref = rng.random(60)
    table = significance({"ref": ref, "up": ref + 0.2, "noise": ref + rng.normal(0, 0.01, 60)}, "ref")
    assert bool(table.at["up", "significant"])
    assert table.at["up", "p_t_holm"] >= table.at["up", "p_t"]


def test_significance_tests_every_system_in_one_vectorized_pass_equal_to_one_by_one():
    from scipy import stats

    rng = np.random.default_rng(3)
    ref = rng.uniform(size=50)
    systems = {"ref": ref, "a": ref + rng.normal(0.05, 0.1, 50), "b": ref + rng.normal(0, 0.1, 50), "same": ref}
    table = significance(systems, "ref", resamples=4000)
    for name in ("a", "b"):
        assert table.loc[name, "p_t"] == pytest.approx(stats.ttest_rel(systems[name], ref).pvalue, rel=1e-12)
        alone = stats.permutation_test((ref, systems[name]), lambda x, y, axis: np.mean(y - x, axis=axis),
                                       permutation_type="samples", n_resamples=4000, vectorized=True,
                                       rng=np.random.default_rng(9)).pvalue
        assert table.loc[name, "p_rand"] == pytest.approx(alone, abs=0.03)  # same test, other random flips
    assert table.loc["same", "p_t"] == 1.0 and table.loc["same", "p_rand"] == 1.0
