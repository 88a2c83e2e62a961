"""Mixing instead of choosing: soft routing and lexical hybrids, as variants of any router.

A soft variant (`soft = true`, e.g. `pilot-mean/soft`) keeps the router's scores but, instead of taking the best
expert, mixes the runs of its top `soft_k` experts with weights softmax(score / soft_temperature), fused by CombSUM
over min-max normalised scores. Unset, k and the temperature are chosen on the pilot queries by cross-validation
(as `ties = "auto"` is): the router is trained on half of each dataset's pilot queries and mixes the other half,
and the setting with the best mean held-out label measure wins (k = 1, the hard choice, on a tie). The manifest
keeps the choice and every candidate's score; the what-if and live routing reuse it.

A hybrid variant (`hybrid = true`) fuses whatever the strategy routes to with the lexical experts' runs (BM25):
weight `hybrid_weight` on the lexical side, the rest on the strategy's experts; with `hybrid_datasets = "pilot"`
only on the datasets whose pilot queries gain from it (cross-validated: the router trained on one half of the
pilot queries decides the other half, scored with and without the lexical runs), the strategy alone elsewhere.
"""

from __future__ import annotations

import numpy as np

from ..fusion import Fusion
from ..pilot import pilot_folds
from ..rankmetrics import depth_needed, evaluate, supported
from .base import MIX_PARAMS, VARIANT_MIX, Decision, Router, RoutingContext, Variant, argmax_decision, top2_margin

MIX_FUSION = Fusion("combsum", "min-max")  # how soft and hybrid mixtures fuse the weighted runs
SOFT_K = (1, 2, 3)
SOFT_TEMPERATURES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SOFT_CV_SPLITS = 2  # seeded half/half splits of the pilot queries, both directions (4 folds)
NEGLIGIBLE = 1e-6  # softmax weights below this are dropped, so a near-certain choice stays a hard one


def soft_decision(scores: np.ndarray, candidates: list[int], n_encoders: int, k: int, temperature: float,
                  fusion: Fusion = MIX_FUSION) -> Decision:
    """The top `k` candidates by score, weighted by softmax(score / temperature) over those k (k = 1: the hard
    choice); a query without any finite score goes to the first candidate, as hard routing does."""
    hard = argmax_decision(scores, candidates, n_encoders)
    cand = np.asarray(candidates, dtype=np.int64)
    k = min(int(k), len(cand))
    if k <= 1:
        return Decision(hard.weights, hard.scores, hard.margin, fusion)
    sub = np.nan_to_num(hard.scores[:, cand], nan=-np.inf)
    top = np.argsort(-sub, axis=1, kind="stable")[:, :k]
    z = np.take_along_axis(sub, top, axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        w = np.exp((z - z[:, :1]) / temperature)
    w = np.where(np.isfinite(w), w, 0.0)
    w = np.where(w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300) < NEGLIGIBLE, 0.0, w)
    weights = np.zeros_like(hard.weights)
    np.put_along_axis(weights, cand[top], w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300), axis=1)
    scored = np.isfinite(z[:, 0])
    weights[~scored] = hard.weights[~scored]
    return Decision(weights, hard.scores, top2_margin(sub), fusion)


def with_lexical(dec: Decision, lexical: list[int], weight: float, fusion: Fusion = MIX_FUSION,
                 where: np.ndarray | None = None) -> Decision:
    """`dec` fused with the lexical experts: their share `weight` (split evenly), the decision's weights the rest;
    only on the queries `where` (a boolean mask) when given, the others keep `dec`."""
    on = np.ones(len(dec.weights), bool) if where is None else np.asarray(where, bool)
    weights = dec.weights.copy()
    weights[on] *= 1.0 - weight
    for col in lexical:
        weights[on, col] += weight / len(lexical)
    return Decision(weights, dec.scores, dec.margin, fusion)


def hybrid_rows(ctx: RoutingContext, rows: np.ndarray | None, chosen: dict[str, bool] | None) -> np.ndarray | None:
    """Which decided queries take the lexical runs: all (None) unless a per-dataset choice is given and the
    queries' rows (hence datasets) are known."""
    if chosen is None or rows is None or ctx.row_dataset is None:
        return None
    return np.array([bool(chosen.get(str(d), False)) for d in ctx.row_dataset[np.asarray(rows)]], dtype=bool)


