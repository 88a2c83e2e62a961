"""The pilot embedding library: best-expert labels under every tie rule, and per-(dataset, label) centroids."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.pilot import TIE_RULES, best_labels, build_library

# columns: 0 = base, 1..3 = experts; candidates are 1..3
SCORES = np.array([
    [0.9, 0.5, 0.7, 0.1],  # clear winner: expert 2 (base is not a candidate)
    [0.0, 0.4, 0.4, 0.4],  # all-way tie
    [0.0, 0.2, 0.6, 0.6],  # partial tie between 2 and 3
    [0.0, 0.3, 0.1, 0.2],  # clear winner: expert 1
])
DATASETS = np.array(["a", "b", "c", "a"], dtype=object)
OWN = {"a": 1, "b": 2, "c": 3}


@pytest.mark.parametrize("rule,expected", [
    ("first", [2, 1, 2, 1]),
    ("skip-all", [2, -1, 2, 1]),
    ("skip", [2, -1, -1, 1]),
    ("own-dataset", [2, 2, 3, 1]),
])
def test_tie_rules(rule, expected):
    assert best_labels(SCORES, [1, 2, 3], DATASETS, OWN, ties=rule).tolist() == expected


def test_random_ties_pick_only_tied_experts_and_are_seeded():
    scores = np.tile(SCORES[2], (200, 1))
    labels = best_labels(scores, [1, 2, 3], np.array(["c"] * 200, dtype=object), OWN, ties="random", seed=3)
    assert set(labels) == {2, 3}
    assert (labels == best_labels(scores, [1, 2, 3], np.array(["c"] * 200, dtype=object), OWN, "random", 3)).all()


def test_base_as_candidate_can_win():
    assert best_labels(SCORES, [0, 1, 2, 3], DATASETS, OWN)[0] == 0


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown tie rule"):
        best_labels(SCORES, [1, 2, 3], DATASETS, OWN, ties="coin")
    assert set(TIE_RULES) == {"first", "skip-all", "skip", "own-dataset", "random", "auto"}


def test_library_is_one_normalised_centroid_per_dataset_and_label():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 8)).astype(np.float32)
    labels = np.array([1, 1, 2, -1, 1, 2])
    datasets = np.array(["a", "a", "a", "a", "b", "b"], dtype=object)
    lib = build_library(emb, labels, datasets)
    groups = sorted(zip(lib.dataset.tolist(), lib.expert.tolist(), lib.size.tolist()))
    assert groups == [("a", 1, 2), ("a", 2, 1), ("b", 1, 1), ("b", 2, 1)]  # the skipped query is left out
    i = [j for j in range(len(lib)) if lib.dataset[j] == "a" and lib.expert[j] == 1][0]
    mean = emb[:2].mean(axis=0)
    assert np.allclose(lib.centroids[i], mean / np.linalg.norm(mean), atol=1e-6)
    assert np.allclose(np.linalg.norm(lib.centroids, axis=1), 1.0, atol=1e-6)


def test_k_centroids_per_group():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(5, 0.1, (10, 4)), rng.normal(-5, 0.1, (10, 4))]).astype(np.float32)
    lib = build_library(emb, np.ones(20, dtype=int), np.array(["a"] * 20, dtype=object), k=2)
    assert len(lib) == 2 and sorted(lib.size.tolist()) == [10, 10]
