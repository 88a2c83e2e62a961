"""Learned routers from the paper's baselines, trained on base embeddings of the pilot queries' best-expert labels.

Labels are balanced as the paper does, by down-sampling every label to the smallest label's count: without it the
label that tie-breaking favours wins everywhere and the head equals one fixed expert. In the what-if view their
stored probabilities are masked to the enabled experts rather than retrained.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ..pilot import PILOT_PARAMS
from ..settings import Param
from .base import Router, register

BALANCE = Param("balance_labels", bool, True, "classifier baselines: down-sample every label to the smallest "
                "label's count (the paper; false: train on every labelled pilot query)")


def balanced(rows: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """`rows` down-sampled so that every value of `y` (aligned with `rows`) keeps as many as the rarest one
    (seeded; order kept)."""
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        return rows
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == v), counts.min(), replace=False) for v in values])
    return rows[np.sort(keep)]


def _logistic(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=500)


@register
class ClassificationHead(Router):
    name = "classification-head"
    description = "one multi-class head on base embeddings predicting the best-expert label"
    family = "baseline"
    what_if = Router.masked_what_if
    params = (*PILOT_PARAMS[:1], BALANCE)  # the tie rule labels its training queries

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        labels = ctx.labels
        keep = np.flatnonzero(labels >= 0)
        classes = np.unique(labels[keep])
        if len(classes) == 0:
            return out
        if len(classes) == 1:
            out[:, classes[0]] = 1.0
            return out
        if ctx.param("balance_labels"):
            keep = balanced(keep, labels[keep], ctx.param("seed"))
        model = ctx.cached(self.name, lambda: _logistic().fit(ctx.pilot_emb[keep], labels[keep]))
        out[:, model.classes_] = model.predict_proba(emb)
        return out


@register
class ExpertClassifier(Router):
    name = "expert-classifier"
    description = "one binary classifier per expert (is it among the best for this query?); most confident wins"
    family = "baseline"
    what_if = Router.masked_what_if
    params = (BALANCE,)

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        cand = np.asarray(ctx.candidates)
        sub = ctx.pilot_scores[:, cand]
        best = np.isclose(sub, sub.max(axis=1, keepdims=True), rtol=0, atol=1e-9)
        informative = np.flatnonzero(best.sum(axis=1) < len(cand))  # all-way ties say nothing about any expert

        def fit_one(j: int):  # a constant when the expert is never (or always) among the best
            y = best[informative, j]
            if 0 < y.sum() < len(y):
                rows = informative
                if ctx.param("balance_labels"):  # as many queries where it is not among the best as where it is
                    rows = balanced(informative, y, ctx.param("seed") + j)
                return _logistic().fit(ctx.pilot_emb[rows], best[rows, j])
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
