"""The Playground page's data: a typed query's live decisions, and how far it is from the pilots."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..workspace import Workspace
from .common import real_strategies, strategy_families


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
    """The strategies that can route a typed query: not the oracles (no judgements) and not those that decide
    from every expert's stored run (post-retrieval: a typed query has none)."""
    from ..routing import all_strategies, chosen_settings

    multitask = next((e["name"] for e in ws.experts if e["multi_task"]), None)
    runs = {r.name for r in all_strategies(ws.encoders, multitask, ws.strategies,
                                           ws.manifest["routing"].get("variants"), chosen_settings(ws.manifest))
            if r.needs_runs}
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
