"""Document indexes over base embeddings (faiss) and the top-k runs they produce.

Experts are query-side, so each dataset has exactly one index, whatever the number of experts. Runs are re-sorted
with trec_eval's tie-break (score descending, then document id descending), so the order we show is the order
trec_eval scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .index_files import FLAT, HNSW, IVF, IVF_DISK, IndexFileError, inspect_index
from .lazy import Lazy

faiss = Lazy("faiss")

INDEX_STRUCTURES = ("flat", "hnsw", "ivf")  # what build_index makes in memory
ON_DISK = IVF_DISK  # IVF with its lists in a file beside the index (explorer.ondisk), for corpora beyond RAM
INDEX_KINDS = (*INDEX_STRUCTURES, ON_DISK, "auto")  # what [index] kind accepts: auto picks one per corpus
RECALL_TARGET = 0.95  # recall@10 an IVF index is tuned to, against exact search
PROBE_QUERIES = 200  # corpus documents used as queries to measure it (never test queries)


def build_index(doc_emb: np.ndarray, kind: str = "flat", hnsw_m: int = 32, ivf_lists: int | None = None,
                ivf_probe: int | None = None) -> faiss.Index:
    """Exact inner product by default; HNSW or IVF (approximate) for large corpora."""
    if kind == "auto":
        raise ValueError('kind = "auto" is resolved by the build (resolve_kind), not an index of its own')
    emb = np.ascontiguousarray(doc_emb, dtype=np.float32)
    d = emb.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    elif kind == "ivf":
        lists = ivf_lists or max(1, int(np.sqrt(len(emb))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(emb)
        index.nprobe = ivf_probe or min(lists, max(8, lists // 10))
    else:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_STRUCTURES)}")
    index.add(emb)
    return index


def resolve_kind(kind: str, n_docs: int, exact_max_docs: int, memory_max_docs: int | None = None) -> str:
    """The index a corpus gets: `auto` is exact ("flat") up to `exact_max_docs` documents, IVF in memory up to
    `memory_max_docs` and IVF with its lists on disk above."""
    if kind != "auto":
        return kind
    if n_docs <= exact_max_docs:
        return "flat"
    return "ivf" if memory_max_docs is None or n_docs <= memory_max_docs else ON_DISK


def _probe(doc_emb: np.ndarray, queries: int, k: int, seed: int, chunk: int):
    """Seeded corpus documents as queries, and their exact top-k (each one's own document left out)."""
    from .chunked import ChunkedFlat

    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(doc_emb), min(queries, len(doc_emb)), replace=False))
    q = np.ascontiguousarray(np.asarray(doc_emb[picks]), dtype=np.float32)
    _, exact = ChunkedFlat(doc_emb, chunk).search(q, k + 1)
    return q, picks, [set(r) - {p} for r, p in zip(exact.tolist(), picks.tolist())]


def ivf_recall(index, doc_emb: np.ndarray, nprobe: int, queries: int = PROBE_QUERIES, k: int = 10, seed: int = 0,
               chunk: int = 50_000, probe=None) -> float:
    """recall@k of `index` at `nprobe` against exact search, on seeded corpus documents as queries."""
    q, picks, truth = probe or _probe(doc_emb, queries, k, seed, chunk)
    index.nprobe = nprobe
    _, got = index.search(q, k + 1)
    return float(np.mean([len((set(g) - {p}) & t) / max(1, len(t)) for g, p, t in zip(got.tolist(), picks.tolist(),
                                                                                     truth)]))


def tune_ivf(index, doc_emb: np.ndarray, target: float = RECALL_TARGET, queries: int = PROBE_QUERIES, k: int = 10,
             seed: int = 0, chunk: int = 50_000) -> dict:
    """Set an IVF index's nprobe to the smallest power of two whose recall@k against exact search reaches `target`
    (every list when none does), measured with `queries` seeded corpus documents as queries (ivf_recall). Returns
    what to state in the workspace: nlist, nprobe, recall@k and how it was measured."""
    probe = _probe(doc_emb, queries, k, seed, chunk)
    nlist, nprobe = int(index.nlist), 1
    while True:
        recall = ivf_recall(index, doc_emb, nprobe, k=k, probe=probe)
        if recall >= target or nprobe >= nlist:
            break
        nprobe = min(nlist, nprobe * 2)
    return {"nlist": nlist, "nprobe": nprobe, f"recall_at_{k}": round(recall, 4), "target": target,
            "measured_with": f"{len(probe[1])} seeded corpus documents as queries, against exact search"}


