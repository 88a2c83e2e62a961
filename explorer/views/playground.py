"""The Playground page's data: a typed query's live decisions, and how far it is from the pilots."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..workspace import Workspace
from .base import Page, UrlParam, register_page
from .common import default_strategy, real_strategies, strategy_families
from .routing_map import layout_methods, layout_points


def live_decisions(ws: Workspace, result, choice_of) -> pd.DataFrame:
    """A LiveResult's decisions as a table: strategy, family, choice (an encoder, or 'a 0.6 + b 0.4'), margin."""
    fam = strategy_families(ws)
    rows = []
    for name, dec in result.decisions.items():
        choice = choice_of(dec)
        text = choice_label(choice)
        margin = float(dec.margin[0]) if len(dec.margin) else float("nan")
        rows.append({"strategy": name, "family": fam.get(name, ""), "choice": text, "margin": margin})
    return pd.DataFrame(rows)


def choice_label(choice) -> str:
    """A live decision in words: an expert, an adapter mixture 'a 0.60 + b 0.40', or a fusion of runs
    'mix: a 0.60 · b 0.40'."""
    if choice is None:
        return "base"
    if isinstance(choice, str):
        return choice
    if hasattr(choice, "fusion"):  # explorer.live.FusedChoice: the rankings of its experts fused
        return "mix: " + " · ".join(f"{k} {v:.2f}" for k, v in choice.items())
    return " + ".join(f"{k} {v:.2f}" for k, v in choice.items())


def live_strategies(ws: Workspace) -> list[str]:
    """The strategies that can route a typed query: not the oracles (no judgements), not those that decide from
    every expert's stored run (post-retrieval: a typed query has none), and not the runs read from files."""
    from ..routing import all_strategies, chosen_settings

    multitask = next((e["name"] for e in ws.experts if e["multi_task"]), None)
    runs = {r.name for r in all_strategies(ws.encoders, multitask, ws.strategies,
                                           ws.manifest["routing"].get("variants"), chosen=chosen_settings(ws.manifest),
                                           external=ws.external_datasets)
            if r.needs_runs or not r.typed_queries}
    return [s for s in real_strategies(ws) if s not in runs]


def pilot_best_similarity(ws: Workspace, role: str = "pilot") -> np.ndarray:
    """Each query of `role` (pilot or eval): its best cosine similarity to any pilot centroid (base embeddings).
    A pilot query is part of its own group's centroid, which would flatter it against a new query; so with one
    centroid per group (pilot_k = 1) its own centroid is recomputed without it (leave one out)."""
    rows = ws.queries.loc[ws.queries["role"] == role, "row"].to_numpy()
    if not len(rows) or not len(ws.pilot_centroids):
        return np.zeros(0, dtype=np.float32)
    emb = np.asarray(ws.embeddings("base")[rows], dtype=np.float32)
    sims = emb @ ws.pilot_centroids.T
    if role != "pilot" or int(ws.manifest["routing"].get("pilot_k", 1)) != 1:
        return sims.max(axis=1)
    labels = ws.pilot_labels.set_index("row")["label"].reindex(rows).fillna("").to_numpy()
    datasets = ws.queries.set_index("row").loc[rows, "dataset"].to_numpy()
    pilots = ws.pilots
    for j, (ds, expert) in enumerate(zip(pilots["dataset"], pilots["expert"])):
        members = np.flatnonzero((datasets == ds) & (labels == expert))
        if len(members) < 2:
            continue
        total = emb[members].sum(axis=0)
        rest = total[None, :] - emb[members]  # the group's sum without each member
        rest /= np.maximum(np.linalg.norm(rest, axis=1, keepdims=True), 1e-12)
        sims[members, j] = (emb[members] * rest).sum(axis=1)
    return sims.max(axis=1)


OOD_PERCENTILE = 5.0


def out_of_domain(ws: Workspace, best: float, low: float = OOD_PERCENTILE) -> dict:
    """A typed query's best similarity to any pilot centroid against the pilot queries' own best similarities:
    best, percentile (share of pilot queries at or below it, %), the `low`-th percentile, the test queries'
    percentile too, and `likely_ood` (below the `low`-th percentile of pilot queries)."""
    ref = pilot_best_similarity(ws, "pilot")
    test = pilot_best_similarity(ws, "eval")
    if not len(ref):
        return {"best": float(best), "percentile": float("nan"), "threshold": float("nan"),
                "test_percentile": float("nan"), "likely_ood": False, "pilots": 0}
    threshold = float(np.percentile(ref, low))
    return {"best": float(best), "percentile": float(100 * np.mean(ref <= best)), "threshold": threshold,
            "test_percentile": float(100 * np.mean(test <= best)) if len(test) else float("nan"),
            "likely_ood": bool(best < threshold), "pilots": int(len(ref)), "low": float(low),
            "median": float(np.median(ref))}


