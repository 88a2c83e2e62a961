"""What only one expert finds: the judged-relevant documents in each encoder's top-k and not in another's.

For one dataset's evaluated queries, every judged-relevant (query, document) pair (grade > 0) is found or not by each
encoder: it is found when the document is in that encoder's stored run at rank <= depth (ranks in trec_eval's order,
as the TREC exports write them). From that one boolean table: for each pair of encoders, the pairs found by one and
not the other; the pairs only one encoder finds; the pairs every encoder misses; and, document by document, what
each expert gains or loses against base over the queries that judge it relevant. Pure functions over a Workspace.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .workspace import Workspace

TOP_K = 10  # "found" = in the top TOP_K (the depth nDCG@10 looks at)
DOC_LIST = 10  # documents listed per expert, each way (gained, lost)


def relevant_found(ws: Workspace, dataset: str, depth: int = TOP_K, rows: Iterable[int] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(relevant, found): `relevant` is every judged-relevant (row, doc) pair of the dataset's evaluated queries
    (columns row, qid, doc (corpus position), doc_id, grade); `found` is a boolean frame aligned with it, one column
    per encoder."""
    ws.dataset_info(dataset)  # a clear error naming the datasets
    ev = ws.eval_rows(dataset)
    if rows is not None:
        ev = ev[ev["row"].isin([int(r) for r in rows])]
    qrels = ws.qrels_table
    qrels = qrels[(qrels["dataset"] == dataset) & (qrels["role"] == "eval") & (qrels["grade"] > 0)]
    positions = pd.Series(np.arange(len(ws.docs(dataset))), index=ws.docs(dataset)["doc_id"].to_numpy())
    rel = qrels.merge(ev[["row", "qid"]], on="qid")[["row", "qid", "doc_id", "grade"]]
    rel = rel[rel["doc_id"].isin(positions.index)]  # a judged document outside the corpus is never found
    rel = rel.assign(doc=positions.reindex(rel["doc_id"]).to_numpy().astype(np.int64), grade=rel["grade"].astype(int))
    rel = rel.sort_values(["row", "doc_id"], kind="stable").reset_index(drop=True)
    runs = ws.run_rows(list(ws.encoders), ev["row"].tolist()) if len(ev) else ws.run_rows(list(ws.encoders), [])
    top = runs[runs["rank"] <= depth]
    key = pd.MultiIndex.from_arrays([rel["row"].to_numpy(), rel["doc"].to_numpy()])
    found = pd.DataFrame(False, index=rel.index, columns=list(ws.encoders))
    for system, part in top.groupby("system", sort=False):
        if system in found.columns:
            hit = pd.MultiIndex.from_arrays([part["row"].to_numpy(), part["doc"].to_numpy().astype(np.int64)])
            found[system] = key.isin(hit)
    return rel, found


def pair_matrix(found: pd.DataFrame) -> pd.DataFrame:
    """Encoder A (rows) x encoder B (columns): the relevant pairs in A's top-k and not in B's."""
    f = found.to_numpy(dtype=np.int64)
    return pd.DataFrame(f.T @ (1 - f), index=found.columns, columns=found.columns)


def complementarity(ws: Workspace, dataset: str, depth: int = TOP_K, rows: Iterable[int] | None = None,
                    listed: int = DOC_LIST) -> dict:
    """Everything the Complementarity page shows for one dataset: `pairs` (pair_matrix), `per_encoder` (found,
    only (found by it alone), share of the relevant pairs), `missed` (the pairs no encoder finds: row, qid,
    doc_id, grade, title: document_labels), `documents` (document_moves: per expert, the `listed` largest net
    gains and losses against base), `relevant` (the number of relevant pairs) and `queries`."""
    rel, found = relevant_found(ws, dataset, depth, rows)
    f = found.to_numpy(dtype=bool)
    alone = f & (f.sum(axis=1, keepdims=True) == 1)
    per = pd.DataFrame({"found": f.sum(axis=0), "only": alone.sum(axis=0),
                        "share": f.mean(axis=0) if len(f) else np.zeros(f.shape[1])}, index=found.columns)
    per.index.name = "encoder"
    titles = document_labels(ws, dataset)
    missed = rel[~f.any(axis=1)] if len(f) else rel
    missed = missed.assign(title=titles[missed["doc"].to_numpy()])[["row", "qid", "doc_id", "grade", "title"]]
    return {"dataset": dataset, "depth": depth, "relevant": len(rel), "queries": int(rel["row"].nunique()),
            "pairs": pair_matrix(found), "per_encoder": per, "missed": missed.reset_index(drop=True),
            "documents": document_moves(rel, found, titles, listed)}


def document_labels(ws: Workspace, dataset: str, length: int = 100) -> np.ndarray:
    """Each document of a corpus (by position) as a table shows it: its title, or the start of its text when it
    has none."""
    docs = ws.docs(dataset)
    titles = docs["title"].fillna("").astype(str).str.strip()
    return np.where(titles != "", titles, docs["text"].fillna("").astype(str).str.slice(0, length)).astype(object)


def document_moves(rel: pd.DataFrame, found: pd.DataFrame, titles: np.ndarray, listed: int = DOC_LIST
                   ) -> pd.DataFrame:
    """Per expert, the documents it most consistently gains (in its top-k, not base's) and loses (in base's, not
    its own) over the queries that judge them relevant: expert, doc_id, title, gained, lost, net, judged (queries),
    direction ('gains' or 'loses'), row (a query where it moved, to open in the inspector)."""
    cols = ["expert", "doc_id", "title", "gained", "lost", "net", "judged", "direction", "row"]
    if "base" not in found.columns or rel.empty:
        return pd.DataFrame(columns=cols)
    base = found["base"].to_numpy()
    frames = []
    for expert in [c for c in found.columns if c != "base"]:
        mine = found[expert].to_numpy()
        moved = rel.assign(gained=mine & ~base, lost=~mine & base)
        moved = moved.assign(example=np.where(moved["gained"] | moved["lost"], moved["row"], -1))
        g = moved.groupby(["doc", "doc_id"], sort=False).agg(gained=("gained", "sum"), lost=("lost", "sum"),
                                                             judged=("row", "size"), row=("example", "max"))
        g = g.reset_index().assign(net=lambda x: x["gained"] - x["lost"], expert=expert)
        g["title"] = titles[g["doc"].to_numpy()]
        up = g[g["net"] > 0].sort_values(["net", "gained", "doc_id"], ascending=[False, False, True]).head(listed)
        down = g[g["net"] < 0].sort_values(["net", "lost", "doc_id"], ascending=[True, False, True]).head(listed)
        frames += [up.assign(direction="gains"), down.assign(direction="loses")]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return out[cols].astype({"gained": int, "lost": int, "net": int, "judged": int, "row": int})
