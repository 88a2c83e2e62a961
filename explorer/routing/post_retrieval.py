"""Post-retrieval routing: choose the expert after looking at what each one retrieved.

Every expert's run of every query is stored, so a router may read the rankings before it chooses. The features
are query performance predictors over each candidate's own top documents, from runs and scores only (never a
judgement of an evaluated query):

- `top`: the score of its first document;
- `gap`: first minus second score (a clear winner);
- `spread`: the standard deviation of its top scores over their mean's magnitude (NQC's normalised spread);
- `agreement`: how many of its top-10 documents the other candidates' top-10 share, on average (out of 10).

Experts score on different scales (BM25 against cosine), so each feature is standardised per expert over the pilot
queries' runs (`qpp_scale = "pilot"`) unless asked raw. The unsupervised routers take the candidate with the best
feature; `qpp-learned` is a multinomial logistic regression trained on the pilot queries' best-expert labels with
every candidate's features and the base embedding.
"""

from __future__ import annotations

import numpy as np

from ..pilot import PILOT_PARAMS
from ..settings import Param
from .base import Router, RoutingContext, register
from .classifiers import BALANCE, _logistic, balanced

QPP_DEPTH = Param("qpp_depth", int, 10, "post-retrieval: top documents of each run that the spread reads",
                  min=2, max=10_000)
QPP_SCALE = Param("qpp_scale", str, "pilot", 'post-retrieval: "pilot" standardises each feature per expert over '
                  'the pilot queries\' runs, "raw" compares the raw values', choices=("pilot", "raw"))
FEATURES = ("top", "gap", "spread", "agreement")
AGREEMENT_DEPTH = 10


def features(ctx: RoutingContext, rows: np.ndarray, depth: int) -> np.ndarray:
    """(n, n_encoders, len(FEATURES)) raw features of the queries at `rows` for every candidate (NaN elsewhere)."""
    cand = np.asarray(ctx.candidates, dtype=np.int64)
    docs, scores = ctx.runs.docs[cand][:, rows], ctx.runs.scores[cand][:, rows].astype(np.float64)
    valid = docs >= 0
    s = np.where(valid, scores, np.nan)
    out = np.full((len(rows), len(ctx.encoders), len(FEATURES)), np.nan)
    top = s[:, :, 0]
    second = s[:, :, 1] if s.shape[2] > 1 else np.full_like(top, np.nan)
    head = s[:, :, :depth]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.sum(~np.isnan(head), axis=2)
        mean = np.nansum(head, axis=2) / np.maximum(n, 1)
        std = np.sqrt(np.nansum((head - mean[..., None]) ** 2, axis=2) / np.maximum(n, 1))
        spread = np.where(n > 1, std / np.maximum(np.abs(mean), 1e-12), 0.0)
    out[:, cand, 0] = np.nan_to_num(top, nan=0.0).T
    out[:, cand, 1] = np.nan_to_num(top - second, nan=0.0).T
    out[:, cand, 2] = spread.T
    out[:, cand, 3] = agreement(docs[:, :, :AGREEMENT_DEPTH]).T
    return out


def agreement(head: np.ndarray) -> np.ndarray:
    """(C, n) mean number of a list's documents found in each other list (C lists of (n, d) documents, -1 empty)."""
    C = len(head)
    if C < 2:
        return np.zeros(head.shape[:2])
    shared = np.zeros((C, head.shape[1]))
    for a in range(C):
        for b in range(a + 1, C):
            same = (head[a][:, :, None] == head[b][:, None, :]) & (head[a][:, :, None] >= 0)
            both = same.any(axis=2).sum(axis=1)
            shared[a] += both
            shared[b] += both
    return shared / (C - 1)


def scaled(ctx: RoutingContext, rows: np.ndarray) -> np.ndarray:
    """`features` of `rows`, standardised per expert and feature over the pilot queries' runs (qpp_scale)."""
    depth = int(ctx.param("qpp_depth"))
    raw = features(ctx, rows, depth)
    if ctx.param("qpp_scale") == "raw":
        return raw

    def moments():
        pilot = features(ctx, ctx.pilot_rows, depth)[:, ctx.candidates]
        mean, std = np.zeros(raw.shape[1:]), np.ones(raw.shape[1:])
        if len(pilot):
            mean[ctx.candidates], std[ctx.candidates] = pilot.mean(axis=0), pilot.std(axis=0)
        return mean, std
    mean, std = ctx.cached(("qpp-moments", depth, tuple(ctx.candidates)), moments)
    return (raw - mean) / np.where(std > 0, std, 1.0)


class _PostRetrieval(Router):
    family = "post-retrieval"
    group = "post-retrieval"
    needs_runs = True
    what_if = Router.masked_what_if  # stored features masked (agreement keeps the experts of the build)
    params = (QPP_DEPTH, QPP_SCALE)
    feature = ""

    def available(self, ctx: RoutingContext) -> bool:
        return len(ctx.candidates) >= 1

    def score(self, ctx, emb, rows=None):
        return scaled(ctx, rows)[:, :, FEATURES.index(self.feature)]


@register
class QppTop(_PostRetrieval):
    name = "qpp-top"
    description = "post-retrieval: the expert whose first document scores highest (standardised per expert)"
    feature = "top"


@register
class QppGap(_PostRetrieval):
    name = "qpp-gap"
    description = "post-retrieval: the expert with the widest gap between its first and second document"
    feature = "gap"


@register
class QppSpread(_PostRetrieval):
    name = "qpp-spread"
    description = "post-retrieval: the expert whose top scores spread most (NQC: their std over their mean)"
    feature = "spread"


@register
class QppAgreement(_PostRetrieval):
    name = "qpp-agreement"
    description = "post-retrieval: the expert whose top-10 the other experts' top-10 share most"
    feature = "agreement"


@register
class QppLearned(_PostRetrieval):
    name = "qpp-learned"
    description = ("post-retrieval, supervised: a logistic regression on every expert's ranking features and the "
                   "base embedding, trained on the pilot queries' best-expert labels")
    params = (QPP_DEPTH, QPP_SCALE, *PILOT_PARAMS[:1], BALANCE)

    def _inputs(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray) -> np.ndarray:
        f = scaled(ctx, rows)[:, ctx.candidates, :].reshape(len(rows), -1)
        return np.hstack([emb, np.nan_to_num(f, nan=0.0)])

    def score(self, ctx, emb, rows=None):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        labels = ctx.labels
        keep = np.flatnonzero(labels >= 0)
        classes = np.unique(labels[keep])
        if len(classes) < 2:
            out[:, classes] = 1.0
            return out
        if ctx.param("balance_labels"):
            keep = balanced(keep, labels[keep], ctx.param("seed"))

        def fit():
            return _logistic().fit(self._inputs(ctx, ctx.pilot_emb[keep], ctx.pilot_rows[keep]), labels[keep])
        model = ctx.cached((self.name, tuple(ctx.candidates)), fit)
        out[:, model.classes_] = model.predict_proba(self._inputs(ctx, emb, rows))
        return out