# --- the page -------------------------------------------------------------------------------------------------
AUTO, ALL = "routed", "*"  # not dataset names (names are letters, digits, - and _)
CORPUS_LABELS = {AUTO: "the routed expert's corpus", ALL: "every corpus (merged)"}
NONE = "(none)"
K = 10


def _live_strategies(ws: Workspace, _v: dict) -> list[str]:
    return live_strategies(ws)


def _default_live(ws: Workspace, _v: dict) -> str:
    live = live_strategies(ws)
    return default_strategy(ws) if default_strategy(ws) in live else (live or [None])[0]


def corpus_of(ws: Workspace, choice) -> tuple[str, str]:
    """The corpus a routed choice searches by default: its expert's own dataset (a mixture: the largest weight's),
    or every corpus for the base model and for an expert of several datasets. Returns (dataset or ALL, why)."""
    name = choice if isinstance(choice, str) else (max(choice, key=choice.get) if choice else None)
    datasets = next((e["datasets"] for e in ws.experts if e["name"] == name), [])
    if len(datasets) == 1 and datasets[0] in ws.datasets:
        return datasets[0], f"the corpus of {name}, the routed expert"
    return ALL, f"every corpus, since {name or 'base'} belongs to no single dataset"


def data(ws: Workspace, v: dict) -> dict:
    """A typed query routed live: every real strategy's decision, its similarity to every pilot, where it falls on
    each layout, how far it is from the pilots, and the top documents under the chosen expert, the base model and
    `other` in the corpus `dataset` names (the routed expert's own by default). Without a query: the pilots."""
    from ..live import QueryError, check_query, router_for

    out = {"strategies": live_strategies(ws), "pilots": ws.pilots, "out_of_domain_percentile": OOD_PERCENTILE,
           "query": None}
    if not (v["q"] or "").strip():
        return out
    try:
        text = check_query(v["q"])
    except QueryError as err:
        return {**out, "error": str(err)}
    router = router_for(ws)
    start = time.perf_counter()
    result = router.route(text)
    choice = router.choice(result.decisions[v["strategy"]]) if v["strategy"] in result.decisions else None
    corpus, why = corpus_of(ws, choice) if v["dataset"] == AUTO else (v["dataset"], "the corpus picked")
    columns = {f"chosen by {v['strategy']}: {choice_label(choice)}": choice, "base": None}
    if v["other"] != NONE and v["other"] != choice:
        columns[v["other"]] = v["other"]
    search = (lambda c: router.search_all(text, c, k=K)) if corpus == ALL else (
        lambda c: router.search(text, c, corpus, k=K))
    nearest = result.nearest_pilot
    searches = {label: search(c) for label, c in columns.items()}
    timings = {**result.timings, "total": time.perf_counter() - start}
    return {**out, "query": text, "decisions": live_decisions(ws, result, router.choice), "left_out": router.left_out,
            "similarity": result.pilot_similarity, "coords": result.coords, "timings": timings,
            "nearest": nearest, "out_of_domain": out_of_domain(ws, nearest["similarity"]) if nearest else None,
            "corpus": corpus, "corpus_reason": why, "searches": searches,
            "map": layout_points(ws, v["layout"]) if v["layout"] else None}


PAGE = register_page(Page(
    "playground", "Playground", ":material/keyboard:", "explorer/ui/playground.py", data,
    (UrlParam("q", "text", default="", max_length=100_000, doc="the typed query (at most 2,000 characters are "
              "routed; a longer one is refused with a message)"),
     UrlParam("strategy", choices=_live_strategies, default=_default_live, shared=True,
              doc="the strategy whose chosen expert searches (oracles need judgements: not here)"),
     UrlParam("dataset", choices=lambda ws, v: [AUTO, ALL, *ws.datasets], default=AUTO,
              doc="the corpus searched: the routed expert's own (routed), every corpus (*), or one dataset"),
     UrlParam("other", choices=lambda ws, v: [NONE, *ws.encoders[1:]], default=NONE,
              doc="another expert to search with beside the chosen one and the base model"),
     UrlParam("layout", choices=lambda ws, v: layout_methods(ws), default=lambda ws, v: (layout_methods(ws) or
                                                                                         [None])[0],
              doc="the map the query is placed on")),
    caption="Route any typed query live and search under the chosen expert.", order=70))
