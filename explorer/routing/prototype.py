"""DAR: route by similarity to each expert's prototype; merge the top-2 adapters when the margin is small."""

from __future__ import annotations

import numpy as np

from ..pilot import PILOT_PARAMS
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
    whatif = "mask"  # prototypes do not depend on which other experts exist
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
    whatif = "mask"
    params = (*Prototype.params,
              Param("gamma", float, 0.05, "DAR: merge the top-2 adapters when their margin is below γ", min=0, max=2),
              Param("tau", float, 0.05, "DAR: softmax temperature τ of the merge weights", above=0, max=100))

    def decide(self, ctx, emb):
        hard = argmax_decision(self.score(ctx, emb), ctx.candidates, len(ctx.encoders))
        gamma, tau = float(ctx.param("gamma", 0.05)), float(ctx.param("tau", 0.05))
        weights = hard.weights.copy()
        scores = np.nan_to_num(hard.scores, nan=-np.inf)
        for i in np.flatnonzero(hard.margin < gamma):
            top2 = np.argsort(-scores[i])[:2]
            if any(ctx.expert_kinds.get(int(c), "lora") != "lora" for c in top2):
                continue  # DAR merges LoRA weights; an ERA query adapter cannot be merged, so keep the top one
            z = scores[i, top2] / tau
            w = np.exp(z - z.max())
            weights[i] = 0.0
            weights[i, top2] = w / w.sum()
        return Decision(weights, hard.scores, hard.margin)
