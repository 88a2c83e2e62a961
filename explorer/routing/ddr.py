"""DDR: a learned softmax router over the prefix modules, mixing their prefixes (soft) or the top k of them.

The router is a linear layer and a softmax on the base query embedding (multinomial logistic regression), trained
on the union of the training data: each pilot query's label is the prefix module of its own dataset. It routes
only among experts that mix by prefix (capability MIX_PREFIXES), whatever the other candidates are.
"""

from __future__ import annotations

import numpy as np

from ..capabilities import MIX_PREFIXES
from ..settings import Param
from .base import Decision, Router, RoutingContext, register, top2_margin
from .classifiers import _logistic


def prefix_modules(ctx: RoutingContext) -> list[int]:
    return ctx.able(MIX_PREFIXES)


class _DDR(Router):
    family = "DDR"
    group = "mix"
    merges_adapters = True
    what_if = Router.masked_what_if
    keeps_top_k = False  # keep only the ddr_top_k largest weights

    def available(self, ctx: RoutingContext) -> bool:
        return len(prefix_modules(ctx)) >= 2

    def columns(self, ctx: RoutingContext) -> list[int]:
        return prefix_modules(ctx)

    def _router(self, ctx: RoutingContext):
        def fit():
            modules = prefix_modules(ctx)
            module_of = {d: c for c in modules for d in ctx.expert_datasets.get(c, [])}
            labels = np.array([module_of.get(str(d), -1) for d in ctx.pilot_dataset])
            keep = labels >= 0
            if len(np.unique(labels[keep])) < 2:
                return None
            return _logistic().fit(ctx.pilot_emb[keep], labels[keep])
        return ctx.cached("ddr-router", fit)

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        model = self._router(ctx)
        if model is not None:
            out[:, model.classes_] = model.predict_proba(emb)
        return out

    def decide(self, ctx, emb, rows=None):
        scores = self.score(ctx, emb)
        probs = np.nan_to_num(scores, nan=0.0)
        if self.keeps_top_k:
            k = int(ctx.param("ddr_top_k"))
            cutoff = -np.sort(-probs, axis=1)[:, k - 1:k]
            probs = np.where(probs >= cutoff, probs, 0.0)
        weights = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        modules = prefix_modules(ctx)
        return Decision(weights, scores, top2_margin(np.nan_to_num(scores[:, modules], nan=-np.inf)))


@register
class DDRSoft(_DDR):
    name = "ddr-soft"
    description = "DDR: softmax router on the base embedding mixing every prefix module's prefix by its weight"


@register
class DDRTopK(_DDR):
    name = "ddr-topk"
    description = "DDR: the same router keeping the top k prefix modules (ddr_top_k), weights renormalised"
    keeps_top_k = True
    params = (Param("ddr_top_k", int, 2, "DDR top-k: prefix modules kept per query", min=1, max=64),)
