"""Routing strategies on synthetic contexts where the right decision is known."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.capabilities import MERGE_WEIGHTS, MIX_PREFIXES, OWN_ENCODER, TRAINS_ITSELF
from explorer.routing import ROUTERS, RoutingContext, all_strategies

ENCODERS = ["base", "e1", "e2", "e3", "multi"]


def _context(**params) -> RoutingContext:
    """Three domains along three axes; expert k is best on domain k's pilot queries."""
    rng = np.random.default_rng(0)
    axes = np.eye(3, 8, dtype=np.float32)
    emb, ds, scores = [], [], []
    for k in range(3):
        pts = axes[k] + 0.05 * rng.normal(size=(20, 8))
        emb.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        ds += [f"d{k + 1}"] * 20
        s = np.full((20, 5), 0.2)
        s[:, k + 1] = 0.8
        scores.append(s)
    eval_scores = np.array([[0.1, 0.9, 0.2, 0.3, 0.5], [0.1, 0.2, 0.3, 0.9, 0.5]])
    return RoutingContext(
        encoders=ENCODERS, candidates=[1, 2, 3], own_expert={"d1": 1, "d2": 2, "d3": 3},
        pilot_emb=np.concatenate(emb), pilot_dataset=np.array(ds, dtype=object), pilot_scores=np.concatenate(scores),
        eval_dataset=np.array(["d1", "d3"], dtype=object), eval_scores=eval_scores,
        expert_datasets={1: ["d1"], 2: ["d2"], 3: ["d3"]},
        expert_capabilities={c: frozenset({MERGE_WEIGHTS}) for c in (1, 2, 3, 4)}, params=params)


QUERIES = np.array([[1, 0.1, 0, 0, 0, 0, 0, 0], [0, 0.1, 1, 0, 0, 0, 0, 0]], dtype=np.float32)
QUERIES /= np.linalg.norm(QUERIES, axis=1, keepdims=True)


def test_registry_has_every_strategy_of_the_paper_and_dar():
    assert {"pilot-mean", "pilot-nearest", "dataset-router", "classification-head", "expert-classifier",
            "prototype", "prototype-merge", "instance-oracle", "dataset-oracle"} <= set(ROUTERS)
    names = [r.name for r in all_strategies(ENCODERS, "multi")]
    assert {"base", "multi-task", "fixed:e1", "fixed:e2", "fixed:e3"} <= set(names)
    assert "fixed:multi" not in names
    assert all(r.description for r in all_strategies(ENCODERS, "multi"))


@pytest.mark.parametrize("name", ["pilot-mean", "pilot-nearest", "dataset-router", "classification-head",
                                  "expert-classifier", "prototype", "prototype-merge"])
def test_routers_send_queries_to_their_domain_expert(name):
    ctx = _context()
    dec = ROUTERS[name]().decide(ctx, QUERIES)
    assert dec.chosen.tolist() == [1, 3]
    assert np.allclose(dec.weights.sum(axis=1), 1.0)
    assert np.isnan(dec.scores[:, 0]).all() and np.isnan(dec.scores[:, 4]).all()  # not candidates
    assert (dec.margin > 0).all()


def test_pilot_mean_scores_are_mean_similarity_to_each_experts_pilots():
    ctx = _context()
    dec = ROUTERS["pilot-mean"]().decide(ctx, QUERIES)
    lib = ctx.library
    expected = (QUERIES @ lib.centroids[lib.expert == 2].T).mean(axis=1)
    assert np.allclose(dec.scores[:, 2], expected)


def test_oracles_read_the_evaluated_scores():
    ctx = _context()
    assert ROUTERS["instance-oracle"]().decide(ctx, QUERIES).chosen.tolist() == [1, 3]
    assert ROUTERS["instance-oracle"].uses_oracle


def test_removing_an_expert_reroutes_to_the_remaining_ones():
    ctx = _context()
    ctx.candidates = [2, 3]
    dec = ROUTERS["pilot-mean"]().decide(ctx, QUERIES)
    assert 1 not in dec.chosen.tolist()


