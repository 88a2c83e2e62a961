"""Oracles: upper bounds that read the evaluated queries' own scores; not deployable routers."""

from __future__ import annotations

import numpy as np

from .base import Router, register


@register
class InstanceOracle(Router):
    name = "instance-oracle"
    description = "upper bound: the best expert for each query (by its own label-measure score)"
    family = "oracle"
    group = "oracle"
    uses_oracle = True
    what_if = Router.masked_what_if

    def score(self, ctx, emb):
        return ctx.eval_scores.astype(float).copy()


@register
class DatasetOracle(Router):
    name = "dataset-oracle"
    description = "upper bound: the best single expert for each dataset (by its mean label-measure score)"
    family = "oracle"
    group = "oracle"
    uses_oracle = True
    what_if = Router.masked_what_if

    def score(self, ctx, emb):
        out = np.empty_like(ctx.eval_scores, dtype=float)
        for ds in np.unique(ctx.eval_dataset):
            rows = ctx.eval_dataset == ds
            out[rows] = ctx.eval_scores[rows].mean(axis=0)
        return out
