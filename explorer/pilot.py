"""RouterRetriever's pilot embedding library (Algorithm 1).

(1) every expert's per-query nDCG@10 on every pilot query; (2) each query's best expert; (3) within each source
dataset, the centroid(s) of the base embeddings of the queries sharing a label. Tie handling is an option because
about half of all pilot queries tie across every expert on real data, and first-maximum hands them all to expert 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .settings import Param

TIE_RULES = {
    "first": "ties go to the first expert in config order (the paper)",
    "skip-all": "queries where every expert ties are left out; other ties go to the first",
    "skip": "every tied query is left out",
    "own-dataset": "ties go to the query's own dataset expert when it is among the best, else the first",
    "random": "ties go to a random best expert (seeded)",
    "auto": "the rule above that routes held-out pilot queries best (cross-validation on the pilot queries only)",
}
FIXED_RULES = tuple(r for r in TIE_RULES if r != "auto")
CV_SPLITS = 10  # seeded half/half splits of each dataset's pilot queries for `ties = "auto"`, both directions


# The pilot library's settings, declared once; every router built on the library's labels declares them.
PILOT_PARAMS = (
    Param("ties", str, "auto", "how a pilot query tied between experts is labelled", choices=tuple(TIE_RULES)),
    Param("pilot_k", int, 1, "centroids per (dataset, best expert) group (k-means above 1)", min=1, max=1000),
    Param("normalize_pilots", bool, True, "cosine to L2-normalised centroids (false: raw means)"),
)


def best_labels(scores: np.ndarray, candidates: list[int], datasets: np.ndarray, own_expert: dict[str, int],
                ties: str = "first", seed: int = 0) -> np.ndarray:
    """Best candidate column per query (-1 = left out). `scores` is (n, n_encoders); columns outside
    `candidates` are ignored."""
    if ties not in FIXED_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {', '.join(FIXED_RULES)} (\"auto\" is "
                         "resolved by choose_tie_rule first)")
    cand = np.asarray(candidates)
    if len(cand) == 0 or len(scores) == 0:
        return np.full(len(scores), -1, dtype=np.int64)
    sub = scores[:, cand]
    best = sub.max(axis=1, keepdims=True)
    is_best = np.isclose(sub, best, rtol=0, atol=1e-9)
    n_best = is_best.sum(axis=1)
    labels = cand[np.argmax(is_best, axis=1)]
    if ties == "skip-all":
        labels[n_best == len(cand)] = -1
    elif ties == "skip":
        labels[n_best > 1] = -1
    elif ties == "own-dataset":
        col = {c: j for j, c in enumerate(cand)}
        for i in np.flatnonzero(n_best > 1):
            own = own_expert.get(str(datasets[i]))
            if own in col and is_best[i, col[own]]:
                labels[i] = own
    elif ties == "random":
        rng = np.random.default_rng(seed)
        for i in np.flatnonzero(n_best > 1):
            labels[i] = cand[rng.choice(np.flatnonzero(is_best[i]))]
    return labels


@dataclass
class PilotLibrary:
    centroids: np.ndarray  # (m, d), L2-normalised by default
    expert: np.ndarray  # (m,) encoder column of the label
    dataset: np.ndarray  # (m,) source dataset name
    size: np.ndarray  # (m,) number of pilot queries behind the centroid

    def __len__(self) -> int:
        return len(self.expert)


def build_library(emb: np.ndarray, labels: np.ndarray, datasets: np.ndarray, k: int = 1, seed: int = 0,
                  normalize: bool = True) -> PilotLibrary:
    """k centroids per (source dataset, best expert) group of base query embeddings (k=1: the group mean).
    Centroids are L2-normalised (cosine routing) unless `normalize` is off: then a diffuse group's shorter mean
    counts for less, which weighs the large catch-all groups that tie-breaking creates."""
    cents, experts, sources, sizes = [], [], [], []
    keep = labels >= 0
    for ds in dict.fromkeys(datasets[keep].tolist()):
        in_ds = keep & (datasets == ds)
        for label in np.unique(labels[in_ds]):
            group = emb[in_ds & (labels == label)]
            if k <= 1 or len(group) <= 1:
                parts = [(group.mean(axis=0), len(group))]
            else:
                from sklearn.cluster import KMeans

                n = min(k, len(group))
                fit = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(group)
                parts = [(fit.cluster_centers_[c], int((fit.labels_ == c).sum())) for c in range(n)]
            for centre, count in parts:
                cents.append(centre / max(np.linalg.norm(centre), 1e-12) if normalize else centre)
                experts.append(int(label))
                sources.append(ds)
                sizes.append(count)
    d = emb.shape[1] if emb.ndim == 2 else 0
    return PilotLibrary(np.asarray(cents, dtype=np.float32).reshape(-1, d), np.asarray(experts, dtype=np.int64),
                        np.asarray(sources, dtype=object), np.asarray(sizes, dtype=np.int64))


def held_out_score(emb: np.ndarray, scores: np.ndarray, candidates: list[int], datasets: np.ndarray,
                   own_expert: dict[str, int], ties: str, train: np.ndarray, test: np.ndarray, k: int = 1,
                   seed: int = 0, normalize: bool = True) -> float:
    """Mean score of the `test` pilot queries when a library built from the `train` ones under tie rule `ties`
    routes them as pilot-mean does (the expert with the highest mean similarity to its centroids); a query the
    library cannot route (no centroid) keeps the base model's score (column 0)."""
    labels = best_labels(scores[train], candidates, datasets[train], own_expert, ties, seed)
    lib = build_library(emb[train], labels, datasets[train], k=k, seed=seed, normalize=normalize)
    if len(lib) == 0:
        return float(scores[test, 0].mean())
    sim = emb[test] @ lib.centroids.T
    experts = np.unique(lib.expert)
    mean_sim = np.stack([sim[:, lib.expert == e].mean(axis=1) for e in experts], axis=1)
    chosen = experts[np.argmax(mean_sim, axis=1)]
    return float(scores[test, chosen].mean())


