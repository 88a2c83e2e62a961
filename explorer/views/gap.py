"""The Oracle gap page's data: how much of the reference-to-oracle gap each strategy closes (with a bootstrap
interval), and where one strategy's gap goes, per dataset and per map region (explorer.gap)."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ..analysis import AVERAGE
from ..gap import (GAP_CONFIDENCE, GAP_PARTS, GAP_RESAMPLES, GAP_SEED, REGION_GRID, gap_closed, gap_decomposition,
                   oracle_name, region_decomposition)
from ..workspace import Workspace

__all__ = ["gap_view"]


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
