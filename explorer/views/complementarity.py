"""The Complementarity page's data: what each expert finds that another misses on one dataset, what every expert
misses, and the documents each expert gains or loses against base (explorer.complementarity)."""

from __future__ import annotations

from typing import Iterable

from ..complementarity import DOC_LIST, TOP_K, complementarity
from ..workspace import Workspace
from .base import Page, UrlParam, register_page
from .common import COHORT, COHORT_NAME, cohort_info

__all__ = ["complementarity_view"]


def complementarity_view(ws: Workspace, dataset: str, rows: Iterable[int] | None = None) -> dict:
    """complementarity() of `dataset` (its queries of `rows`, a cohort, if given) at depth TOP_K, with `listed`
    documents per expert each way. The encoders compared are the workspace's experts and base (BM25 included):
    a run read from a file is a system without an encoder and is left out."""
    rows = None if rows is None else [int(r) for r in rows]
    return {**complementarity(ws, dataset, TOP_K, rows, DOC_LIST), "listed": DOC_LIST}


def data(ws: Workspace, v: dict) -> dict:
    cohort = cohort_info(ws, v)
    return {**complementarity_view(ws, v["dataset"], cohort["rows"] if cohort else None), "cohort": cohort}


PAGE = register_page(Page(
    "complementarity", "Complementarity", ":material/join_inner:", "explorer/ui/complementarity.py", data,
    (UrlParam("dataset", choices=lambda ws, v: ws.datasets, default=lambda ws, v: ws.datasets[0],
              doc="the dataset whose test queries are compared"), COHORT, COHORT_NAME),
    caption="What only one expert finds: relevant documents in one encoder's top 10 and not another's, those every "
            "encoder misses, and the documents each expert gains or loses against base.", order=56))