def pilot_folds(datasets: np.ndarray, seed: int, splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds over pilot queries: each dataset's queries split in half (seeded), `splits` times,
    both directions; (train, test) positions."""
    rng = np.random.default_rng(seed)
    folds = []
    for _ in range(splits):
        a, b = [], []
        for ds in dict.fromkeys(datasets.tolist()):
            rows = rng.permutation(np.flatnonzero(datasets == ds))
            a.extend(rows[: len(rows) // 2])
            b.extend(rows[len(rows) // 2:])
        folds += [(np.sort(a).astype(np.int64), np.sort(b).astype(np.int64)),
                  (np.sort(b).astype(np.int64), np.sort(a).astype(np.int64))]
    return folds


def choose_tie_rule(emb: np.ndarray, scores: np.ndarray, candidates: list[int], datasets: np.ndarray,
                    own_expert: dict[str, int], seed: int = 0, k: int = 1, normalize: bool = True,
                    splits: int = CV_SPLITS) -> tuple[str, dict[str, float]]:
    """The tie rule of `ties = "auto"`: each dataset's pilot queries split in half (seeded, `splits` times, both
    directions); a library from one half routes the other; the rule with the best mean held-out score wins (the
    first in TIE_RULES order on a tie). Reads pilot queries only, never evaluated ones. Returns (rule, scores)."""
    if len(candidates) == 0 or len(emb) < 2:
        return "first", {}
    folds = pilot_folds(datasets, seed, splits)
    result = {}
    for rule in FIXED_RULES:
        result[rule] = float(np.mean([held_out_score(emb, scores, candidates, datasets, own_expert, rule, tr, te, k,
                                                     seed, normalize) for tr, te in folds if len(tr) and len(te)]))
    best = max(result.values())
    return next(r for r in FIXED_RULES if np.isclose(result[r], best, rtol=0, atol=1e-12)), result
