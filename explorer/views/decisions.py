"""The Routing decisions page's data: where each strategy sends each dataset's queries, against the oracle."""

from __future__ import annotations

import pandas as pd

from ..analysis import AVERAGE, query_table
from ..workspace import Workspace
from .base import Page, register_page
from .common import COHORT, COHORT_NAME, MEASURE, SKIP_TIES, STRATEGY, cohort_info

ALL_TIE = "(every expert ties)"  # the confusion matrix's own row for queries where any choice is right


def decisions_view(ws: Workspace, strategy: str, skip_all_ties: bool = False, measure: str | None = None,
                   rows: tuple[int, ...] | None = None) -> dict:
    """Everything the Routing decisions page draws, over one set of queries (all test queries, or those where not
    every expert of the strategy's choice set ties): `queries` (analysis.query_table rows kept), `experts` (the
    choice set, analysis.choice_set), `shares` (dataset x encoder share of the kept queries sent to each encoder,
    mixtures by weight), `oracle_shares` (dataset x expert: the instance oracle over the same choice set, a query's
    share split equally among its tied-best experts, analysis.oracle_weights), `report` (per dataset accuracy, regret, all_tie share, queries; the
    average row: the mean over datasets, and the total of queries), `confusion` (oracle x routed counts, a
    mixture by its largest weight), `pairs` (every (oracle, routed) pair of wrongly routed queries, most frequent
    first), `left_out` (queries where every expert ties, when they are left out). `rows` (a cohort): those
    queries only."""
    measure = ws.measure(measure)
    from ..analysis import choice_set, oracle_weights

    t = query_table(ws, strategy, measure)
    if rows is not None:
        t = t[t.index.isin([int(r) for r in rows])]
    left_out = int(t["all_tie"].sum()) if skip_all_ties else 0
    if skip_all_ties:
        t = t[~t["all_tie"]]
    experts = choice_set(ws, strategy)
    d = ws.decision_rows([strategy]).set_index("row").reindex(t.index)
    weights = d[[f"weight:{e}" for e in ws.systems]].set_axis(ws.systems, axis=1).assign(dataset=t["dataset"])
    shares = weights.groupby("dataset").mean().reindex(ws.datasets)
    shares = shares.loc[:, [e for e in ws.systems if e in experts or (shares[e] > 0).any()]].fillna(0.0)
    oracle = oracle_weights(ws, strategy, measure).reindex(t.index).assign(dataset=t["dataset"])
    oracle_shares = oracle.groupby("dataset").mean().reindex(index=ws.datasets, columns=experts).fillna(0.0)
    g = t.groupby("dataset", sort=False)
    report = pd.DataFrame({"accuracy": g["correct"].mean(), "regret": g["regret"].mean(),
                           "all_tie": g["all_tie"].mean(), "queries": g.size()}).reindex(ws.datasets)
    report["queries"] = report["queries"].fillna(0).astype(int)
    average = report[["accuracy", "regret", "all_tie"]].mean(axis=0)
    report.loc[AVERAGE] = [average["accuracy"], average["regret"], average["all_tie"], int(report["queries"].sum())]
    report["queries"] = report["queries"].astype(int)
    conf = confusion(ws, t)
    wrong = t[~t["correct"]].drop(columns="routed").rename(columns={"primary": "routed"})
    if wrong.empty:
        pairs = pd.DataFrame(columns=["oracle", "routed", "queries", "mean_regret", "example"])
    else:
        pg = wrong.groupby(["oracle", "routed"], sort=False)
        pairs = pd.DataFrame({"queries": pg.size(), "mean_regret": pg["regret"].mean(),
                              "example": pg["text"].first()}).reset_index()
        pairs = pairs.sort_values(["queries", "mean_regret"], ascending=False, kind="stable").reset_index(drop=True)
    return {"queries": t, "experts": experts, "shares": shares, "oracle_shares": oracle_shares, "report": report,
            "confusion": conf, "pairs": pairs, "left_out": left_out}


def confusion(ws: Workspace, t: pd.DataFrame) -> pd.DataFrame:
    """Oracle expert x routed expert counts (a mixture by its largest weight); the queries where every expert
    ties are their own last row, not counted under the first expert."""
    oracle = t["oracle"].where(~t["all_tie"], ALL_TIE)
    order = [e for e in ws.systems if e in set(t["oracle"]) | set(t["primary"])]
    rows = order + ([ALL_TIE] if t["all_tie"].any() else [])
    return pd.crosstab(oracle, t["primary"]).reindex(index=rows, columns=order, fill_value=0)


def data(ws: Workspace, v: dict) -> dict:
    cohort = cohort_info(ws, v)
    view = decisions_view(ws, v["strategy"], v["skip_ties"], v["measure"], cohort["rows"] if cohort else None)
    return {"strategy": v["strategy"], "measure": v["measure"], "cohort": cohort, **view}


PAGE = register_page(Page(
    "decisions", "Routing decisions", ":material/alt_route:", "explorer/ui/decisions.py", data,
    (STRATEGY, MEASURE, SKIP_TIES, COHORT, COHORT_NAME),
    caption="Where each strategy sends each dataset's test queries, against the instance oracle over the same "
            "experts.", order=30))
