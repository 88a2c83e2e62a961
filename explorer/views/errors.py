"""The Error analysis page's data: the evaluated queries a strategy routes worst, filtered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import query_table
from ..workspace import Workspace
from .common import metadata_columns


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
               skip_all_ties: bool = False, metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> pd.DataFrame:
    """error_table with every metadata field as a column (`kind`, `meta:<field>`) and filtered by `metadata`:
    ((field, (value, ...)), ...) keeps the queries whose field takes one of the values (an empty tuple: any)."""
    measure = ws.measure(measure)
    t = error_table(ws, strategy, measure, datasets, wrong_only, margin_below, hurt_only, skip_all_ties)
    t = t.assign(routed=t["decision"])  # a mixture as its weights ('mix: a 0.60 · b 0.40'), never one name
    for column, field in metadata_columns(ws).items():
        if column != "kind":
            t[column] = ws.metadata(field).to_numpy()[t.index.to_numpy()]
    for field, values in metadata:
        if values and field in ws.metadata_fields:
            column = "kind" if field == "kind" else f"meta:{field}"
            t = t[t[column].astype(str).isin([str(v) for v in values])]
    return t