def test_prototype_merge_mixes_the_top_two_below_the_margin():
    ctx = _context(gamma=0.5, tau=0.05)
    ambiguous = np.array([[1, 0.95, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    ambiguous /= np.linalg.norm(ambiguous)
    dec = ROUTERS["prototype-merge"]().decide(ctx, ambiguous)
    w = dec.weights[0]
    assert dec.chosen[0] == -1 and (w[[1, 2]] > 0).all() and w[[0, 3, 4]].sum() == 0
    sims = dec.scores[0, [1, 2]]
    z = np.exp(sims / 0.05)
    assert np.allclose(w[[1, 2]], z / z.sum())
    clear = ROUTERS["prototype-merge"]().decide(_context(gamma=0.0), ambiguous)
    assert clear.chosen[0] in (1, 2)


def test_prototype_merge_never_merges_an_expert_that_cannot_merge_weights():
    """An ERA query adapter has its own encoder: no weights to merge, so an ambiguous query takes the top one."""
    ctx = _context(gamma=0.5, tau=0.05)
    ctx.expert_capabilities = {1: frozenset({MERGE_WEIGHTS}), 2: frozenset({OWN_ENCODER, TRAINS_ITSELF}),
                               3: frozenset({MERGE_WEIGHTS})}
    ambiguous = np.array([[1, 0.95, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    dec = ROUTERS["prototype-merge"]().decide(ctx, ambiguous / np.linalg.norm(ambiguous))
    assert dec.chosen[0] == 1 and dec.weights[0, 1] == 1.0


def test_fixed_strategies_ignore_the_query():
    ctx = _context()
    for r in all_strategies(ENCODERS, "multi", ["base", "multi-task", "fixed:e2"]):
        dec = r.decide(ctx, QUERIES)
        assert set(dec.chosen.tolist()) == {ENCODERS.index(r.column_name)}


def test_unknown_strategy_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*pilot-mean"):
        all_strategies(ENCODERS, None, ["pilot-median"])


def test_a_variant_overrides_parameters_under_its_own_name():
    from explorer.routing import Variant

    ctx = _context()
    ctx.pilot_scores[:30] = 0.5  # the first half of the pilot queries tie across every expert
    variants = [{"name": "pilot-mean/skip-all", "router": "pilot-mean", "ties": "skip-all"}]
    names = {r.name: r for r in all_strategies(ENCODERS, "multi", None, variants)}
    variant = names["pilot-mean/skip-all"]
    assert isinstance(variant, Variant) and variant.description == "pilot-mean with ties = skip-all"
    first = ROUTERS["pilot-mean"]().decide(ctx, QUERIES)
    skipped = variant.decide(ctx, QUERIES)
    assert ctx.params.get("ties", "first") == "first"  # the shared context is untouched
    assert (ctx.labels[:30] == 1).all() and (ctx.with_params({"ties": "skip-all"}).labels[:30] == -1).all()
    assert not np.allclose(np.nan_to_num(first.scores), np.nan_to_num(skipped.scores))
    with pytest.raises(ValueError, match="cannot be overridden"):
        all_strategies(ENCODERS, None, None, [{"name": "x", "router": "pilot-mean", "encoders": []}])
    with pytest.raises(ValueError, match="not registered"):
        all_strategies(ENCODERS, None, None, [{"name": "x", "router": "pilot-median"}])


def test_ddr_routers_mix_the_prefix_modules_by_a_learned_softmax():
    ctx = _context()
    assert not ROUTERS["ddr-soft"]().available(ctx)  # no prefix modules: DDR has nothing to route over
    ctx.expert_capabilities = {1: frozenset({MIX_PREFIXES}), 2: frozenset({MIX_PREFIXES}),
                               3: frozenset({MIX_PREFIXES}), 4: frozenset({MERGE_WEIGHTS})}
    soft = ROUTERS["ddr-soft"]().decide(ctx, QUERIES)
    assert np.allclose(soft.weights.sum(axis=1), 1) and np.all(soft.weights[:, [0, 4]] == 0)
    assert soft.weights.argmax(axis=1).tolist() == [1, 3]  # each query's own domain module weighs most
    assert (soft.chosen == -1).all()  # a mixture, not a hard choice
    top = ROUTERS["ddr-topk"]().decide(ctx, QUERIES)
    assert ((top.weights > 0).sum(axis=1) == 2).all() and np.allclose(top.weights.sum(axis=1), 1)
    one = ROUTERS["ddr-topk"]().decide(ctx.with_params({"ddr_top_k": 1}), QUERIES)
    assert one.chosen.tolist() == [1, 3]


def test_expert_classifier_scores_are_each_binary_models_probability():
    ctx = _context()
    scores = ROUTERS["expert-classifier"]().score(ctx, QUERIES)
    models, fitted, _, _ = ctx.cached("expert-classifier", None)
    assert fitted
    for col in fitted:
        assert np.allclose(scores[:, col], models[col].predict_proba(QUERIES)[:, 1], atol=1e-12)


def test_expert_classifier_without_any_fitted_model_scores_constants():
    """One expert best on every pilot query (a one-expert build): no binary model can be fitted, and routing still
    works from the constant rates."""
    ctx = _context()
    ctx.pilot_scores = np.tile([0.1, 0.9, 0.2, 0.3, 0.5], (len(ctx.pilot_emb), 1))
    dec = ROUTERS["expert-classifier"]().decide(ctx, QUERIES)
    assert (dec.chosen == 1).all()
    assert np.allclose(dec.scores[:, [1, 2, 3]], [[1.0, 0.0, 0.0]] * len(QUERIES))
