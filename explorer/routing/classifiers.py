"""Learned routers from the paper's baselines, trained on base embeddings of the pilot queries' best-expert labels.

In the what-if view their stored probabilities are masked to the enabled experts rather than retrained.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ..pilot import PILOT_PARAMS
from .base import Router, register


def _logistic(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=500)


@register
class ClassificationHead(Router):
    name = "classification-head"
    description = "one multi-class head on base embeddings predicting the best-expert label"
    family = "baseline"
    whatif = "mask"
    params = PILOT_PARAMS[:1]  # the tie rule labels its training queries

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        labels = ctx.labels
        keep = labels >= 0
        classes = np.unique(labels[keep])
        if len(classes) == 0:
            return out
        if len(classes) == 1:
            out[:, classes[0]] = 1.0
            return out
        model = ctx.cached(self.name, lambda: _logistic().fit(ctx.pilot_emb[keep], labels[keep]))
        out[:, model.classes_] = model.predict_proba(emb)
        return out


@register
class ExpertClassifier(Router):
    name = "expert-classifier"
    description = "one binary classifier per expert (is it among the best for this query?); most confident wins"
    family = "baseline"
    whatif = "mask"

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        cand = np.asarray(ctx.candidates)
        sub = ctx.pilot_scores[:, cand]
        best = np.isclose(sub, sub.max(axis=1, keepdims=True), rtol=0, atol=1e-9)
        informative = best.sum(axis=1) < len(cand)  # all-way ties say nothing about any expert

        def fit_one(j: int):  # a constant when the expert is never (or always) among the best
            y = best[informative, j]
            if 0 < y.sum() < len(y):
                return _logistic().fit(ctx.pilot_emb[informative], y)
            return float(y.mean()) if len(y) else 0.0

        def stacked():  # every fitted classifier as one matrix: one product per query instead of one call per expert
            models = {col: fit_one(j) for j, col in enumerate(cand)}
            fitted = [c for c, m in models.items() if not isinstance(m, float)]
            coef = np.array([models[c].coef_[0] for c in fitted]).reshape(len(fitted), ctx.pilot_emb.shape[1])
            bias = np.array([models[c].intercept_[0] for c in fitted])
            return models, fitted, coef, bias

        models, fitted, coef, bias = ctx.cached(self.name, stacked)
        for col, model in models.items():
            if isinstance(model, float):
                out[:, col] = model
        if fitted:
            out[:, fitted] = expit(emb @ coef.T + bias)  # = predict_proba(emb)[:, 1] of each binary model
        return out