def choose_hybrid_datasets(ctx: RoutingContext, decide, weight: float
                           ) -> tuple[dict[str, bool], dict[str, list[float]]]:
    """Per dataset, whether the lexical runs help: `decide(sub_context, emb, rows)` (the strategy trained on one
    half of each dataset's pilot queries) decides the other half, which is scored with and without the lexical
    runs; a dataset takes them when its mean held-out label measure is higher with them. Pilot queries only.
    Returns ({dataset: with lexical}, {dataset: [without, with]})."""
    if ctx.runs is None or ctx.pilot_judged is None or not supported(ctx.label_measure) or len(ctx.pilot_emb) < 4:
        return {}, {}
    sums: dict[str, np.ndarray] = {}
    for train, test in pilot_folds(ctx.pilot_dataset, int(ctx.param("seed")), SOFT_CV_SPLITS):
        rows = ctx.pilot_rows[test]
        dec = decide(ctx.pilot_subset(train), ctx.pilot_emb[test], rows)
        plain = decision_values(ctx, dec, rows, ctx.pilot_scores[test])
        mixed = decision_values(ctx, with_lexical(dec, ctx.lexical, weight), rows, ctx.pilot_scores[test])
        for ds in dict.fromkeys(ctx.pilot_dataset[test].tolist()):
            mine = ctx.pilot_dataset[test] == ds
            sums[ds] = sums.get(ds, np.zeros(3)) + [plain[mine].sum(), mixed[mine].sum(), mine.sum()]
    cv = {ds: [float(v[0] / v[2]), float(v[1] / v[2])] for ds, v in sums.items()}
    return {ds: bool(v[1] > v[0] + 1e-12) for ds, v in cv.items()}, cv


def decision_values(ctx: RoutingContext, dec: Decision, rows: np.ndarray, hard_values: np.ndarray) -> np.ndarray:
    """The label measure of each query under `dec`: a hard choice reads `hard_values` (n, encoders), the stored
    per-encoder scores; a mixture's fused run is scored on the pilot judgements (never an evaluated query's)."""
    chosen = dec.chosen
    out = np.where(chosen >= 0, hard_values[np.arange(len(rows)), np.maximum(chosen, 0)], 0.0)
    mixed = np.flatnonzero(chosen < 0)
    if len(mixed):
        need = depth_needed(ctx.label_measure, ctx.depth)
        docs, _ = ctx.runs.run(dec.weights[mixed], dec.fusion, need, rows[mixed])
        grades = ctx.pilot_judged.grades(rows[mixed], docs)
        out[mixed] = evaluate(ctx.label_measure, grades, ctx.pilot_judged, rows[mixed])
    return out


def choose_soft(inner: Router, ctx: RoutingContext) -> tuple[tuple[int, float], dict[str, float]]:
    """(k, temperature) for a soft variant of `inner`: each candidate setting's mean held-out label measure over
    pilot folds (the router trained on one half of each dataset's pilot queries, the other half mixed); a setting
    given in the config is kept. Reads pilot queries only. Returns the choice and every candidate's score."""
    ks = (int(ctx.param("soft_k")),) if ctx.param("soft_k") else SOFT_K
    temps = (float(ctx.param("soft_temperature")),) if ctx.param("soft_temperature") else \
        SOFT_TEMPERATURES
    grid = [(k, t) for k in ks for t in (temps if k > 1 else temps[:1])]
    if len(grid) == 1 or ctx.runs is None or ctx.pilot_judged is None or not supported(ctx.label_measure) \
            or len(ctx.pilot_emb) < 4:
        return grid[0], {}
    totals = {g: [] for g in grid}
    for train, test in pilot_folds(ctx.pilot_dataset, int(ctx.param("seed")), SOFT_CV_SPLITS):
        sub = ctx.pilot_subset(train)
        rows = ctx.pilot_rows[test]
        scores = inner.scores(sub, ctx.pilot_emb[test], rows)
        for k, t in grid:
            dec = soft_decision(scores, sub.candidates, len(ctx.encoders), k, t)
            totals[(k, t)].append(decision_values(ctx, dec, rows, ctx.pilot_scores[test]))
    result = {_grid_name(g): float(np.mean(np.concatenate(v))) for g, v in totals.items()}
    best = max(result.values())
    return next(g for g in grid if np.isclose(result[_grid_name(g)], best, rtol=0, atol=1e-12)), result


def _grid_name(g: tuple[int, float]) -> str:
    return "k=1" if g[0] == 1 else f"k={g[0]} T={g[1]:g}"


def _masked(inner: Router) -> bool:
    """The router's what-if masks its stored scores (they do not depend on the other experts)."""
    return getattr(type(inner), "what_if", None) is Router.masked_what_if


