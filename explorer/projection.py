"""2-D layouts of base embeddings (UMAP, PCA) and placing a new point on a stored layout.

Large sets are fitted on a seeded sample and the rest transformed in, so layout time stays bounded. A new query
is placed by similarity-weighted k-nearest neighbours on the stored coordinates: no fitted model has to be kept,
and the workspace never holds a pickle.
"""

from __future__ import annotations

import numpy as np


def pca_layout(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    if len(emb) < 2:
        return np.zeros((len(emb), 2), dtype=np.float32)
    return PCA(n_components=2, random_state=seed).fit_transform(emb).astype(np.float32)


def umap_layout(emb: np.ndarray, max_points: int = 5000, n_neighbors: int = 15, seed: int = 0
                ) -> tuple[np.ndarray, bool]:
    """UMAP coordinates (cosine); returns (coords, sampled) where sampled says the fit used a subset."""
    n = len(emb)
    if n < 5:
        return pca_layout(emb, seed), False
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), metric="cosine", random_state=seed,
                        init="spectral" if n > n_neighbors + 2 else "random")
    if n <= max_points:
        return reducer.fit_transform(emb).astype(np.float32), False
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, max_points, replace=False))
    coords = np.empty((n, 2), dtype=np.float32)
    coords[sample] = reducer.fit_transform(emb[sample])
    rest = np.setdiff1d(np.arange(n), sample)
    coords[rest] = reducer.transform(emb[rest])
    return coords, True


SAME_POINT = 1e-6  # an embedding within this cosine distance of a reference point lands on that point


def place(points: np.ndarray, ref_emb: np.ndarray, ref_coords: np.ndarray, k: int = 10,
          exclude: np.ndarray | None = None) -> np.ndarray:
    """Coordinates for new embeddings: the similarity-weighted mean of their k nearest reference points (an
    embedding that is one of the reference points, within SAME_POINT, lands exactly on it). `exclude`: per point,
    one reference index left out of its neighbours (-1: none), e.g. a stored query's own point."""
    sims = points @ ref_emb.T
    if exclude is not None:
        left_out = np.flatnonzero(np.asarray(exclude) >= 0)
        sims[left_out, np.asarray(exclude)[left_out]] = -np.inf
    k = min(k, len(ref_emb) - (0 if exclude is None else 1))
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = np.empty((len(points), 2), dtype=np.float32)
    for i, idx in enumerate(nearest):
        s = sims[i, idx]
        if s.max() >= 1 - SAME_POINT:
            out[i] = ref_coords[idx[np.argmax(s)]]
            continue
        w = np.exp((s - s.max()) / 0.05)
        out[i] = (w[:, None] * ref_coords[idx]).sum(axis=0) / w.sum()
    return out


def layout_reference(ws, method: str) -> tuple[np.ndarray, np.ndarray]:
    """A workspace's stored layout as the reference to place new points on: the base embeddings of its queries
    (ordered by row) and their (x, y) under `method`."""
    layout = ws.layout
    q = layout[(layout["method"] == method) & (layout["item"] == "query")].sort_values("ref")
    return np.ascontiguousarray(ws.embeddings("base")[q["ref"].to_numpy()]), q[["x", "y"]].to_numpy()
