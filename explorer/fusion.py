"""Rank fusion of stored runs, vectorised: RRF, CombSUM and CombMNZ over normalised scores, weighted per query.

Every expert's run of every query is in the workspace, so mixing experts costs no encoding: a fused ranking is
array arithmetic over the stored top-k lists. `RunPool` gathers, once, the union of the documents every system
retrieved for each query, ordered as trec_eval breaks ties (document id descending); each fusion is then one
weighted `bincount` into that union and one top-k selection, fast enough for the what-if at 10,000 queries.

Semantics follow ranx's (checked against trec_eval there; here against hand computations and ir_measures in
tests/test_fusion.py): a document missing from a list contributes nothing; min-max maps a list to [0, 1] (a list
whose scores are all equal maps to 1), z-score to (s - mean) / std (std = 0: 0); RRF gives 1 / (k + rank);
CombMNZ multiplies the sum by the number of fused lists that hold the document. Weights multiply each list's
contribution (uniform weights give the plain methods' rankings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FUSION_METHODS = ("rrf", "combsum", "combmnz")
NORMS = ("min-max", "z-score")


@dataclass(frozen=True)
class Fusion:
    """How weighted runs become one ranking."""

    method: str = "combsum"
    norm: str = "min-max"  # combsum / combmnz only
    rrf_k: float = 60.0  # rrf only

    def __post_init__(self):
        if self.method not in FUSION_METHODS:
            raise ValueError(f"fusion method {self.method!r}; use one of {', '.join(FUSION_METHODS)}")
        if self.norm not in NORMS:
            raise ValueError(f"fusion norm {self.norm!r}; use one of {', '.join(NORMS)}")
        if not self.rrf_k >= 0:
            raise ValueError(f"rrf_k = {self.rrf_k!r} must be a number >= 0")

    def __str__(self) -> str:
        return f"RRF (k = {self.rrf_k:g})" if self.method == "rrf" else f"{self.method} over {self.norm} scores"


def contributions(docs: np.ndarray, scores: np.ndarray, fusion: Fusion) -> np.ndarray:
    """(..., k) lists in rank order (docs -1 = empty) -> what each entry adds to its document's fused score:
    1 / (rrf_k + rank), or its score normalised within its own list; 0 for empty entries."""
    valid = docs >= 0
    if fusion.method == "rrf":
        ranks = np.cumsum(valid, axis=-1)
        return np.where(valid, 1.0 / (fusion.rrf_k + ranks), 0.0)
    s = np.where(valid, scores.astype(np.float64), np.nan)
    n = valid.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        if fusion.norm == "min-max":
            lo, hi = np.nanmin(s, axis=-1, keepdims=True), np.nanmax(s, axis=-1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
        else:
            mean = np.nansum(s, axis=-1, keepdims=True) / np.maximum(n, 1)
            std = np.sqrt(np.nansum((s - mean) ** 2, axis=-1, keepdims=True) / np.maximum(n, 1))
            out = np.where(std > 0, (s - mean) / np.where(std > 0, std, 1.0), 0.0)
    return np.where(valid, out, 0.0)


class _quiet:
    """nanmin/nanmax warn on an empty list; an empty list contributes nothing anyway."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