class MixedVariant(Variant):
    """A variant that mixes: soft (the top experts' runs, softmax-weighted), hybrid (with the lexical experts), or
    both. `chosen` holds settings a build chose (from the manifest), reused instead of choosing again."""

    extra_params = (*VARIANT_MIX, *MIX_PARAMS)

    def __init__(self, name: str, inner: Router, overrides: dict, chosen: dict | None = None):
        super().__init__(name, inner, overrides)
        self.soft, self.hybrid = bool(overrides.get("soft")), bool(overrides.get("hybrid"))
        self.chosen = dict(chosen or {})
        self.group = "lexical" if self.hybrid else "mix" if self.soft else inner.group
        self.scores_experts = False
        words = [w for w, on in (("the top experts' runs mixed, softmax weights", self.soft),
                                 ("fused with the lexical experts' runs", self.hybrid)) if on]
        rest = ", ".join(f"{k} = {v}" for k, v in overrides.items() if k not in ("soft", "hybrid"))
        self.description = f"{inner.name}: {' and '.join(words)}" + (f" ({rest})" if rest else "")

    def available(self, ctx: RoutingContext) -> bool:
        c = self._context(ctx)
        return (self.inner.available(c) and (not self.hybrid or bool(c.lexical))
                and (not self.soft or self.inner.scores_experts))

    def group_in(self, ctx: RoutingContext) -> str:
        return self.group

    def fusion(self, ctx: RoutingContext) -> Fusion | None:
        return MIX_FUSION

    def _soft_choice(self, c: RoutingContext) -> tuple[tuple[int, float], dict[str, float]]:
        """(k, temperature) and the cross-validation scores that chose them: the build's (from the manifest) when
        this variant was made with them, else chosen now on the pilot queries (once per context)."""
        if "soft_k" in self.chosen:
            return ((int(self.chosen["soft_k"]), float(self.chosen["soft_temperature"])),
                    dict(self.chosen.get("soft_cv", {})))
        return c.cached(("soft", self.name), lambda: choose_soft(self.inner, c))

    def _hybrid_choice(self, c: RoutingContext) -> tuple[dict[str, bool] | None, dict[str, list[float]]]:
        """With hybrid_datasets = "pilot": per dataset, whether the lexical runs join (the build's choice, or chosen
        now on the pilot queries, the soft setting held fixed); None: on every dataset."""
        if not self.hybrid or c.param("hybrid_datasets") != "pilot":
            return None, {}
        if "hybrid_on" in self.chosen:
            return dict(self.chosen["hybrid_on"]), dict(self.chosen.get("hybrid_cv", {}))
        return c.cached(("hybrid", self.name), lambda: choose_hybrid_datasets(
            c, lambda sub, emb, rows: self._plain(sub, emb, rows, self._soft_choice(c)[0] if self.soft else None),
            float(c.param("hybrid_weight"))))

    def settings(self, ctx: RoutingContext) -> dict:
        c = self._context(ctx)
        out = {"hybrid_weight": float(c.param("hybrid_weight"))} if self.hybrid else {}
        if self.soft:
            (k, t), cv = self._soft_choice(c)
            out.update({"soft_k": k, "soft_temperature": t, **({"soft_cv": cv} if cv else {})})
        on, cv = self._hybrid_choice(c)
        if on is not None:
            out.update({"hybrid_on": on, "hybrid_cv": cv})
        return out

    def _plain(self, c: RoutingContext, emb: np.ndarray, rows, soft: tuple[int, float] | None,
               scores: np.ndarray | None = None, candidates: list[int] | None = None) -> Decision:
        """The decision before any lexical run joins: soft (top-k softmax of the scores) or the router's own."""
        if soft is None:
            return self.inner.decide(c, emb, rows) if scores is None else \
                argmax_decision(scores, c.candidates if candidates is None else candidates, len(c.encoders))
        scores = self.inner.scores(c, emb, rows) if scores is None else scores
        return soft_decision(scores, c.candidates if candidates is None else candidates, len(c.encoders), *soft)

    def _mix(self, c: RoutingContext, dec: Decision, rows) -> Decision:
        if not self.hybrid:
            return dec
        on, _ = self._hybrid_choice(c)
        return with_lexical(dec, c.lexical, float(c.param("hybrid_weight")), where=hybrid_rows(c, rows, on))

    def decide(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        c = self._context(ctx)
        soft = self._soft_choice(c)[0] if self.soft else None
        return self._mix(c, self._plain(c, emb, rows, soft), rows)

    def what_if_decision(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        """The inner router's scores again (its stored ones, masked, where its what-if masks), mixed with the
        build's settings among the experts still on; None when a hybrid has no lexical expert left."""
        c = self._context(ctx)
        if self.hybrid and not [col for col in c.lexical if col not in off]:
            return None
        if _masked(self.inner):
            scores = stored.scores.copy()
            scores[:, off] = np.nan
        else:
            scores = self.inner.scores(c, emb, c.eval_rows)
        enabled = [col for col in c.candidates if col not in off]
        soft = self._soft_choice(c)[0] if self.soft else None
        return self._mix(c, self._plain(c, emb, c.eval_rows, soft, scores, enabled), c.eval_rows)


def make_variant(name: str, inner: Router, overrides: dict, chosen: dict | None = None) -> Variant:
    """A MixedVariant when the overrides turn a choice into a mixture (soft, hybrid), else a plain Variant whose
    router keeps the settings its build chose (`chosen`, e.g. a per-dataset hybrid's datasets)."""
    if any(overrides.get(p.name) for p in VARIANT_MIX):
        return MixedVariant(name, inner, overrides, chosen)
    inner.chosen = chosen
    return Variant(name, inner, overrides)
