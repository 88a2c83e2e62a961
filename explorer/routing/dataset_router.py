"""DatasetRouter baseline: the nearest sampled training query's source dataset picks its dataset's expert."""

from __future__ import annotations

import numpy as np

from ..settings import Param
from .base import Router, register


@register
class DatasetRouter(Router):
    name = "dataset-router"
    description = "nearest of 100 sampled training queries per dataset; route to that dataset's own expert"
    family = "baseline"
    params = (Param("dataset_router_samples", int, 100, "DatasetRouter: training queries sampled per dataset",
                    min=1, max=1_000_000),)

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        rng = np.random.default_rng(ctx.param("seed"))
        per_dataset = int(ctx.param("dataset_router_samples"))
        groups = []  # (expert column, sampled pilot rows), sampled the same way whichever experts are enabled
        for ds, col in sorted(ctx.own_expert.items()):
            rows = np.flatnonzero(ctx.pilot_dataset == ds)
            if len(rows) > per_dataset:
                rows = np.sort(rng.choice(rows, per_dataset, replace=False))
            if col in ctx.candidates and len(rows):
                groups.append((col, rows))
        if not groups:
            return out
        sims = emb @ ctx.pilot_emb[np.concatenate([rows for _, rows in groups])].T  # one product for all datasets
        starts = np.cumsum([0] + [len(rows) for _, rows in groups[:-1]])
        nearest = np.maximum.reduceat(sims, starts, axis=1)
        for j, (col, _) in enumerate(groups):
            out[:, col] = np.fmax(out[:, col], nearest[:, j])
        return out
