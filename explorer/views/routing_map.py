"""The Routing map page's data: 2-D points of pilots and queries, and a selection's queries."""

from __future__ import annotations

import socket

import pandas as pd

from ..analysis import query_table
from ..workspace import UMAP_PENDING, Workspace, process_running, process_started
from .base import Page, UrlParam, metadata_choice, register_page
from .common import COHORT, COHORT_NAME, DATASETS, MEASURE, STRATEGY, cohort_info


def layout_methods(ws: Workspace) -> list[str]:
    methods = list(pd.unique(ws.layout["method"]))
    return sorted(methods, key=lambda m: (m != "umap", m))


def umap_state(ws: Workspace) -> str:
    """The UMAP layout of a workspace written before it (manifest layout.umap = "pending"): "pending" while the build
    that wrote the workspace still runs on this machine, "stopped" when it is gone without landing it; "" otherwise
    (UMAP is there, or was not asked for). The builder is known by its pid, host and start time, so a reused pid
    does not pass for it."""
    layout = ws.manifest.get("layout") or {}
    if layout.get("umap") != UMAP_PENDING:
        return ""
    who = layout.get("pending") or {}
    started = process_started(who.get("pid", 0)) if who.get("host") == socket.gethostname() else None
    ours = started is not None and float(who.get("started", 0)) - 3600 <= started <= float(who.get("started", 0)) + 1
    return "pending" if ours and process_running(int(who["pid"])) else "stopped"


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


def layout_points(ws: Workspace, method: str) -> dict[str, pd.DataFrame]:
    """The test queries (row, qid, dataset, text, x, y) and the pilot centroids (with x, y) on one layout: the
    backdrop a new point is placed on."""
    lay = ws.layout[ws.layout["method"] == method]
    pts = lay[lay["item"] == "query"].set_index("ref")[["x", "y"]]
    q = ws.queries.set_index("row")
    queries = q.loc[pts.index, ["qid", "dataset", "role", "text"]].join(pts)
    queries.index.name = "row"
    queries = queries[queries["role"] == "eval"].reset_index()
    pilots = ws.pilots.set_index("pilot").join(lay[lay["item"] == "pilot"].set_index("ref")[["x", "y"]])
    return {"queries": queries, "pilots": pilots.reset_index()}


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


# --- the page -------------------------------------------------------------------------------------------------
MAX_DRAWN = 3000  # test queries and pilot queries drawn at most (each): a seeded sample beyond
COLOUR_BY = {"routed": "routed expert", "oracle": "oracle expert", "dataset": "source dataset",
             "correct": "correct / incorrect routing", "regret": "regret"}


def data(ws: Workspace, v: dict) -> dict:
    """The map's points after the page's filters: `tests` and `train` (pilot queries) drawn (a seeded sample of at
    most MAX_DRAWN each), `pilots` (centroids of the datasets shown), `sampled` (a sample was drawn),
    `layout_sampled` (the layout was fitted on a sample), and every query of the datasets shown (`queries`)."""
    from .common import metadata_filter

    if not layout_methods(ws):
        return {"layout": None, "queries": pd.DataFrame(), "tests": pd.DataFrame(), "train": pd.DataFrame(),
                "pilots": pd.DataFrame(), "sampled": False, "layout_sampled": False}
    points = map_points(ws, v["layout"], v["strategy"], v["measure"])
    q, pilots = points["queries"], points["pilots"]
    if v["datasets"]:
        q = q[q["dataset"].isin(v["datasets"])]
        pilots = pilots[pilots["dataset"].isin(v["datasets"])]
    tests = q[q["role"] == "eval"]
    chosen = metadata_choice(v, ws)
    if chosen:
        tests = tests[tests["row"].isin(metadata_filter(ws, chosen))]
    train = q[q["role"] != "eval"] if v["pilots"] else q.iloc[:0]
    tests, sampled_t = sample_points(tests, MAX_DRAWN)
    train, sampled_p = sample_points(train, MAX_DRAWN)
    return {"layout": v["layout"], "queries": q, "tests": tests, "train": train, "pilots": pilots,
            "sampled": sampled_t or sampled_p, "layout_sampled": bool(ws.manifest.get("layout", {}).get("sampled")),
            "max_drawn": MAX_DRAWN, **_tools(ws, v)}


def _tools(ws: Workspace, v: dict) -> dict:
    """The map's tools: its fixed `extent`, the queries a search `found`, the `cohort` (ringed), and the expert
    `arrows` of the query found (`focus`) or of a cohort of at most MAX_ARROW_QUERIES queries (None when off or
    there are more; `arrow_rows`: how many queries asked for arrows)."""
    from .map_tools import MAX_ARROW_QUERIES, expert_arrows, map_extent, search_queries

    cohort = cohort_info(ws, v)
    wanted = [v["focus"]] if v["focus"] is not None else list(cohort["rows"] if cohort else [])
    arrows = (expert_arrows(ws, wanted, v["layout"], v["measure"])
              if v["arrows"] and wanted and len(wanted) <= MAX_ARROW_QUERIES else None)
    found = search_queries(ws, v["find"]) if v["find"].strip() else None
    return {"extent": map_extent(ws, v["layout"]), "found": found,
            "cohort": cohort, "arrows": arrows, "arrow_rows": len(wanted)}


LAYOUT = UrlParam("layout", choices=lambda ws, v: layout_methods(ws), doc="the 2-D layout: umap or pca",
                  default=lambda ws, v: (layout_methods(ws) or [None])[0])
COLOUR = UrlParam("colour", choices=lambda ws, v: list(COLOUR_BY), default="routed", doc="what colours test queries")
PILOTS = UrlParam("pilots", "bool", default=True, doc="draw the pilot training queries")
ARROWS = UrlParam("arrows", "bool", default=True,
                  doc="draw the expert arrows of the query found (or of a small cohort)")
FIND = UrlParam("find", "text", default="", max_length=200, doc="find test queries by id or by words of their text")
FOCUS = UrlParam("focus", choices=lambda ws, v: ws.eval_rows()["row"].astype(int).tolist(), default=None, cast=int,
                 doc="the test query (its row) marked on the map, with its expert arrows")

PAGE = register_page(Page(
    "map", "Routing map", ":material/scatter_plot:", "explorer/ui/routing_map.py", data,
    (LAYOUT, STRATEGY, MEASURE, COLOUR, DATASETS, PILOTS, ARROWS, FIND, FOCUS, COHORT, COHORT_NAME),
    metadata_filters=True,
    caption="Every query placed by its base-encoder embedding beside the pilot centroids, coloured by routing.", order=20))
