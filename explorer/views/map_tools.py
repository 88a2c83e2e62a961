"""The Routing map's tools: how each expert moves a query (arrows on the map), finding a query by id or text, and
the layout's fixed extent (so the axes stay put when a filter hides points)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from ..gap import TOLERANCE, layout_extent
from ..projection import layout_reference, place
from ..workspace import Workspace

__all__ = ["ARROW_NEIGHBOURS", "MAX_ARROW_QUERIES", "SEARCH_LIMIT", "MAX_SEARCH_CHARS", "EFFECTS", "expert_arrows",
           "search_queries", "map_extent"]

ARROW_NEIGHBOURS = 10  # reference points averaged to place an expert's embedding (projection.place)
MAX_ARROW_QUERIES = 12  # queries whose arrows one map draws (each has one arrow per expert)
SEARCH_LIMIT = 50  # queries a map search lists
MAX_SEARCH_CHARS = 200
EFFECTS = ("better", "worse", "same")  # an expert's score on the query against base's


def expert_arrows(ws: Workspace, rows: Iterable[int], method: str, measure: str | None = None,
                  k: int = ARROW_NEIGHBOURS) -> pd.DataFrame:
    """For each evaluated query of `rows` (the first MAX_ARROW_QUERIES) and each expert: the query's stored point on
    the layout (x0, y0) and where the expert moves it (x1, y1). The move is measured by projection.place among
    every other query's base embedding: the expert's query embedding is placed, the base embedding is placed the
    same way, and the arrow is the difference of the two, drawn from the stored point (the query's own point is
    left out of its neighbours, or it would hold both embeddings on itself). With the query's base and expert
    scores under `measure`, their difference and its effect (one of EFFECTS). Only the experts that embed queries
    (not BM25, nor runs read from files). Columns: row, qid, dataset, expert,
    x0, y0, x1, y1, base_score, score, delta, effect."""
    measure = ws.measure(measure)
    layout_extent(ws, method)  # a clear error naming the layouts
    evaluated = set(ws.eval_rows()["row"].astype(int))
    keep = [r for r in dict.fromkeys(int(r) for r in rows) if r in evaluated][:MAX_ARROW_QUERIES]
    cols = ["row", "qid", "dataset", "expert", "x0", "y0", "x1", "y1", "base_score", "score", "delta", "effect"]
    if not keep:
        return pd.DataFrame(columns=cols)
    ref_emb, ref_xy = layout_reference(ws, method)
    lay = ws.layout[(ws.layout["method"] == method) & (ws.layout["item"] == "query")].set_index("ref")
    scores = ws.metric_rows(list(ws.encoders), keep).pivot(index="row", columns="system", values=measure)
    q = ws.queries.set_index("row")
    own = pd.Series(np.arange(len(lay)), index=np.sort(lay.index.to_numpy())).reindex(keep).fillna(-1).astype(int)
    start = lay.reindex(keep)[["x", "y"]].to_numpy()
    base_xy = place(ws.embedding_rows("base", keep), ref_emb, ref_xy, k, own.to_numpy())
    frames = []
    for expert in [e for e in ws.encoders[1:] if ws.has_embedding(e)]:  # a lexical expert embeds nothing
        moved = start + place(ws.embedding_rows(expert, keep), ref_emb, ref_xy, k, own.to_numpy()) - base_xy
        frames.append(pd.DataFrame({"row": keep, "expert": expert, "x0": start[:, 0], "y0": start[:, 1],
                                    "x1": moved[:, 0], "y1": moved[:, 1],
                                    "score": scores[expert].reindex(keep).to_numpy()}))
    out = pd.concat(frames, ignore_index=True)
    out["qid"] = q["qid"].reindex(out["row"]).to_numpy()
    out["dataset"] = q["dataset"].reindex(out["row"]).to_numpy()
    out["base_score"] = scores["base"].reindex(out["row"]).to_numpy()
    out["delta"] = out["score"] - out["base_score"]
    out["effect"] = np.select([out["delta"] > TOLERANCE, out["delta"] < -TOLERANCE], EFFECTS[:2], EFFECTS[2])
    return out[cols]


def search_queries(ws: Workspace, text: str, limit: int = SEARCH_LIMIT) -> pd.DataFrame:
    """The evaluated queries a map search finds: those whose id equals `text` first, then those whose text contains
    it (both ignoring case), at most `limit`. Columns: row, qid, dataset, text, match ('id' or 'text')."""
    wanted = " ".join(str(text or "").split())[:MAX_SEARCH_CHARS].casefold()
    ev = ws.eval_rows()[["row", "qid", "dataset", "text"]]
    if not wanted:
        return ev.iloc[:0].assign(match=[])
    by_id = ev["qid"].str.casefold() == wanted
    by_text = ev["text"].str.casefold().str.contains(wanted, regex=False) & ~by_id
    return pd.concat([ev[by_id].assign(match="id"), ev[by_text].assign(match="text")]).head(limit).reset_index(
        drop=True)


def map_extent(ws: Workspace, method: str, pad: float = 0.05) -> dict[str, list[float]]:
    """The map's axis ranges: every point of the layout (pilots and queries) with `pad` of its span around it, so
    that the axes do not move when a filter hides points."""
    x0, x1, y0, y1 = layout_extent(ws, method)
    px, py = pad * ((x1 - x0) or 1), pad * ((y1 - y0) or 1)
    return {"x": [x0 - px, x1 + px], "y": [y0 - py, y1 + py]}
