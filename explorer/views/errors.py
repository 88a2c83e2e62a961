"""The Error analysis page's data: the evaluated queries a strategy routes worst, filtered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import query_table
from ..workspace import Workspace
from ..gap import query_gaps
from .common import metadata_columns, oracle_strategies


def error_table(ws: Workspace, strategy: str, measure: str | None = None, datasets: list[str] | None = None,
                wrong_only: bool = False, margin_below: float | None = None, hurt_only: bool = False,
                skip_all_ties: bool = False) -> pd.DataFrame:
    """query_table filtered: datasets, routed != oracle (not among the tied best), margin below x, routed worse
    than base, every-expert-tie rows left out. Index = row."""
    measure = ws.measure(measure)
    t = query_table(ws, strategy, measure)
    if datasets:
        t = t[t["dataset"].isin(datasets)]
    if wrong_only:
        t = t[~t["correct"]]
    if margin_below is not None:
        t = t[t["margin"].fillna(np.inf) < margin_below]
    if hurt_only:
        t = t[t["routed_score"] < t["base_score"] - 1e-12]
    if skip_all_ties:
        t = t[~t["all_tie"]]
    t = t.assign(delta_base=t["routed_score"] - t["base_score"])
    return t


def error_view(ws: Workspace, strategy: str, measure: str | None = None, datasets: list[str] | None = None,
               wrong_only: bool = False, margin_below: float | None = None, hurt_only: bool = False,
               skip_all_ties: bool = False, metadata: tuple[tuple[str, tuple[str, ...]], ...] = (),
               rows: tuple[int, ...] | None = None, gap_part: str | None = None) -> pd.DataFrame:
    """error_table with every metadata field as a column (`kind`, `meta:<field>`) and filtered by `metadata`:
    ((field, (value, ...)), ...) keeps the queries whose field takes one of the values (an empty tuple: any).
    `rows` (a cohort) keeps those queries only; the column `gap_part` says which part of the instance-oracle gap
    each query falls in (explorer.gap; empty without an oracle), and `gap_part` keeps one part only."""
    measure = ws.measure(measure)
    t = error_table(ws, strategy, measure, datasets, wrong_only, margin_below, hurt_only, skip_all_ties)
    if rows is not None:
        t = t[t.index.isin([int(r) for r in rows])]
    if oracle_strategies(ws):
        t = t.assign(gap_part=query_gaps(ws, strategy, measure, t.index)["part"].reindex(t.index))
        if gap_part:
            t = t[t["gap_part"] == gap_part]
    else:
        t = t.assign(gap_part="")
    for column, field in metadata_columns(ws).items():
        if column != "kind":
            t[column] = ws.metadata(field).to_numpy()[t.index.to_numpy()]
    for field, values in metadata:
        if values and field in ws.metadata_fields:
            column = "kind" if field == "kind" else f"meta:{field}"
            t = t[t[column].astype(str).isin([str(v) for v in values])]
    return t
