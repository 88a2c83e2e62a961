"""Rank fusion over the candidates: every query gets every candidate's run, fused (RRF, CombSUM, CombMNZ), and the
base model fused with the lexical experts (a hybrid). Nothing is chosen: these are the baselines a mixture of
retrievers is measured against ("Mixture of Retrievers" fuses BM25 and dense runs). Decisions are uniform weights
over the fused experts, so a mixture is never shown as a single choice.
"""

from __future__ import annotations

import numpy as np

from ..fusion import NORMS, Fusion
from ..settings import Param
from .base import MIX_PARAMS, Decision, Router, RoutingContext, register
from .mixing import MIX_FUSION, choose_hybrid_datasets, hybrid_rows, with_lexical

RRF_K = Param("rrf_k", float, 60.0, "RRF: k in 1 / (k + rank)", min=0, max=100_000)
FUSION_NORM = Param("fusion_norm", str, "min-max", "CombSUM / CombMNZ: how each run's scores are normalised before "
                    "they are summed", choices=NORMS)
HYBRID_WEIGHT = next(p for p in MIX_PARAMS if p.name == "hybrid_weight")
HYBRID_DATASETS = next(p for p in MIX_PARAMS if p.name == "hybrid_datasets")


def uniform(n: int, n_encoders: int, cols: list[int]) -> np.ndarray:
    weights = np.zeros((n, n_encoders))
    weights[:, cols] = 1.0 / len(cols)
    return weights


class _RankFusion(Router):
    family = "fusion"
    group = "mix"
    scores_experts = False
    method = ""

    def available(self, ctx: RoutingContext) -> bool:
        return len(self.columns(ctx)) >= 1  # one run left (the what-if) fuses to itself

    def fusion(self, ctx: RoutingContext) -> Fusion:
        return Fusion(self.method, str(ctx.param("fusion_norm")),
                      float(ctx.param("rrf_k")))

    def decide(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        cols = self.columns(ctx)
        weights = uniform(len(emb), len(ctx.encoders), cols)
        scores = np.where(weights > 0, weights, np.nan)
        return Decision(weights, scores, np.full(len(emb), np.nan), self.fusion(ctx))

    def what_if_decision(self, ctx, emb, stored, off):
        """The experts still on, fused again."""
        cols = [c for c in self.columns(ctx) if c not in off]
        if not cols:
            return None
        weights = uniform(len(emb), len(ctx.encoders), cols)
        return Decision(weights, np.where(weights > 0, weights, np.nan), np.full(len(emb), np.nan), self.fusion(ctx))


@register
class RRF(_RankFusion):
    name = "rrf"
    description = "reciprocal rank fusion of every candidate's run: sum of 1 / (k + rank)"
    method = "rrf"
    params = (RRF_K,)


@register
class CombSum(_RankFusion):
    name = "combsum"
    description = "CombSUM: every candidate's run, scores normalised per query (min-max or z-score), summed"
    method = "combsum"
    params = (FUSION_NORM,)


@register
class CombMNZ(_RankFusion):
    name = "combmnz"
    description = "CombMNZ: CombSUM times the number of candidates' runs that hold the document"
    method = "combmnz"
    params = (FUSION_NORM,)


@register
class Hybrid(_RankFusion):
    name = "hybrid"
    description = "the base model's run fused with the lexical experts' (BM25): CombSUM over min-max scores"
    family = "lexical"
    group = "lexical"
    method = "combsum"
    params = (HYBRID_WEIGHT, HYBRID_DATASETS)

    def columns(self, ctx: RoutingContext) -> list[int]:
        return [0, *ctx.lexical] if ctx.lexical else []

    def fusion(self, ctx: RoutingContext) -> Fusion:
        return MIX_FUSION

    def _choice(self, ctx: RoutingContext):
        """hybrid_datasets = "pilot": the datasets whose pilot queries gain from BM25 over the base model alone."""
        if ctx.param("hybrid_datasets") != "pilot":
            return None, {}
        if self.chosen and "hybrid_on" in self.chosen:  # the build's choice (the what-if has no runs to choose by)
            return dict(self.chosen["hybrid_on"]), dict(self.chosen.get("hybrid_cv", {}))
        return ctx.cached(("hybrid", self.name), lambda: choose_hybrid_datasets(
            ctx, lambda sub, emb, rows: _base(len(emb), len(ctx.encoders)), self._weight(ctx)))

    def _weight(self, ctx: RoutingContext) -> float:
        return float(ctx.param("hybrid_weight"))

    def settings(self, ctx: RoutingContext) -> dict:
        on, cv = self._choice(ctx)
        return {"hybrid_weight": self._weight(ctx), **({"hybrid_on": on, "hybrid_cv": cv} if on is not None else {})}

    def decide(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        return self._with(ctx, len(emb), ctx.lexical, rows, self._choice(ctx)[0])

    def what_if_decision(self, ctx, emb, stored, off):
        lexical = [c for c in ctx.lexical if c not in off]
        return self._with(ctx, len(emb), lexical, ctx.eval_rows, self._choice(ctx)[0]) if lexical else None

    def _with(self, ctx: RoutingContext, n: int, lexical: list[int], rows, on) -> Decision:
        dec = with_lexical(_base(n, len(ctx.encoders)), lexical, self._weight(ctx), MIX_FUSION,
                           hybrid_rows(ctx, rows, on))
        dec.scores = np.where(dec.weights > 0, dec.weights, np.nan)
        return dec


def _base(n: int, n_encoders: int) -> Decision:
    base = uniform(n, n_encoders, [0])
    return Decision(base, base.copy(), np.full(n, np.nan))
