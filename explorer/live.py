"""Live routing of a typed query (the Playground): the only model work the app does.

Base pass -> every strategy's decision (oracles excepted: a new query has no judgements) -> the chosen expert's
pass -> search of the chosen dataset's index. Routers, the pilot library and fitted classifiers are prepared once
per workspace and reused for every query.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .analysis import WhatIf
from .capabilities import LEXICAL
from .data import Corpus
from .encoders import Encoder, ExpertChoice
from .fusion import Fusion, pool_of
from .index import Run, search
from .model_folders import model_problem
from .projection import layout_reference, place
from .routing import Decision, all_strategies, chosen_settings
from .workspace import Workspace, WorkspaceError

MAX_QUERY_CHARS = 2000


class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class FusedChoice:
    """A decision that mixes experts by fusing their rankings (RRF, CombSUM, a soft router, a hybrid): each
    weighted system is searched and the rankings are fused as the build fused the stored runs."""

    weights: tuple[tuple[str, float], ...]
    fusion: Fusion

    def items(self):
        return self.weights


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
        self._lexical: dict = {}
        self.lexical = [e["name"] for e in ws.experts if LEXICAL in e["capabilities"]]
        for expert in ws.experts:
            if expert["name"] not in encoder.experts and expert["name"] not in self.lexical:
                encoder.load_expert(expert["name"], ws.adapter_dir(expert["name"]), expert["kind"])

    @classmethod
    def open(cls, ws: Workspace) -> "LiveRouter":
        """The workspace's base model and experts; a base model named by the manifest is loaded only if it is the
        bundled one or a safe local sentence-transformers folder (the manifest is someone else's file)."""
        info = ws.manifest["base_model"]
        name = info["name"]
        why = model_problem(name)
        if why:
            raise WorkspaceError(f"{ws.path / 'manifest.json'}: base_model.name {name[:80]!r} {why} (fix: rebuild "
                                 "the workspace with a base model of your own)")
        # a typed query is embedded as the stored ones were (the manifest's precision is checked on opening)
        return cls(ws, Encoder(name, max_seq_length=info.get("max_seq_length", 256),
                               precision=info.get("precision", "float32")))

    @cached_property
    def context(self):
        """Every expert on; runs read from files are no candidates: a typed query has no line in their files."""
        return WhatIf(self.ws).context([e["name"] for e in self.ws.experts], typed=True)

    @cached_property
    def routers(self):
        """Every strategy that can route a typed query: not the oracles (a new query has no judgements) and not
        those that decide from every expert's stored run (post-retrieval): a typed query has none."""
        multitask = next((e["name"] for e in self.ws.experts if e["multi_task"]), None)
        return [r for r in all_strategies(self.ws.encoders, multitask, self.ws.strategies,
                                          self.ws.manifest["routing"].get("variants"),
                                          chosen=chosen_settings(self.ws.manifest),
                                          external=self.ws.external_datasets)
                if not r.uses_oracle and not r.needs_runs and r.typed_queries and r.available(self.context)]

    @property
    def left_out(self) -> list[str]:
        """Strategies of the workspace that live routing does not run besides the oracles: those that decide from
        every expert's stored run (post-retrieval) and the runs read from files (a typed query has no line in
        them)."""
        live = {r.name for r in self.routers}
        return [s["name"] for s in self.ws.manifest["strategies"] if s["name"] not in live and not s.get("uses_oracle")]

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

    def choice(self, decision: Decision) -> ExpertChoice | FusedChoice:
        """The encoder, adapter mixture or fusion of runs a decision selects, for `search`."""
        w = decision.weights[0]
        picked = {self.ws.systems[c]: float(w[c]) for c in np.flatnonzero(w)}
        if len(picked) == 1:
            name = next(iter(picked))
            return None if name == "base" else name
        if decision.fusion is not None:
            return FusedChoice(tuple(picked.items()), decision.fusion)
        return picked

    def lexical_index(self, name: str, dataset: str):
        """A lexical expert's BM25 index of `dataset`, built from the workspace's documents on first use (a
        workspace carries none) with the settings its card names, checked as a config's are."""
        if (name, dataset) not in self._lexical:
            from .experts import EXPERT_KINDS
            from .lexical import build_lexical
            from .settings import Problems, check_table

            kind = next(e["kind"] for e in self.ws.experts if e["name"] == name)
            hp = self.ws.expert_card(name).get("hyper_parameters") or {}
            params = EXPERT_KINDS[kind].params
            problems = Problems()
            settings = check_table({p.name: hp[p.name] for p in params if p.name in hp}, params,
                                   f"experts/{name}/card.json hyper_parameters", problems)
            if problems:
                raise WorkspaceError(f"{self.ws.path}: {problems[0]} (fix: rebuild the workspace)")
            docs = self.ws.docs(dataset)
            passages = Corpus(docs["doc_id"].tolist(), docs["title"].tolist(), docs["text"].tolist()).passages()
            self._lexical[(name, dataset)] = build_lexical(passages, settings, f"{name} on {dataset}")
        return self._lexical[(name, dataset)]

    def search(self, text: str, choice: ExpertChoice | FusedChoice, dataset: str, k: int = 10) -> pd.DataFrame:
        """Top-k documents of `dataset` for `text` under `choice` (an encoder, a lexical expert, an adapter
        mixture, or a fusion of runs): rank, doc_id, title, text, score."""
        text = check_query(text)
        return self._frame(self._ranked(text, choice, dataset, k), dataset)

    def _ranked(self, text: str, choice, dataset: str, k: int) -> Run:
        ids = self.ws.docs(dataset)["doc_id"].tolist()
        if isinstance(choice, FusedChoice):
            return self._fused(text, choice, dataset, k, ids)
        if isinstance(choice, str) and choice in self.lexical:
            return self.lexical_index(choice, dataset).search([text], k, ids)
        return search(self._index(dataset), self.encoder.encode([text], choice), k, ids)

    def _fused(self, text: str, choice: FusedChoice, dataset: str, k: int, ids: list[str]) -> Run:
        """Every weighted system's run of the typed query, fused as the build fuses stored runs."""
        depth = int(self.ws.manifest.get("index", {}).get("depth", 100))
        names = [n for n, _ in choice.weights]
        runs = [self._ranked(text, None if n == "base" else n, dataset, depth) for n in names]
        docs = np.stack([r.docs[0] for r in runs])[:, None, :].astype(np.int64)
        scores = np.stack([r.scores[0] for r in runs])[:, None, :]
        pool = pool_of(docs, scores, np.array([dataset], dtype=object), {dataset: ids})
        fused, fused_scores = pool.run(np.array([[w for _, w in choice.weights]]), choice.fusion, k)
        return Run(fused.astype(np.int32), np.nan_to_num(fused_scores, nan=0.0))

    def _search(self, emb: np.ndarray, dataset: str, k: int) -> pd.DataFrame:
        return self._frame(search(self._index(dataset), emb, k, self.ws.docs(dataset)["doc_id"].tolist()), dataset)

    def _frame(self, run: Run, dataset: str) -> pd.DataFrame:
        docs = self.ws.docs(dataset)
        keep = run.docs[0] >= 0
        rows = run.docs[0][keep]
        out = docs.iloc[rows][["doc_id", "title", "text"]].reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(rows) + 1))
        out["score"] = run.scores[0][keep]
        return out

    def search_all(self, text: str, choice: ExpertChoice | FusedChoice, k: int = 10) -> pd.DataFrame:
        """Top-k documents over every corpus for `text` encoded once under `choice`, merged by score (the same
        query embedding against every index, so scores compare; BM25 and fused scores compare only roughly):
        rank, dataset, doc_id, title, text, score."""
        text = check_query(text)
        if isinstance(choice, FusedChoice) or (isinstance(choice, str) and choice in self.lexical):
            parts = [self._frame(self._ranked(text, choice, d, k), d).assign(dataset=d) for d in self.ws.datasets]
        else:
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


LIVE_TORCH_THREADS = 1
_routers: dict[tuple[str, str], LiveRouter] = {}
_routers_lock = threading.Lock()


def router_for(ws: Workspace) -> LiveRouter:
    """The workspace's live router, made once per process (the base model and its experts loaded, the routers
    fitted by a first query). One query at a time is fastest on one intra-op thread: on 2 cores, two OpenMP
    threads spin against any other load (p95 0.5 s against 20 ms for one short query)."""
    key = (str(ws.path.resolve()), str(ws.manifest.get("created", "")))
    with _routers_lock:
        if key not in _routers:
            import torch

            torch.set_num_threads(LIVE_TORCH_THREADS)
            router = LiveRouter.open(ws)
            router.route("warm up the routers")
            _routers[key] = router
        return _routers[key]
