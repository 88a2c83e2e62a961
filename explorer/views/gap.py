"""The Oracle gap page's data: how much of the reference-to-oracle gap each strategy closes (with a bootstrap
interval), and where one strategy's gap goes, per dataset and per map region (explorer.gap)."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ..analysis import AVERAGE
from ..gap import (GAP_CONFIDENCE, GAP_PARTS, GAP_RESAMPLES, GAP_SEED, REGION_GRID, gap_closed, gap_decomposition,
                   oracle_name, query_regions, region_decomposition)
from ..workspace import Workspace
from .base import Page, UrlParam, register_page
from .common import COHORT, COHORT_NAME, MEASURE, REFERENCE, STRATEGY, cohort_info, instance_oracle
from .routing_map import layout_methods

__all__ = ["gap_view", "region_cohort"]


def gap_view(ws: Workspace, strategy: str, measure: str | None = None, reference: str | None = None,
             method: str | None = None, rows: Iterable[int] | None = None) -> dict:
    """Everything the Oracle gap page shows: `closed` (gap_closed: every strategy, per dataset and the average),
    `wide` (strategies x datasets + average: % closed), `decomposition` (gap_decomposition of `strategy`),
    `regions` (region_decomposition on layout `method`; empty without a layout), and how it was computed (oracle,
    reference, resamples, seed, confidence, grid)."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    rows = None if rows is None else [int(r) for r in rows]
    closed = gap_closed(ws, measure, reference, rows)
    wide = closed.pivot(index="strategy", columns="dataset", values="closed")
    wide = wide.reindex(index=ws.strategies, columns=[c for c in [*ws.datasets, AVERAGE] if c in wide.columns])
    regions = (region_decomposition(ws, strategy, method, measure, rows) if method else pd.DataFrame())
    return {"oracle": oracle_name(ws), "reference": reference, "measure": measure, "strategy": strategy,
            "closed": closed, "wide": wide, "decomposition": gap_decomposition(ws, strategy, measure, rows),
            "regions": regions, "parts": list(GAP_PARTS), "resamples": GAP_RESAMPLES, "seed": GAP_SEED,
            "confidence": GAP_CONFIDENCE, "grid": REGION_GRID, "layout": method}


def region_cohort(ws: Workspace, method: str, region: str, rows: Iterable[int] | None = None) -> str:
    """The cohort text of one map region's test queries (of `rows`, the cohort in force, if given)."""
    from ..cohort import encode

    regions = query_regions(ws, method)
    keep = set(int(r) for r in (rows if rows is not None else ws.eval_rows()["row"]))
    return encode([int(r) for r in regions.index[regions == region] if int(r) in keep], len(ws.queries))


def data(ws: Workspace, v: dict) -> dict:
    """gap_view of the page's parameters, on the cohort's queries when there is one; `oracle` None (and nothing
    else) for a workspace without an oracle strategy."""
    if instance_oracle(ws) is None:
        return {"oracle": None, "cohort": None}
    cohort = cohort_info(ws, v)
    view = gap_view(ws, v["strategy"], v["measure"], v["reference"], v["layout"], cohort["rows"] if cohort else None)
    return {**view, "cohort": cohort}


LAYOUT = UrlParam("layout", choices=lambda ws, v: layout_methods(ws), doc="the map whose regions the gap is cut by",
                  default=lambda ws, v: (layout_methods(ws) or [None])[0])

PAGE = register_page(Page(
    "gap", "Oracle gap", ":material/stacked_bar_chart:", "explorer/ui/gap.py", data,
    (STRATEGY, MEASURE, REFERENCE, LAYOUT, COHORT, COHORT_NAME),
    caption="How much of the gap between the reference and the instance oracle each strategy closes (bootstrap "
            "interval), and where one strategy's gap goes: routing error, no expert helps, ties; per dataset and "
            "per map region.", order=55))
