"""faiss indexes and runs: exact search equals brute force; BEIR's identical-id rule; trec_eval's tie order."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.index import build_index, load_index, save_index, search


def _unit(rng, n, d=32):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_search_equals_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 500), _unit(rng, 20)
    ids = [f"d{i}" for i in range(500)]
    index = build_index(docs, "flat")
    save_index(index, tmp_path / "i.faiss")
    run = search(load_index(tmp_path / "i.faiss"), queries, 10, ids)
    brute = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    assert (run.docs == brute).all()
    assert np.allclose(run.scores, np.take_along_axis(queries @ docs.T, brute, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_have_high_recall(kind):
    rng = np.random.default_rng(1)  # clustered, like real embeddings (uniform noise is IVF's worst case)
    centres = _unit(rng, 50)
    docs = centres[rng.integers(0, 50, 10000)] + 0.3 * _unit(rng, 10000)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[rng.integers(0, 10000, 50)] + 0.1 * _unit(rng, 50)
    ids = [str(i) for i in range(10000)]
    exact = search(build_index(docs, "flat"), queries, 10, ids).docs
    approx = search(build_index(docs, kind), queries, 10, ids).docs
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9


def test_identical_ids_are_dropped_only_when_asked():
    docs = np.eye(4, dtype=np.float32)
    ids = ["q1", "a", "b", "c"]
    query = docs[:1] + 0.1 * docs[1:2]
    query /= np.linalg.norm(query)
    kept = search(build_index(docs), query, 3, ids, ["q1"], ignore_identical_ids=False)
    dropped = search(build_index(docs), query, 3, ids, ["q1"], ignore_identical_ids=True)
    assert ids[kept.docs[0, 0]] == "q1"
    assert "q1" not in [ids[r] for r in dropped.docs[0] if r >= 0]
    assert (dropped.docs[0] >= 0).sum() == 3  # still k results: one extra was fetched


def test_tied_scores_follow_trec_eval_order():
    docs = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    ids = ["d1", "d3", "d2", "d4"]
    run = search(build_index(docs), np.array([[1, 0]], dtype=np.float32), 4, ids)
    assert [ids[r] for r in run.docs[0]] == ["d3", "d2", "d1", "d4"]


def test_unknown_index_kind():
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(np.zeros((2, 2), dtype=np.float32), "lsh")