def save_index(index: faiss.Index, path: Path) -> None:
    """Write atomically: a killed write never leaves a truncated index under `path`."""
    from .workspace import atomic_write

    atomic_write(Path(path), lambda tmp: faiss.write_index(index, str(tmp)))


FAISS_CLASSES = {FLAT: "IndexFlatIP", HNSW: "IndexHNSWFlat", IVF: "IndexIVFFlat", IVF_DISK: "IndexIVFFlat"}


def load_index(path: Path, structure: str = FLAT, d: int | None = None, ntotal: int | None = None) -> faiss.Index:
    """Read an index the build wrote, as the `structure` it must be (of dimension `d` holding `ntotal` documents
    when given): walked first (explorer.index_files: every type, size, id, and no lists file but the one an
    ivf-disk index keeps beside it), then read by faiss read-only. IndexFileError naming the file otherwise."""
    from .data import NOT_A_FILE, path_kind

    path = Path(path)
    kind = path_kind(path)
    if kind != "file":
        raise IndexFileError(f"{path}: {'is missing' if kind == 'missing' else NOT_A_FILE[kind]}")
    inspect_index(path, structure, d, ntotal)
    flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_ONDISK_SAME_DIR if structure == IVF_DISK else 0)
    try:
        index = faiss.read_index(str(path), flags)  # returned downcast (IndexFlatIP, ...)
    except (RuntimeError, OSError, MemoryError) as err:
        reason = str(err).rsplit("Error: ", 1)[-1].split(" at /", 1)[0].replace(str(path), "the file").strip()[:160]
        raise IndexFileError(f"{path}: not a readable faiss index, truncated or damaged ({reason})") from err
    if type(index).__name__ != FAISS_CLASSES[structure] or (d is not None and index.d != d) or (
            ntotal is not None and index.ntotal != ntotal):  # what faiss read is what was walked
        raise IndexFileError(f"{path}: faiss read another index than the file describes")
    return index


@dataclass
class Run:
    """Top-k of every query of one dataset: rows of corpus positions (-1 = empty) and their scores."""

    docs: np.ndarray  # (n_queries, k) int32
    scores: np.ndarray  # (n_queries, k) float32


def trec_key(score: float, doc_id: str) -> tuple:
    """Sort key of trec_eval's order: score descending, ties broken by document id descending (strcmp order)."""
    return (-float(score), tuple(-ord(c) for c in doc_id) + (1,))


def trec_order(doc_ids: list[str], rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Permutation sorting one query's hits as trec_eval does."""
    return np.asarray(sorted(range(len(rows)), key=lambda i: trec_key(scores[i], doc_ids[rows[i]])), dtype=np.int64)


def search(index: faiss.Index, queries: np.ndarray, k: int, doc_ids: list[str], query_ids: list[str] | None = None,
           ignore_identical_ids: bool = False) -> Run:
    """Top-k per query; with `ignore_identical_ids` (BEIR's rule), a document whose id is the query's is dropped."""
    extra = 1 if ignore_identical_ids else 0
    depth = min(k + extra, index.ntotal)
    scores, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), depth)
    out_docs = np.full((len(queries), k), -1, dtype=np.int32)
    out_scores = np.zeros((len(queries), k), dtype=np.float32)
    for i in range(len(queries)):
        keep = rows[i] >= 0
        if ignore_identical_ids and query_ids is not None:
            keep &= np.array([doc_ids[r] != query_ids[i] if r >= 0 else False for r in rows[i]])
        r, s = rows[i][keep][:k], scores[i][keep][:k]
        if len(r) and np.any(s[1:] == s[:-1]):
            order = trec_order(doc_ids, r, s)
            r, s = r[order], s[order]
        out_docs[i, :len(r)] = r
        out_scores[i, :len(s)] = s
    return Run(out_docs, out_scores)
