"""RouterRetriever: route by similarity to the pilot embedding library."""

from __future__ import annotations

import numpy as np

from ..pilot import PILOT_PARAMS
from .base import Router, RoutingContext, register


class _PilotRouter(Router):
    family = "RouterRetriever"
    params = PILOT_PARAMS

    def _per_expert(self, ctx: RoutingContext, emb: np.ndarray, reduce) -> np.ndarray:
        lib = ctx.library
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        if len(lib) == 0:
            return out
        sim = emb @ lib.centroids.T
        for col in np.unique(lib.expert):
            out[:, col] = reduce(sim[:, lib.expert == col], axis=1)
        return out


@register
class PilotMean(_PilotRouter):
    name = "pilot-mean"
    description = "RouterRetriever: mean similarity to each expert's pilot centroids, best expert (the paper)"

    def score(self, ctx, emb):
        return self._per_expert(ctx, emb, np.mean)


@register
class PilotNearest(_PilotRouter):
    name = "pilot-nearest"
    description = "RouterRetriever: the expert of the single most similar pilot centroid (the released code)"

    def score(self, ctx, emb):
        return self._per_expert(ctx, emb, np.max)
