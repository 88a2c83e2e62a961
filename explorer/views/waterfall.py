"""The per-query difference plot: every evaluated query's score under B minus under A, sorted (a waterfall)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..workspace import Workspace
from .inspector import pair_counts, strategy_pair

__all__ = ["MAX_BARS", "difference_waterfall"]

MAX_BARS = 2000  # bars one waterfall draws; past it, queries evenly spaced along the sorted order


def difference_waterfall(ws: Workspace, a: str, b: str, measure: str | None = None,
                         rows: Iterable[int] | None = None, limit: int = MAX_BARS) -> dict:
    """B − A on every evaluated query (of `rows`, a cohort, if given), sorted from the largest loss to the largest
    gain (ties by dataset and query id): `bars` (position in that order, row, qid, dataset, text, delta; at most
    `limit`, evenly spaced along the order when there are more: `sampled`), `queries`, `counts` (pair_counts) and
    `mean` (the mean difference over all of them)."""
    pair = strategy_pair(ws, a, b, measure)
    if rows is not None:
        pair = pair[pair["row"].isin([int(r) for r in rows])]
    pair = pair.dropna(subset=["delta"]).sort_values(["delta", "dataset", "qid"], kind="stable").reset_index(drop=True)
    pair.insert(0, "position", np.arange(len(pair)))
    sampled = len(pair) > limit
    shown = pair.iloc[np.unique(np.linspace(0, len(pair) - 1, limit).round().astype(int))] if sampled else pair
    return {"bars": shown[["position", "row", "qid", "dataset", "text", "delta"]].reset_index(drop=True),
            "queries": len(pair), "sampled": sampled, "counts": pair_counts(pair),
            "mean": float(pair["delta"].mean()) if len(pair) else float("nan"), "a": a, "b": b}

