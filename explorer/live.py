"""Live routing of a typed query (the Playground): the only model work the app does.

Base pass -> every strategy's decision (oracles excepted: a new query has no judgements) -> the chosen expert's
pass -> search of the chosen dataset's index. Routers, the pilot library and fitted classifiers are prepared once
per workspace and reused for every query.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .analysis import WhatIf
from .encoders import Encoder, ExpertChoice
from .index import search
from .model_folders import model_folder_problem
from .projection import layout_reference, place
from .routing import Decision, all_strategies
from .workspace import Workspace, WorkspaceError

MAX_QUERY_CHARS = 2000


class QueryError(ValueError):
    pass


@dataclass
class LiveResult:
    text: str
    decisions: dict[str, Decision]  # strategy -> decision (one row)
    pilot_similarity: pd.DataFrame  # expert, dataset, pilot, similarity
    coords: dict[str, tuple[float, float]]  # layout method -> (x, y)
    timings: dict[str, float]

    @property
    def nearest_pilot(self) -> dict:
        """The pilot centroid most similar to the query: similarity, expert, dataset, pilot (empty without any)."""
        table = self.pilot_similarity
        if table.empty:
            return {}
        r = table.loc[table["similarity"].idxmax()]
        return {"similarity": float(r["similarity"]), "expert": str(r["expert"]), "dataset": str(r["dataset"]),
                "pilot": int(r["pilot"])}


def check_query(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise QueryError("The query is empty: type a few words to route.")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"The query has {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,} "
                         f"(the encoder reads at most 256 tokens anyway). Shorten it.")
    return text


class LiveRouter:
    """Routes new queries over a workspace with a loaded encoder carrying the workspace's experts."""

    def __init__(self, ws: Workspace, encoder: Encoder):
        self.ws = ws
        self.encoder = encoder
        for expert in ws.experts:
            if expert["name"] not in encoder.experts:
                encoder.load_expert(expert["name"], ws.adapter_dir(expert["name"]), expert["kind"])

    @classmethod
    def open(cls, ws: Workspace) -> "LiveRouter":
        """The workspace's base model and experts; a base model named by the manifest is loaded only if it is the
        bundled one or a safe local sentence-transformers folder (the manifest is someone else's file)."""
        info = ws.manifest["base_model"]
        name = info["name"]
        why = None if name == "bundled" else model_folder_problem(name)
        if why:
            raise WorkspaceError(f"{ws.path / 'manifest.json'}: base_model.name {name[:80]!r} {why} (fix: rebuild "
                                 "the workspace with a base model of your own)")
        # a typed query is embedded as the stored ones were (the manifest's precision is checked on opening)
        return cls(ws, Encoder(name, max_seq_length=info.get("max_seq_length", 256),
                               precision=info.get("precision", "float32")))

    @cached_property
    def context(self):
        return WhatIf(self.ws).context([e["name"] for e in self.ws.experts])

    @cached_property
    def routers(self):
        multitask = next((e["name"] for e in self.ws.experts if e["multi_task"]), None)
        return [r for r in all_strategies(self.ws.encoders, multitask, self.ws.strategies,
                                          self.ws.manifest["routing"].get("variants"))
                if not r.uses_oracle and r.available(self.context)]

    @cached_property
    def _layouts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per layout method: the stored queries' base embeddings and coordinates, to place a new query."""
        return {method: layout_reference(self.ws, method) for method in self.ws.layout["method"].unique()}

    def _index(self, dataset: str):
        return self.ws.index(dataset)  # checked: inside the workspace, readable, one row per document

    def route(self, text: str) -> LiveResult:
        text = check_query(text)
        t0 = time.perf_counter()
        emb = self.encoder.encode([text])
        t1 = time.perf_counter()
        decisions = {r.name: r.decide(self.context, emb) for r in self.routers}
        t2 = time.perf_counter()
        table = self.ws.pilots.assign(similarity=self.ws.pilot_centroids @ emb[0])
        coords = {method: tuple(place(emb, refs, xy)[0]) for method, (refs, xy) in self._layouts.items()}
        return LiveResult(text, decisions, table, coords, {"base_encode": t1 - t0, "route": t2 - t1})

    def choice(self, decision: Decision) -> ExpertChoice:
        """The encoder (or mixture) a decision selects, for `search`."""
        w = decision.weights[0]
        picked = {self.ws.encoders[c]: float(w[c]) for c in np.flatnonzero(w)}
        if len(picked) == 1:
            name = next(iter(picked))
            return None if name == "base" else name
        return picked

    def search(self, text: str, choice: ExpertChoice, dataset: str, k: int = 10) -> pd.DataFrame:
        """Top-k documents of `dataset` for `text` encoded under `choice`: rank, doc_id, title, text, score."""
        text = check_query(text)
        emb = self.encoder.encode([text], choice)
        return self._search(emb, dataset, k)

    def _search(self, emb: np.ndarray, dataset: str, k: int) -> pd.DataFrame:
        docs = self.ws.docs(dataset)
        run = search(self._index(dataset), emb, k, docs["doc_id"].tolist())
        keep = run.docs[0] >= 0
        rows = run.docs[0][keep]
        out = docs.iloc[rows][["doc_id", "title", "text"]].reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(rows) + 1))
        out["score"] = run.scores[0][keep]
        return out

    def search_all(self, text: str, choice: ExpertChoice, k: int = 10) -> pd.DataFrame:
        """Top-k documents over every corpus for `text` encoded once under `choice`, merged by score (the same
        query embedding against every index, so scores compare): rank, dataset, doc_id, title, text, score."""
        text = check_query(text)
        emb = self.encoder.encode([text], choice)
        parts = [self._search(emb, d, k).assign(dataset=d) for d in self.ws.datasets]
        merged = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["rank", "doc_id", "title", "text", "score", "dataset"])
        # score descending; ties by dataset order then by their rank in their own corpus (stable, deterministic)
        merged = merged.assign(_d=merged["dataset"].map({d: i for i, d in enumerate(self.ws.datasets)}))
        merged = merged.sort_values(["score", "_d", "rank"], ascending=[False, True, True], kind="stable").head(k)
        merged = merged.drop(columns=["_d", "rank"]).reset_index(drop=True)
        merged.insert(0, "rank", np.arange(1, len(merged) + 1))
        return merged[["rank", "dataset", "doc_id", "title", "text", "score"]]