@dataclass
class RunPool:
    """The runs of `S` systems on `n` queries, gathered over each query's union of retrieved documents.

    docs, scores: (S, n, k) in rank order (-1 = empty); tie: (S, n, k) each entry's trec_eval tie key (the rank of
    its document id in ascending string order within its corpus: a larger key wins a tie). The union of a query's
    documents is ordered by tie key descending, so a stable sort on the fused score alone gives trec_eval's order.
    """

    docs: np.ndarray
    scores: np.ndarray
    tie: np.ndarray
    union: np.ndarray = field(init=False)  # (n, U) corpus positions, -1 padded
    where: np.ndarray = field(init=False)  # (S, n, k) column of each entry in its query's union (-1: empty)
    _values: dict = field(default_factory=dict, init=False, repr=False)
    _sums: dict = field(default_factory=dict, init=False, repr=False)
    _last: tuple = field(default=(None, None), init=False, repr=False)

    def __post_init__(self):
        S, n, k = self.docs.shape
        valid = self.docs >= 0
        rows = np.broadcast_to(np.arange(n)[None, :, None], self.docs.shape)[valid].astype(np.int64)
        # one key per (query, document), larger tie first: unique sorts them into each query's union
        key = (rows << 32) | (np.int64(0x7FFFFFFF) - self.tie[valid].astype(np.int64))
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        urow = (uniq >> 32).astype(np.int64)
        start = np.searchsorted(urow, np.arange(n))
        col = np.arange(len(uniq)) - start[urow]
        width = int(col.max()) + 1 if len(col) else 0
        self.union = np.full((n, width), -1, dtype=np.int64)
        self.union[urow, col] = self.docs[valid][first]
        self.where = np.full(self.docs.shape, -1, dtype=np.int64)
        self.where[valid] = col[inverse]
        # each entry's cell in the flattened (query, union column) grid; empty entries go to one spare cell past it
        self._cells = np.where(valid, np.arange(n, dtype=np.int64)[None, :, None] * width + self.where, n * width)

    @property
    def shape(self) -> tuple[int, int]:
        return self.union.shape

    def values(self, fusion: Fusion) -> np.ndarray:
        """Every entry's contribution under `fusion` (computed once per method and norm)."""
        key = (fusion.method, fusion.norm if fusion.method != "rrf" else fusion.rrf_k)
        if key not in self._values:
            self._values[key] = contributions(self.docs, self.scores, fusion)
        return self._values[key]

    def fuse(self, weights: np.ndarray, fusion: Fusion, queries: np.ndarray | None = None) -> np.ndarray:
        """(m, U) fused scores of the queries at positions `queries` (default: all), float32 as runs store them;
        -inf where no list with a positive weight holds the document. `weights`: (m, S), each row over systems."""
        n, width = self.shape
        systems = np.flatnonzero((weights > 0).any(axis=0))
        w = weights[:, systems].T  # (s, m)
        if queries is None and len(systems) and (w == w[:1]).all() and (w > 0).all():
            return self._uniform(tuple(systems), fusion, w[0])  # every list weighed alike on every query
        q = np.arange(n) if queries is None else np.asarray(queries)
        rows, lists = np.nonzero(weights > 0)  # only the (query, list) pairs that count: a few per query
        where = self.where[lists, q[rows]]  # (pairs, k)
        values = self.values(fusion)[lists, q[rows]] * weights[rows, lists][:, None]
        cells = np.where(where >= 0, rows[:, None] * width + where, len(q) * width).ravel()
        total = np.bincount(cells, values.ravel(), len(q) * width + 1)[:-1].reshape(len(q), width)
        count = np.bincount(cells, minlength=len(q) * width + 1)[:-1].reshape(len(q), width)
        return _finish(total, count, fusion)

    def _uniform(self, systems: tuple, fusion: Fusion, row_weight: np.ndarray) -> np.ndarray:
        """fuse() when each query weighs its lists alike (rank fusion over the candidates): the unweighted sums
        and counts of a set of systems are kept, so a subset of it (experts switched off in the what-if) costs
        only the switched-off lists' entries, subtracted."""
        n, width = self.shape
        key = (fusion.method == "rrf", fusion.norm, fusion.rrf_k)
        known = next((s for (k, s) in self._sums if k == key and set(systems) <= set(s)), None)
        if known is None:
            known = systems
            while len(self._sums) >= 4:
                self._sums.pop(next(iter(self._sums)))
            self._sums[(key, known)] = self._sum(known, fusion)
        total, count = self._sums[(key, known)]
        off = [s for s in known if s not in systems]
        if off and self._last[:2] == (key, systems):  # CombSUM and CombMNZ of the same experts: once
            total, count = self._last[2:]
        elif off:  # a list holds a document once per query, so its cells are distinct: subtract in place
            total, count = total.copy().ravel(), count.copy().ravel()
            for s in off:
                held = self._cells[s] < n * width
                total[self._cells[s][held]] -= self.values(fusion)[s][held]
                count[self._cells[s][held]] -= 1
            total, count = total.reshape(n, width), count.reshape(n, width)
            self._last = (key, systems, total, count)
        total = total * row_weight[:, None]
        return _finish(total, count, fusion)

    def _sum(self, systems: tuple, fusion: Fusion) -> tuple[np.ndarray, np.ndarray]:
        n, width = self.shape
        cells = self._cells[list(systems)].ravel()
        total = np.bincount(cells, self.values(fusion)[list(systems)].ravel(), n * width + 1)[:-1]
        count = np.bincount(cells, minlength=n * width + 1)[:-1].astype(np.int32)
        return total.reshape(n, width), count.reshape(n, width)

    def ranks_of(self, fused: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(m, r) trec_eval rank of each union column `cols` (m, r; -1 = none) in its row of `fused`: 1 + the
        documents scored higher + those tied with it that come first (a larger document id, a smaller column);
        inf for none and for a document no fused list holds."""
        ranks = np.full(cols.shape, np.inf)
        order = np.arange(fused.shape[1])
        for j in range(cols.shape[1]):
            rows = np.flatnonzero(cols[:, j] >= 0)  # the queries with a j-th judged document (most have few)
            c, part = cols[rows, j], fused[rows]
            f = part[np.arange(len(rows)), c][:, None]
            before = (part > f).sum(axis=1) + ((part == f) & (order[None, :] < c[:, None])).sum(axis=1)
            ranks[rows, j] = np.where(np.isfinite(f[:, 0]), 1 + before, np.inf)
        return ranks

    def top(self, fused: np.ndarray, depth: int) -> np.ndarray:
        """(m, depth) union columns of the best `depth` documents per row in trec_eval's order (score descending,
        ties by document id descending, i.e. by column), -1 past the end of a shorter list. Only the columns at or
        above each row's depth-th score are sorted, so the cost is one partition of the row."""
        m, width = fused.shape
        depth = int(min(depth, width))
        out = np.full((m, depth), -1, dtype=np.int64)
        if depth == 0 or m == 0:
            return out
        cut = -np.partition(-fused, depth - 1, axis=1)[:, depth - 1] if depth < width else np.full(m, -np.inf)
        r, c = np.nonzero((fused >= cut[:, None]) & np.isfinite(fused))
        order = np.lexsort((c, -fused[r, c], r))
        r, c = r[order], c[order]
        pos = np.arange(len(r)) - np.searchsorted(r, r)
        keep = pos < depth
        out[r[keep], pos[keep]] = c[keep]
        return out

    def run(self, weights: np.ndarray, fusion: Fusion, depth: int, queries: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """The fused top-`depth` of the queries at `queries`: (docs, scores), each (m, depth), docs -1 padded."""
        fused = self.fuse(weights, fusion, queries)
        cols = self.top(fused, depth)
        q = np.arange(self.shape[0]) if queries is None else np.asarray(queries)
        safe = np.maximum(cols, 0)
        docs = np.where(cols >= 0, self.union[q[:, None], safe], -1)
        return docs, np.where(cols >= 0, np.take_along_axis(fused, safe, axis=1), np.nan).astype(np.float32)


SNAP = 1e-9  # a fused score this close to 0 is 0: sums kept and lists subtracted leave float residue there


def _finish(total: np.ndarray, count: np.ndarray, fusion: Fusion) -> np.ndarray:
    """The fused scores as runs store them (float32), -inf where no weighted list holds the document."""
    out = (total * count if fusion.method == "combmnz" else total).astype(np.float32)
    out[np.abs(out) < SNAP] = 0.0
    out[count == 0] = -np.inf
    return out


def tie_keys(doc_ids: list[str]) -> np.ndarray:
    """Per corpus position, the rank of its document id in ascending string order (trec_eval's tie order)."""
    order = np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")
    keys = np.empty(len(doc_ids), dtype=np.int64)
    keys[order] = np.arange(len(doc_ids))
    return keys


def run_arrays(frame, systems: list[str], n_rows: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(docs, scores), each (len(systems), n_rows, depth), from a runs table (system, row, rank, doc, score):
    entry [s, row, rank - 1]; docs -1 and scores NaN where a run is shorter or absent."""
    docs = np.full((len(systems), n_rows, depth), -1, dtype=np.int64)
    scores = np.full((len(systems), n_rows, depth), np.nan, dtype=np.float32)
    index = {s: i for i, s in enumerate(systems)}
    sys_col = frame["system"].map(index)
    keep = sys_col.notna().to_numpy() & (frame["rank"].to_numpy() <= depth)
    s = sys_col.to_numpy()[keep].astype(np.int64)
    r, k = frame["row"].to_numpy()[keep], frame["rank"].to_numpy()[keep] - 1
    docs[s, r, k] = frame["doc"].to_numpy()[keep]
    scores[s, r, k] = frame["score"].to_numpy()[keep]
    return docs, scores


def pool_of(docs: np.ndarray, scores: np.ndarray, row_dataset: np.ndarray, doc_ids: dict[str, list[str]]) -> RunPool:
    """A RunPool over every query row, tie keys from each row's corpus (`row_dataset`: the dataset of each row)."""
    tie = np.zeros(docs.shape, dtype=np.int64)
    for name, ids in doc_ids.items():
        rows = np.flatnonzero(row_dataset == name)
        if len(rows):
            keys = tie_keys(ids)
            part = docs[:, rows]
            tie[:, rows] = np.where(part >= 0, keys[np.maximum(part, 0)], 0)
    return RunPool(docs, scores, tie)
