"""The Error analysis page's data: the evaluated queries a strategy routes worst, filtered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import query_table
from ..workspace import Workspace
from ..gap import GAP_PARTS, query_gaps
from .base import Page, UrlParam, metadata_choice, register_page
from .common import (COHORT, COHORT_NAME, DATASETS, MEASURE, SKIP_TIES, STRATEGY, cohort_info, metadata_columns,
                     oracle_strategies)


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
    t = t.assign(routed=t["decision"])  # a mixture as its weights ('mix: a 0.60 · b 0.40'), never one name
    if rows is not None:
        t = t[t.index.isin([int(r) for r in rows])]
    t = t.assign(gap_part=_gap_parts(ws, strategy, measure, t.index))
    if gap_part:
        t = t[t["gap_part"] == gap_part]
    for column, field in metadata_columns(ws).items():
        if column != "kind":
            t[column] = ws.metadata(field).to_numpy()[t.index.to_numpy()]
    for field, values in metadata:
        if values and field in ws.metadata_fields:
            column = "kind" if field == "kind" else f"meta:{field}"
            t = t[t[column].astype(str).isin([str(v) for v in values])]
    return t


def _gap_parts(ws: Workspace, strategy: str, measure: str, rows: pd.Index) -> pd.Series:
    """Which part of the instance-oracle gap each query falls in (explorer.gap); "" without an oracle, and for a
    query the strategy does not score (a run read from a file, on a dataset it does not rank)."""
    if not oracle_strategies(ws) or not len(rows):
        return pd.Series("", index=rows, dtype=object)
    return query_gaps(ws, strategy, measure, rows)["part"].reindex(rows).fillna("")


# --- the page -------------------------------------------------------------------------------------------------
SORTS = {"regret": "regret (largest first)", "delta_base": "routed − base (worst first)",
         "margin": "margin (smallest first)", "dataset": "dataset, query id"}
ASCENDING = {"regret": False, "margin": True, "delta_base": True, "dataset": True}


def sorted_errors(t: pd.DataFrame, sort: str) -> pd.DataFrame:
    """The error table in the page's order (stable, so ties keep the dataset's query order)."""
    by = ["dataset", "qid"] if sort == "dataset" else sort
    return t.sort_values(by, ascending=ASCENDING[sort], kind="stable")


def data(ws: Workspace, v: dict) -> dict:
    """The filtered, sorted queries (index = row), how many of all, the mean regret, how many routing hurt, and
    the table as CSV (every column, unrounded)."""
    metadata = tuple((f, tuple(vals)) for f, vals in metadata_choice(v, ws).items())
    margin = float(v["margin"]) if v["use_margin"] else None
    cohort = cohort_info(ws, v)
    t = error_view(ws, v["strategy"], v["measure"], list(v["datasets"]), v["wrong"], margin, v["hurt"],
                   v["skip_ties"], metadata, cohort["rows"] if cohort else None, v["gap"] or None)
    t = sorted_errors(t, v["sort"])
    return {"strategy": v["strategy"], "measure": v["measure"], "queries": t, "cohort": cohort, "total": int(len(ws.eval_rows())),
            "mean_regret": float(t["regret"].mean()) if len(t) else float("nan"),
            "hurt": int((t["delta_base"] < 0).sum()), "csv": t.to_csv(index_label="row")}


PAGE = register_page(Page(
    "errors", "Error analysis", ":material/bug_report:", "explorer/ui/errors.py", data,
    (STRATEGY, MEASURE, DATASETS,
     UrlParam("wrong", "bool", default=False, doc="only queries whose routed expert is not among the tied best"),
     UrlParam("hurt", "bool", default=False, doc="only queries where routing scores below the base model"),
     SKIP_TIES,
     UrlParam("use_margin", "bool", default=False, doc="only queries whose routing margin is below `margin`"),
     UrlParam("margin", "float", default=0.05, min=0.0, max=1e6,
              doc="the margin (top-1 − top-2 router score, never negative) `use_margin` filters below"),
     UrlParam("sort", choices=lambda ws, v: list(SORTS), default="regret", doc="the order of the table"),
     UrlParam("gap", choices=lambda ws, v: ["", *GAP_PARTS], default="",
              doc="only the queries of one part of the instance-oracle gap (the Oracle gap page; none: every part)"),
     COHORT, COHORT_NAME),
    metadata_filters=True,
    caption="Every test query under one strategy: routed, oracle and base scores, regret and margin, filtered.", order=50))
