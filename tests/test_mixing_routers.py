"""Mixing instead of choosing, on a context with stored runs where the right answers are known: rank fusion and
hybrid decisions, soft routing's weights and its choice of k and temperature on pilot queries only, and
post-retrieval features computed from runs alone."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.capabilities import LEXICAL, MERGE_WEIGHTS
from explorer.fusion import Fusion, pool_of
from explorer.rankmetrics import Judgements
from explorer.routing import ROUTERS, RoutingContext, all_strategies
from explorer.routing.mixing import MixedVariant, choose_soft, soft_decision
from explorer.routing.post_retrieval import agreement, features

ENCODERS = ["base", "e1", "e2", "bm25"]
N_PILOT, N_EVAL, DEPTH, N_DOCS = 40, 6, 10, 30


def _context(candidates=(1, 2), eval_scores=None, lexical_at=None, **params) -> RoutingContext:
    """Two domains (d1 along axis 0, d2 along axis 1). Every query's relevant document is its own number; expert
    k retrieves it first on domain k's queries and fifth on the other's; base retrieves it third, BM25 at
    `lexical_at[dataset]` (0-based; third by default)."""
    rng = np.random.default_rng(0)
    n = N_PILOT + N_EVAL
    ds = np.array(["d1", "d2"] * (n // 2), dtype=object)
    emb = np.zeros((n, 4), dtype=np.float32)
    emb[np.arange(n), (ds == "d2").astype(int)] = 1.0
    emb += 0.05 * rng.normal(size=emb.shape).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    docs = np.zeros((4, n, DEPTH), dtype=np.int64)
    scores = np.tile(np.linspace(0.9, 0.5, DEPTH, dtype=np.float32), (4, n, 1))
    label = np.zeros((n, 4))
    for q in range(n):
        rel = q % N_DOCS
        others = [d for d in rng.permutation(N_DOCS) if d != rel][:DEPTH - 1]
        own = 1 if ds[q] == "d1" else 2
        for e in range(4):
            at = 0 if e == own else 4 if e in (1, 2) else (lexical_at or {}).get(ds[q], 2) if e == 3 else 2
            docs[e, q] = np.insert(others, at, rel)
            label[q, e] = 1 / np.log2(at + 2)
    pool = pool_of(docs, scores, ds, {"d1": [f"x{i:02d}" for i in range(N_DOCS)], "d2": [f"x{i:02d}" for i in
                                                                                          range(N_DOCS)]})
    pilot = np.arange(N_PILOT)
    judged = Judgements(n, pilot, pilot % N_DOCS, np.ones(N_PILOT))
    ev = np.arange(N_PILOT, n)
    return RoutingContext(
        encoders=ENCODERS, candidates=list(candidates), own_expert={"d1": 1, "d2": 2}, pilot_emb=emb[pilot],
        pilot_dataset=ds[pilot], pilot_scores=label[pilot], eval_dataset=ds[ev],
        eval_scores=label[ev] if eval_scores is None else eval_scores, expert_datasets={1: ["d1"], 2: ["d2"]},
        expert_capabilities={1: frozenset({MERGE_WEIGHTS}), 2: frozenset({MERGE_WEIGHTS}), 3: frozenset({LEXICAL})},
        params={"ties": "first", **params}, runs=pool, pilot_rows=pilot, eval_rows=ev, pilot_judged=judged, row_dataset=ds,
        label_measure="nDCG@10", depth=DEPTH), emb[ev], ev


def test_rank_fusion_routers_weigh_every_candidate_equally():
    ctx, emb, rows = _context()
    for name, method in (("rrf", "rrf"), ("combsum", "combsum"), ("combmnz", "combmnz")):
        dec = ROUTERS[name]().decide(ctx, emb, rows)
        assert dec.weights[:, [1, 2]].tolist() == [[0.5, 0.5]] * len(rows) and (dec.chosen == -1).all()
        assert dec.fusion.method == method
    z = ROUTERS["combsum"]().decide(ctx.with_params({"fusion_norm": "z-score"}), emb, rows)
    assert z.fusion == Fusion("combsum", "z-score")


def test_hybrid_fuses_base_with_the_lexical_expert():
    ctx, emb, rows = _context()
    dec = ROUTERS["hybrid"]().decide(ctx.with_params({"hybrid_weight": 0.3}), emb, rows)
    assert dec.weights[0].tolist() == pytest.approx([0.7, 0, 0, 0.3]) and dec.fusion == Fusion("combsum", "min-max")
    routed = MixedVariant("pilot-mean/hybrid", ROUTERS["pilot-mean"](), {"hybrid": True}).decide(ctx, emb, rows)
    own = np.where(ctx.eval_dataset == "d1", 1, 2)
    assert np.allclose(routed.weights[np.arange(len(rows)), own], 0.5) and np.allclose(routed.weights[:, 3], 0.5)


def test_hybrid_per_dataset_is_chosen_on_pilot_queries():
    """BM25 finds the answer first on d2 and fifth on d1: fused with base (weight 0.7 on BM25) it lifts d2's pilot
    queries and sinks d1's, so with hybrid_datasets = "pilot" only d2's queries take it."""
    ctx, emb, rows = _context(lexical_at={"d1": 4, "d2": 0}, hybrid_weight=0.7, hybrid_datasets="pilot")
    router = ROUTERS["hybrid"]()
    settings = router.settings(ctx)
    assert settings["hybrid_on"] == {"d1": False, "d2": True}
    without, with_ = settings["hybrid_cv"]["d2"]
    assert with_ == pytest.approx(1.0) and without == pytest.approx(0.5)  # base has it third: 1 / log2(4)
    dec = router.decide(ctx, emb, rows)
    d2 = ctx.eval_dataset == "d2"
    assert np.allclose(dec.weights[d2][:, [0, 3]], [0.3, 0.7]) and (dec.chosen[~d2] == 0).all()
    variant = MixedVariant("pilot-mean/hybrid", ROUTERS["pilot-mean"](), {"hybrid": True})
    assert "hybrid_on" not in variant.settings(ctx.with_params({"hybrid_datasets": "all"}))


def test_soft_weights_are_the_softmax_of_the_top_k_scores():
    scores = np.array([[np.nan, 0.30, 0.28, 0.10], [np.nan, 0.1, 0.5, 0.2]])
    dec = soft_decision(scores, [1, 2, 3], 4, k=2, temperature=0.05)
    assert dec.weights.sum(axis=1) == pytest.approx([1, 1])
    e = np.exp(np.array([0.30, 0.28]) / 0.05)
    assert dec.weights[0, [1, 2]] == pytest.approx(e / e.sum()) and dec.weights[0, 3] == 0
    e = np.exp(np.array([0.5, 0.2]) / 0.05)
    assert dec.weights[1, [2, 3]] == pytest.approx(e / e.sum()) and dec.weights[1, 1] == 0
    hard = soft_decision(scores, [1, 2, 3], 4, k=1, temperature=0.05)
    assert hard.chosen.tolist() == [1, 2]


def test_soft_choice_is_made_on_pilot_queries_and_recorded():
    """Each candidate (k, T) is scored on held-out pilot queries; the evaluated queries' scores are never read:
    permuting them changes neither the choice nor the decisions."""
    ctx, emb, rows = _context()
    (k, t), cv = choose_soft(ROUTERS["pilot-mean"](), ctx)
    assert "k=1" in cv and "k=2 T=0.005" in cv and len(cv) == 1 + 2 * 8
    assert cv[f"k={k}" + (f" T={t:g}" if k > 1 else "")] == max(cv.values())
    # pilot-mean routes every pilot query to its own expert here (nDCG 1), mixing only loses: the hard choice wins
    assert (k, cv["k=1"]) == (1, pytest.approx(1.0))
    shuffled, _, _ = _context(eval_scores=np.random.default_rng(1).permutation(ctx.eval_scores))
    variant = MixedVariant("pilot-mean/soft", ROUTERS["pilot-mean"](), {"soft": True})
    assert variant.settings(shuffled) == variant.settings(ctx)
    assert np.array_equal(variant.decide(shuffled, emb, rows).weights, variant.decide(ctx, emb, rows).weights)


def test_soft_settings_given_are_kept_and_a_build_choice_is_reused():
    ctx, emb, rows = _context()
    fixed = MixedVariant("x/soft", ROUTERS["pilot-mean"](), {"soft": True, "soft_k": 2, "soft_temperature": 0.5})
    dec = fixed.decide(ctx, emb, rows)
    assert (dec.weights > 0).sum(axis=1).tolist() == [2] * len(rows) and fixed.settings(ctx)["soft_k"] == 2
    reused = MixedVariant("y/soft", ROUTERS["pilot-mean"](), {"soft": True},
                          chosen={"soft_k": 2, "soft_temperature": 0.5})
    assert np.allclose(reused.decide(ctx, emb, rows).weights, dec.weights)


def test_post_retrieval_features_by_hand():
    """top, gap, spread (std over mean of the top scores) and top-10 agreement of a run, from its scores only."""
    ctx, _, _ = _context()
    f = features(ctx, np.array([0, 1]), depth=4)
    s = np.linspace(0.9, 0.5, DEPTH, dtype=np.float32).astype(float)
    assert f[0, 1, 0] == pytest.approx(s[0]) and f[0, 1, 1] == pytest.approx(s[0] - s[1])
    assert f[0, 1, 2] == pytest.approx(s[:4].std() / s[:4].mean())
    assert np.isnan(f[0, 0]).all() and np.isnan(f[0, 3]).all()  # not candidates
    a = np.array([[[1, 2, 3, -1]]]), np.array([[[3, 4, 1, 9]]])
    assert agreement(np.concatenate(a)).tolist() == [[2.0], [2.0]]  # d1 and d3 in both; empty never counts


def test_post_retrieval_routers_pick_the_expert_whose_run_looks_best():
    """Here every run has the same scores, so the unsupervised features tie; the learned router reads the pilot
    labels (each domain's own expert) and sends evaluated queries to their domain's expert."""
    ctx, emb, rows = _context()
    dec = ROUTERS["qpp-learned"]().decide(ctx, emb, rows)
    assert dec.chosen.tolist() == np.where(ctx.eval_dataset == "d1", 1, 2).tolist()
    with pytest.raises(ValueError, match="needs the queries' rows"):
        ROUTERS["qpp-top"]().decide(ctx, emb)


def test_supervised_post_retrieval_never_reads_evaluated_judgements():
    ctx, emb, rows = _context()
    other, _, _ = _context(eval_scores=np.random.default_rng(3).permutation(ctx.eval_scores))
    for name in ("qpp-learned", "qpp-top", "qpp-gap", "qpp-spread", "qpp-agreement"):
        a, b = ROUTERS[name]().decide(ctx, emb, rows), ROUTERS[name]().decide(other, emb, rows)
        assert np.array_equal(a.weights, b.weights), name


def test_what_if_fuses_the_experts_still_on():
    ctx, emb, rows = _context()
    stored = ROUTERS["rrf"]().decide(ctx, emb, rows)
    dec = ROUTERS["rrf"]().what_if_decision(ctx, emb, stored, [2])
    assert dec.weights[:, 1].tolist() == [1.0] * len(rows) and (dec.chosen == 1).all()
    hybrid = ROUTERS["hybrid"]()
    assert hybrid.what_if_decision(ctx, emb, hybrid.decide(ctx, emb, rows), [3]) is None


def test_every_new_strategy_is_listed_with_its_group():
    ctx, _, _ = _context()
    routers = {r.name: r for r in all_strategies(ENCODERS, None, variants=[
        {"name": "pilot-mean/soft", "router": "pilot-mean", "soft": True},
        {"name": "pilot-mean/hybrid", "router": "pilot-mean", "hybrid": True}])}
    groups = {n: r.group_in(ctx) for n, r in routers.items() if r.available(ctx)}
    assert groups["rrf"] == groups["combsum"] == groups["combmnz"] == groups["pilot-mean/soft"] == "mix"
    assert groups["qpp-learned"] == groups["qpp-gap"] == "post-retrieval"
    assert groups["hybrid"] == groups["pilot-mean/hybrid"] == groups["fixed:bm25"] == "lexical"
    assert groups["pilot-mean"] == "choose" and groups["fixed:e1"] == "fixed"
    assert groups["instance-oracle"] == "oracle"


def test_a_mixture_is_labelled_by_its_weights_never_as_one_choice():
    from explorer.analysis import weights_label

    assert weights_label({"base": 0.0, "pilot": 1.0}) == "pilot"
    assert weights_label({"pycode": 0.4, "pilot": 0.6, "base": 0.0}) == "mix: pilot 0.60 · pycode 0.40"
    assert weights_label({"pilot": 0.9995, "pycode": 0.0005}) == "mix: pilot 1.00 · pycode <0.01"


def test_a_variant_of_the_hybrid_keeps_its_per_dataset_choice_in_the_manifest_and_the_what_if():
    """hybrid/per-dataset is a plain variant of the registered hybrid: its settings (the datasets BM25 joins) are
    recorded, and rebuilt with them (as the what-if does, without runs to choose by) it decides the same."""
    from dataclasses import replace

    ctx, emb, rows = _context(lexical_at={"d1": 4, "d2": 0}, hybrid_weight=0.7)
    spec = [{"name": "hybrid/per-dataset", "router": "hybrid", "hybrid_datasets": "pilot"}]
    built = next(r for r in all_strategies(ENCODERS, None, variants=spec) if r.name == "hybrid/per-dataset")
    settings = built.record(ctx)["settings"]
    assert settings["hybrid_on"] == {"d1": False, "d2": True}
    again = next(r for r in all_strategies(ENCODERS, None, variants=spec, chosen={"hybrid/per-dataset": settings})
                 if r.name == "hybrid/per-dataset")
    stored = built.decide(ctx, emb, rows)
    no_runs = replace(ctx, runs=None, pilot_judged=None, _cache={})
    assert np.array_equal(again.what_if_decision(no_runs, emb, stored, []).weights, stored.weights)
