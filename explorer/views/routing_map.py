"""The Routing map page's data: 2-D points of pilots and queries, and a selection's queries."""

from __future__ import annotations

import pandas as pd

from ..analysis import query_table
from ..workspace import Workspace


def layout_methods(ws: Workspace) -> list[str]:
    methods = list(pd.unique(ws.layout["method"]))
    return sorted(methods, key=lambda m: (m != "umap", m))


def map_points(ws: Workspace, method: str, strategy: str, measure: str | None = None) -> dict[str, pd.DataFrame]:
    """{'queries': every query with x, y, role, dataset, qid, text, label (pilot queries: their best-expert
    label), and for evaluated ones routed, oracle, correct, regret, margin; 'pilots': centroids with x, y}."""
    measure = ws.measure(measure)
    lay = ws.layout[ws.layout["method"] == method]
    q = ws.queries.set_index("row")
    pts = lay[lay["item"] == "query"].set_index("ref")[["x", "y"]]
    queries = q.loc[pts.index, ["qid", "dataset", "role", "text", "kind"]].join(pts)
    labels = ws.pilot_labels.set_index("row")["label"]
    queries["label"] = labels.reindex(queries.index)
    qt = query_table(ws, strategy, measure)
    for col in ("routed", "oracle", "correct", "regret", "margin", "routed_score", "oracle_score", "base_score"):
        queries[col] = qt[col].reindex(queries.index)
    queries.index.name = "row"
    queries = queries.reset_index()
    pil = lay[lay["item"] == "pilot"].set_index("ref")[["x", "y"]]
    pilots = ws.pilots.set_index("pilot").join(pil).reset_index()
    return {"queries": queries, "pilots": pilots}


def sample_points(frame: pd.DataFrame, limit: int, seed: int = 0) -> tuple[pd.DataFrame, bool]:
    """At most `limit` rows, a seeded sample (stable across reruns); returns (frame, sampled)."""
    if len(frame) <= limit:
        return frame, False
    return frame.sample(n=limit, random_state=seed).sort_index(), True


def selected_queries(ws: Workspace, rows, strategy: str, measure: str | None = None) -> pd.DataFrame:
    """The evaluated queries among `rows` (in that order): row, qid, dataset, kind, text, routed, oracle,
    regret (fraction), routed_score, oracle_score."""
    measure = ws.measure(measure)
    t = query_table(ws, strategy, measure)
    keep = [int(r) for r in dict.fromkeys(rows) if int(r) in t.index]
    out = t.loc[keep, ["qid", "dataset", "kind", "text", "routed", "oracle", "regret", "routed_score",
                       "oracle_score"]]
    out.index.name = "row"
    return out.reset_index()
