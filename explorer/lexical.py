"""BM25 over a corpus (bm25s, Snowball stemming through PyStemmer, stopwords): the lexical expert's index and runs.

A lexical expert scores documents by their words, so it has a run for every query but no query embedding. Its index
is a sparse matrix that bm25s saves as .npy arrays and JSON; the build caches it by content hash (read back with
allow_pickle=False), and the app rebuilds it from a workspace's docs.parquet when a typed query needs it (seconds;
a workspace never carries one, so nothing of it is read from someone else's files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .index import Run

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's own token pattern: words of two or more characters
TIE_MARGIN = 50  # documents retrieved past the run's depth, to order ties at the cut as trec_eval does
STOPWORD_SETS = ("en", "de", "nl", "fr", "es", "pt", "it", "ru", "sv", "no", "da", "tr", "none")


class LexicalError(ValueError):
    """A corpus BM25 cannot index; the message says which and why."""


def _stemmer(name: str):
    if name == "none":
        return None
    import Stemmer

    return Stemmer.Stemmer(name)


def tokens(texts: list[str], params: Mapping):
    import bm25s

    stop = params.get("stopwords", "en")
    return bm25s.tokenize(list(texts), stopwords=None if stop == "none" else stop,
                          stemmer=_stemmer(params.get("stemmer", "english")), show_progress=False)


def indexable(texts: list[str]) -> bool:
    """Whether any text holds a word BM25 can index (two or more word characters)."""
    return any(TOKEN.search(t or "") for t in texts)


@dataclass
class LexicalIndex:
    """A corpus's BM25 index and the settings it was built with (the same stemming must read the queries)."""

    model: object  # bm25s.BM25
    params: dict
    n_docs: int

    def search(self, texts: list[str], k: int, doc_ids: list[str], query_ids: list[str] | None = None,
               ignore_identical_ids: bool = False) -> Run:
        """Top-k per query as a Run (corpus positions, float32 scores) in trec_eval's order; documents that
        share no word with the query (score 0) are not retrieved; BEIR's identical-id rule as index.search."""
        from .index import trec_order

        out_docs = np.full((len(texts), k), -1, dtype=np.int32)
        out_scores = np.zeros((len(texts), k), dtype=np.float32)
        if not len(texts) or not self.n_docs:
            return Run(out_docs, out_scores)
        # a margin past the cut, so that documents tied at the k-th score enter by trec_eval's rule (document id),
        # not by the order bm25s's top-k selection happens to leave them in
        depth = min(k + (1 if ignore_identical_ids else 0) + TIE_MARGIN, self.n_docs)
        docs, scores = self.model.retrieve(tokens(texts, self.params), k=depth, show_progress=False, n_threads=1)
        for i in range(len(texts)):
            keep = scores[i] > 0
            if ignore_identical_ids and query_ids is not None:
                keep &= np.array([doc_ids[d] != query_ids[i] for d in docs[i]])
            r, s = docs[i][keep][:k], scores[i][keep][:k].astype(np.float32)
            if len(r) > 1:
                order = trec_order(doc_ids, r, s)
                r, s = r[order], s[order]
            out_docs[i, :len(r)] = r
            out_scores[i, :len(s)] = s
        return Run(out_docs, out_scores)


def build_lexical(passages: list[str], params: Mapping, what: str = "the corpus") -> LexicalIndex:
    """BM25 over `passages`; LexicalError when no passage holds a word (`what` names the corpus in the message)."""
    import bm25s

    if not indexable(passages):
        raise LexicalError(f"{what}: no document holds a word BM25 can index (every text is empty or too short)")
    tok = tokens(passages, params)
    if not tok.vocab:
        raise LexicalError(f"{what}: every word of every document is a stopword; BM25 has nothing to index")
    model = bm25s.BM25(k1=float(params.get("k1", 1.5)), b=float(params.get("b", 0.75)))
    model.index(tok, show_progress=False)
    return LexicalIndex(model, dict(params), len(passages))


def save_lexical(index: LexicalIndex, folder: Path) -> None:
    """bm25s's own format: .npy arrays and JSON, never a pickle."""
    index.model.save(str(folder), allow_pickle=False, show_progress=False)


def load_lexical(folder: Path, params: Mapping, n_docs: int) -> LexicalIndex:
    """A cached index (arrays read with allow_pickle=False); ValueError when it does not hold `n_docs` documents."""
    import bm25s

    model = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False, verbosity=0)
    held = model.scores.get("num_docs") if isinstance(model.scores, dict) else None
    if held != n_docs:
        raise ValueError(f"a BM25 index of {held} documents, expected {n_docs}")
    return LexicalIndex(model, dict(params), n_docs)
