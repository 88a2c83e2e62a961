"""Measures of many rankings at once, on arrays, with trec_eval's semantics: for the what-if and for choosing
mixing settings on pilot queries, where thousands of fused rankings are scored per click or per candidate.

Stored metrics are always ir_measures' (pytrec_eval, i.e. trec_eval itself); this module serves only where that is
too slow (ir_measures reads one dict per query), and tests/test_fusion.py checks it equals ir_measures on real
runs to 1e-9. It covers the measures the build uses (nDCG@k, R@k, P@k, RR@k, AP, with their default parameters);
`supported` says whether a name is one of them, so a caller can fall back to ir_measures for any other.

trec_eval's rules: relevant = grade >= 1; nDCG gains are the grades (those above 0), discounted by log2(rank + 1),
the ideal from every judged document (also those the corpus lacks); a query without relevant documents scores 0.
Rankings come in trec_eval's order already (explorer.fusion ranks that way).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SUPPORTED = {"nDCG": ("cutoff",), "R": ("cutoff",), "P": ("cutoff",), "RR": ("cutoff",), "AP": ("cutoff",)}
NEEDS_CUTOFF = ("R", "P")


@lru_cache(maxsize=64)
def parsed(measure: str) -> tuple[str, int | None] | None:
    """(name, cutoff) of a measure this module computes, or None."""
    import ir_measures

    try:
        m = ir_measures.parse_measure(measure)
    except Exception:  # noqa: BLE001  (the parser raises several types)
        return None
    if m.NAME not in SUPPORTED or set(m.params) - set(SUPPORTED[m.NAME]):
        return None
    cutoff = m.params.get("cutoff")
    if cutoff is None and m.NAME in NEEDS_CUTOFF:
        return None
    return m.NAME, cutoff


def supported(measure: str) -> bool:
    return parsed(measure) is not None


def depth_needed(measure: str, depth: int) -> int:
    """How many top documents `measure` reads of a ranking `depth` long."""
    p = parsed(measure)
    return depth if p is None or p[1] is None else min(depth, int(p[1]))


class Judgements:
    """The judgements of `n` queries (positions 0..n-1): grade lookups for ranked documents and each query's ideal.

    query, doc, grade: parallel arrays, one entry per judgement; doc is a corpus position, -1 for a judged document
    the corpus lacks (it counts as relevant, it can never be retrieved)."""

    def __init__(self, n: int, query: np.ndarray, doc: np.ndarray, grade: np.ndarray):
        query, doc, grade = np.asarray(query, np.int64), np.asarray(doc, np.int64), np.asarray(grade, np.float64)
        self.n = n
        known = doc >= 0
        key = (query[known] << 32) | doc[known]
        order = np.argsort(key, kind="stable")
        self._key, self._grade = key[order], grade[known][order]
        self.relevant = np.bincount(query[grade >= 1], minlength=n).astype(np.float64)
        self._ideal_grades = self._ideal(query, grade)

    def _ideal(self, query: np.ndarray, grade: np.ndarray) -> np.ndarray:
        """(n, m) each query's positive grades, largest first (0 padded)."""
        pos = grade > 0
        q, g = query[pos], grade[pos]
        order = np.lexsort((-g, q))
        q, g = q[order], g[order]
        counts = np.bincount(q, minlength=self.n)
        width = int(counts.max()) if len(counts) and counts.max() > 0 else 1
        out = np.zeros((self.n, width))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[q, np.arange(len(q)) - starts[q]] = g
        return out

    def grades(self, queries: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """(m, d) grades of the ranked documents `docs` (corpus positions, -1 = none) of the queries at `queries`;
        0 where unjudged or empty."""
        key = (np.asarray(queries, np.int64)[:, None] << 32) | np.maximum(docs, 0)
        at = np.minimum(np.searchsorted(self._key, key), max(len(self._key) - 1, 0))
        hit = (docs >= 0) & (len(self._key) > 0)
        if len(self._key):
            hit &= self._key[at] == key
        return np.where(hit, self._grade[at] if len(self._key) else 0.0, 0.0)

    def ideal_dcg(self, queries: np.ndarray, cutoff: int | None) -> np.ndarray:
        g = self._ideal_grades[np.asarray(queries)]
        g = g if cutoff is None else g[:, :cutoff]
        return (g / np.log2(np.arange(2, g.shape[1] + 2))).sum(axis=1)


def evaluate(measure: str, grades: np.ndarray, judged: Judgements, queries: np.ndarray) -> np.ndarray:
    """(m,) values of `measure` for rankings whose documents have `grades` (m, d), rank order, of the queries at
    `queries` in `judged`. ValueError for a measure this module does not compute (see `supported`)."""
    positive = grades > 0
    rows, cols = np.nonzero(positive)
    at = np.arange(len(rows)) - np.searchsorted(rows, rows)
    width = max(int(positive.sum(axis=1).max()) if len(grades) else 0, 1)
    ranks, kept = np.full((len(grades), width), np.inf), np.zeros((len(grades), width))
    ranks[rows, at], kept[rows, at] = cols + 1, grades[rows, cols]
    return evaluate_ranks(measure, ranks, kept, judged, queries, grades.shape[1])


def judgements_for(qrels, queries, doc_ids: dict[str, list[str]], roles: tuple[str, ...]) -> Judgements:
    """Judgements (position = query row) of the queries whose role is in `roles`, from a qrels table (dataset,
    role, qid, doc_id, grade), the queries table (row, qid, dataset, role) and each corpus's document ids; other
    queries have none (they score 0)."""
    import pandas as pd

    q = qrels[qrels["role"].isin(roles)].merge(queries[["row", "qid", "dataset", "role"]],
                                                on=["dataset", "role", "qid"])
    pos = pd.Series(-1, index=q.index, dtype=np.int64)
    for name, ids in doc_ids.items():
        mine = q["dataset"] == name
        if mine.any():
            lookup = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
            pos[mine] = q.loc[mine, "doc_id"].map(lookup).fillna(-1).astype(np.int64)
    return Judgements(len(queries), q["row"].to_numpy(), pos.to_numpy(), q["grade"].to_numpy())


def judged_columns(judged: Judgements, queries: np.ndarray, union: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query (rows of `union`, its candidate documents), the union columns of its documents with a grade
    above 0 and their grades: (cols, grades), each (m, r), cols -1 padded. Measures of any ranking of the union
    follow from where these documents land (`evaluate_ranks`)."""
    grades = judged.grades(np.asarray(queries), union)
    positive = grades > 0
    width = max(int(positive.sum(axis=1).max()) if len(grades) else 0, 1)
    r, c = np.nonzero(positive)
    pos = np.arange(len(r)) - np.searchsorted(r, r)
    cols = np.full((len(grades), width), -1, dtype=np.int64)
    out = np.zeros((len(grades), width))
    cols[r, pos], out[r, pos] = c, grades[r, c]
    return cols, out


def evaluate_ranks(measure: str, ranks: np.ndarray, grades: np.ndarray, judged: Judgements, queries: np.ndarray,
                   depth: int) -> np.ndarray:
    """`evaluate` from the ranks (m, r; inf = not retrieved) of each query's documents with a grade above 0 and
    their grades, in a ranking cut at `depth`: every supported measure reads only where those documents land."""
    p = parsed(measure)
    if p is None:
        raise ValueError(f"{measure!r} is not computed on arrays; use explorer.evaluation.per_query")
    name, cutoff = p
    k = depth if cutoff is None else min(int(cutoff), depth)
    inside = (ranks <= k) & (grades > 0)
    rel = inside & (grades >= 1)
    n_rel = judged.relevant[np.asarray(queries)]
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "nDCG":
            dcg = np.where(inside, grades / np.log2(np.where(inside, ranks, 1) + 1), 0.0).sum(axis=1)
            ideal = judged.ideal_dcg(queries, cutoff)
            return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
        if name == "R":
            return np.where(n_rel > 0, rel.sum(axis=1) / np.maximum(n_rel, 1), 0.0)
        if name == "P":
            return rel.sum(axis=1) / cutoff
        if name == "RR":
            first = np.where(rel, ranks, np.inf).min(axis=1)
            return np.where(np.isfinite(first), 1.0 / first, 0.0)
        r = np.where(rel, ranks, np.inf)
        above = (r[:, None, :] <= r[:, :, None]).sum(axis=2)  # relevant documents at or above each one
        precision = np.where(rel, above / np.where(rel, r, 1), 0.0)
        return np.where(n_rel > 0, precision.sum(axis=1) / np.maximum(n_rel, 1), 0.0)
