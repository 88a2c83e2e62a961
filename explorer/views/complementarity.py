"""The Complementarity page's data: what each expert finds that another misses on one dataset, what every expert
misses, and the documents each expert gains or loses against base (explorer.complementarity)."""

from __future__ import annotations

from typing import Iterable

from ..complementarity import DOC_LIST, TOP_K, complementarity
from ..workspace import Workspace

__all__ = ["complementarity_view"]


def complementarity_view(ws: Workspace, dataset: str, rows: Iterable[int] | None = None) -> dict:
    """complementarity() of `dataset` (its queries of `rows`, a cohort, if given) at depth TOP_K, with `listed`
    documents per expert each way."""
    rows = None if rows is None else [int(r) for r in rows]
    return {**complementarity(ws, dataset, TOP_K, rows, DOC_LIST), "listed": DOC_LIST}
