"""DAR: route by similarity to each expert's prototype; merge the top-2 adapters when the margin is small."""

from __future__ import annotations

import numpy as np

from ..pilot import PILOT_PARAMS
from ..capabilities import MERGE_WEIGHTS
from ..settings import Param
from .base import Decision, Router, argmax_decision, register


def prototypes(ctx) -> dict[int, np.ndarray]:
    """Each candidate's prototype: the mean base embedding of its own data (its datasets' pilot queries), or of the
    pilot queries it is best on when it has no dataset of its own (an adapter brought from elsewhere)."""
    out = {}
    for col in ctx.candidates:
        rows = np.isin(ctx.pilot_dataset, ctx.expert_datasets.get(col, []))
        if not rows.any():
            rows = ctx.labels == col
        if rows.any():
            centre = ctx.pilot_emb[rows].mean(axis=0)
            out[col] = centre / max(np.linalg.norm(centre), 1e-12)
    return out


@register
class Prototype(Router):
    name = "prototype"
    description = "DAR: the expert whose prototype (mean base embedding of its data) is most similar"
    family = "DAR"
    what_if = Router.masked_what_if  # prototypes do not depend on which other experts exist
    params = PILOT_PARAMS[:1]  # an adapter without data of its own takes the pilot queries it is labelled best on

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        for col, proto in ctx.cached("prototypes", lambda: prototypes(ctx)).items():
            out[:, col] = emb @ proto
        return out


@register
class PrototypeMerge(Prototype):
    name = "prototype-merge"
    description = "DAR: like prototype, but below margin γ merge the top-2 LoRA adapters, softmax(sim/τ) weights"
    what_if = Router.masked_what_if
    merges_adapters = True
    params = (*Prototype.params,
              Param("gamma", float, 0.05, "DAR: merge the top-2 adapters when their margin is below γ", min=0, max=2),
              Param("tau", float, 0.05, "DAR: softmax temperature τ of the merge weights", above=0, max=100))

    def decide(self, ctx, emb, rows=None):
        hard = argmax_decision(self.score(ctx, emb), ctx.candidates, len(ctx.encoders))
        gamma, tau = float(ctx.param("gamma")), float(ctx.param("tau"))
        weights = hard.weights.copy()
        scores = np.nan_to_num(hard.scores, nan=-np.inf)
        for i in np.flatnonzero(hard.margin < gamma):
            top2 = np.argsort(-scores[i])[:2]
            if not all(MERGE_WEIGHTS in ctx.expert_capabilities.get(int(c), ()) for c in top2):
                continue  # DAR merges weight deltas; an expert that cannot be merged (ERA's) keeps the top one
            z = scores[i, top2] / tau
            w = np.exp(z - z.max())
            weights[i] = 0.0
            weights[i, top2] = w / w.sum()
        return Decision(weights, hard.scores, hard.margin)
