"""DatasetRouter baseline: the nearest sampled training query's source dataset picks its dataset's expert."""

from __future__ import annotations

import numpy as np

from .base import Router, register


@register
class DatasetRouter(Router):
    name = "dataset-router"
    description = "nearest of 100 sampled training queries per dataset; route to that dataset's own expert"
    family = "baseline"

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        rng = np.random.default_rng(ctx.param("seed", 0))
        per_dataset = int(ctx.param("dataset_router_samples", 100))
        for ds, col in ctx.own_expert.items():
            if col not in ctx.candidates:
                continue
            rows = np.flatnonzero(ctx.pilot_dataset == ds)
            if len(rows) > per_dataset:
                rows = np.sort(rng.choice(rows, per_dataset, replace=False))
            if len(rows):
                best = np.max(emb @ ctx.pilot_emb[rows].T, axis=1)
                out[:, col] = np.fmax(out[:, col], best)
        return out
