"""A synthetic workspace of any size, for benchmarks of the read side (what-if, tables, page times).

Embeddings are clustered per dataset and every expert is a little better on its own dataset, so routing has
structure. Every encoder (and a lexical BM25 stand-in) has a stored run of every query: its relevant documents sit
higher the better it is on that query, among documents drawn from a pool the encoders share (so their runs overlap
as real experts' do), and its metrics are computed from those runs. Decisions come from the real routers
(explorer.routing), fused strategies are fused from the runs, so the what-if has real stored scores to mask and
real runs to fuse again. Fused (mix:) runs are not stored: nothing the benchmarks time reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from explorer import WORKSPACE_FORMAT_VERSION
from explorer.analysis import significance_tables
from explorer.capabilities import LEXICAL, MERGE_WEIGHTS
from explorer.config import routing_defaults
from explorer.fusion import pool_of
from explorer.rankmetrics import Judgements, evaluate
from explorer.routing import all_strategies, routing_context
from explorer.workspace import Workspace, WorkspaceWriter, inside, save_table

MEASURES = ["nDCG@10", "R@100", "RR@10", "AP"]
VARIANTS = [{"name": "pilot-mean/soft", "router": "pilot-mean", "soft": True},
            {"name": "pilot-mean/hybrid", "router": "pilot-mean", "hybrid": True}]


def _queries(rng, datasets: list[str], n_pilot: int, n_eval: int, dim: int) -> tuple[pd.DataFrame, np.ndarray]:
    centres = rng.normal(size=(len(datasets), dim))
    rows = []
    for role, per in (("pilot", [n_pilot] * len(datasets)),
                      ("eval", np.bincount(rng.integers(0, len(datasets), n_eval), minlength=len(datasets)))):
        for k, n in enumerate(per):
            rows += [(f"{role}-{k}-{i}", datasets[k], role) for i in range(n)]
    q = pd.DataFrame(rows, columns=["qid", "dataset", "role"])
    q.insert(0, "row", np.arange(len(q)))
    q["text"] = "synthetic query " + q["qid"]
    q["kind"] = "plain"
    emb = centres[q["dataset"].str[1:].astype(int).to_numpy()] + 1.5 * rng.normal(size=(len(q), dim))
    return q, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _runs(rng, quality: np.ndarray, n_docs: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(docs, scores): every encoder's run of every query, from a pool of 3 x depth documents per query
    that the encoders share; the query's two relevant documents (positions 0 and 1 of its corpus) enter an
    encoder's run at a rank that is the higher the better the encoder is on it."""
    E, N = quality.shape
    pool = np.argpartition(rng.random((N, n_docs - 2)), 3 * depth, axis=1)[:, :3 * depth] + 2
    docs = np.empty((E, N, depth), dtype=np.int64)
    for e in range(E):
        pick = np.argsort(rng.random((N, 3 * depth)) + np.linspace(0, 1.5, 3 * depth), axis=1)[:, :depth]
        docs[e] = np.take_along_axis(pool, pick, axis=1)
        for rel in (0, 1):
            rank = np.minimum(rng.geometric(np.clip(quality[e], 0.02, 0.98)) - 1 + 2 * rel, 10 * depth)
            keep = np.flatnonzero(rank < depth)
            docs[e, keep, rank[keep]] = rel
    scale = np.where(np.arange(E) == E - 1, 10.0, 1.0)[:, None, None]  # the lexical stand-in scores like BM25
    scores = (scale * (0.9 - 0.004 * np.arange(depth) + 0.002 * rng.random((E, N, depth)))).astype(np.float32)
    return docs, -np.sort(-scores, axis=2)


def _metrics(docs: np.ndarray, judged: Judgements) -> np.ndarray:
    E, N, _ = docs.shape
    rows = np.arange(N)
    cube = np.empty((E, N, len(MEASURES)))
    for e in range(E):
        grades = judged.grades(rows, docs[e])
        cube[e] = np.stack([evaluate(m, grades, judged, rows) for m in MEASURES], axis=1)
    return cube


def _cube_without_runs(rng, quality: np.ndarray) -> np.ndarray:
    """Per-query metrics drawn directly (coarse, so ties happen as with real nDCG@10): the pages-at-scale
    benchmarks, which add runs of their own (bench.scale.add_runs) and time no fusion."""
    score = np.round(quality * 10) / 10
    return np.stack([score, np.clip(score + 0.2, 0, 1), score, score * 0.8], axis=2)


def synthetic_workspace(out: Path, n_eval: int = 10_000, n_pilot_per_dataset: int = 300, n_datasets: int = 8,
                        dim: int = 384, seed: int = 0, depth: int = 100, n_docs: int = 2000,
                        with_runs: bool = True, with_map: bool = False) -> Path:
    """`with_runs = False`: no runs, qrels or corpora (metrics drawn directly) and no strategy that fuses runs or
    reads them: the workspace of the page benchmarks, cheap at 50,000 queries. `with_map`: every expert's query
    embeddings too (_expert_embeddings), which the routing map's expert arrows read."""
    if n_docs < 3 * depth + 2:
        raise ValueError(f"n_docs = {n_docs}: at least 3 x depth + 2 = {3 * depth + 2} (the shared pool of each query)")
    rng = np.random.default_rng(seed)
    datasets = [f"d{i}" for i in range(n_datasets)]
    experts = [f"e{i}" for i in range(n_datasets)]
    encoders = ["base", *experts, "multi-task", "bm25"]
    q, emb = _queries(rng, datasets, n_pilot_per_dataset, n_eval, dim)
    k_of = q["dataset"].str[1:].astype(int).to_numpy()
    base = rng.beta(2, 2, size=len(q))
    quality = np.stack([np.clip(base + (np.where(k_of == e - 1, 0.15, -0.03) if 1 <= e <= n_datasets else 0.0)
                                + rng.normal(0, 0.1, len(q)), 0.02, 0.98) for e in range(len(encoders))])
    ids = [f"doc{j:05d}" for j in range(n_docs)]
    judged = Judgements(len(q), np.repeat(np.arange(len(q)), 2), np.tile([0, 1], len(q)), np.tile([2, 1], len(q)))
    ds = q["dataset"].to_numpy().astype(object)
    if with_runs:
        docs, scores = _runs(rng, quality, n_docs, depth)
        cube, pool = _metrics(docs, judged), pool_of(docs, scores, ds, {d: ids for d in datasets})
    else:
        docs = scores = pool = None
        cube = _cube_without_runs(rng, quality)
    lora, lexical = [MERGE_WEIGHTS], [LEXICAL]  # what each kind can do, as a build records it
    records = ([{"name": e, "kind": "lora", "capabilities": lora, "candidate": True, "multi_task": False,
                 "datasets": [d]} for e, d in zip(experts, datasets)]
               + [{"name": "multi-task", "kind": "lora", "capabilities": lora, "candidate": False,
                   "multi_task": True, "datasets": datasets},
                  {"name": "bm25", "kind": "bm25", "capabilities": lexical, "candidate": False, "multi_task": False,
                   "datasets": []}])
    routing = {**routing_defaults(), "variants": VARIANTS, "soft_k": 2, "soft_temperature": 0.05}
    pilot = np.flatnonzero(q["role"] == "pilot")
    pilot_judged = Judgements(len(q), np.repeat(pilot, 2), np.tile([0, 1], len(pilot)), np.tile([2, 1], len(pilot)))
    ctx = routing_context(encoders, records, experts, dict(zip(datasets, experts)), emb, ds, q["role"].to_numpy(),
                          cube[:, :, 0].T, routing, runs=pool, pilot_judged=pilot_judged, depth=depth)
    routers = [r for r in all_strategies(encoders, "multi-task", variants=VARIANTS) if not r.merges_adapters
               and r.available(ctx) and (with_runs or not (r.needs_runs or r.fusion(ctx)))]
    ev = np.flatnonzero(q["role"] == "eval")
    routed = [(r.name, ev, dec, _values(dec, cube, pool, judged, ev, depth))
              for r in routers for dec in [r.decide(ctx, emb[ev], ev)]]
    _write(out, q, emb, encoders, records, ctx, routers, routed, cube, docs, scores, ids, depth, n_eval)
    if with_map:
        _expert_embeddings(out, q, emb, encoders, records, rng)
    return out


def _expert_embeddings(out: Path, q: pd.DataFrame, emb: np.ndarray, encoders: list[str], records: list[dict],
                       rng) -> None:
    """One query embedding array per expert that embeds (not the lexical stand-in), written one at a time: each
    pulls every query a little towards its dataset's mean embedding (multi-task: towards the mean of them all)."""
    from explorer.workspace import encoder_file, save_array

    datasets = q["dataset"].to_numpy()
    mean = {d: emb[datasets == d].mean(axis=0) for d in dict.fromkeys(datasets.tolist())}
    for r in records:
        if LEXICAL in r["capabilities"]:
            continue
        pull = np.mean([mean[d] for d in r["datasets"]], axis=0)
        moved = emb + 0.3 * pull / np.linalg.norm(pull) + 0.05 * rng.normal(size=emb.shape).astype(np.float32)
        save_array(out / "embeddings" / encoder_file(encoders.index(r["name"])),
                   (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32))


def _write(out: Path, q, emb, encoders, records, ctx, routers, routed, cube, docs, scores, ids, depth, n_eval):
    """The workspace's files, through the build's own writer."""
    ds = q["dataset"].to_numpy().astype(object)
    datasets = list(dict.fromkeys(ds.tolist()))
    experts = [r["name"] for r in records if r["candidate"]]
    out.mkdir(parents=True, exist_ok=True)
    writer = WorkspaceWriter(out)  # the build's own writer: the same file names and columns
    writer.table("queries.parquet", q)
    writer.routed(routed, encoders, MEASURES)
    writer.metrics(encoders, cube, MEASURES)
    if docs is not None:
        _write_runs(writer, out, q, encoders, docs, scores, ids, depth)
    else:  # the corpora's ids all the same: the table checks read each corpus's size (bench.scale.add_runs replaces them)
        for d in datasets:
            save_table(inside(out, "datasets", d) / "docs.parquet", pd.DataFrame({"doc_id": ids, "title": "",
                                                                                 "text": ""}))
    writer.query_embeddings([emb] + [None] * (len(encoders) - 1))
    lib = ctx.library  # the pilot library and a plain 2-D layout (two coordinates), so the map pages draw
    writer.pilots(lib, encoders, np.flatnonzero(q["role"] == "pilot"), ctx.labels)
    points = np.concatenate([lib.centroids, emb]) if len(lib) else emb
    writer.layout({"pca": points[:, :2]}, len(lib), len(q))
    writer.manifest({
        "format_version": WORKSPACE_FORMAT_VERSION, "title": f"synthetic {n_eval} queries",
        "datasets": [{"name": d} for d in datasets], "encoders": encoders, "experts": records,
        "candidates": experts, "own_expert": dict(zip(datasets, experts)), "base_model": {"name": "bundled"},
        "strategies": [r.record(ctx) for r in routers], "routing": {**ctx.params, "ties_chosen": ctx.tie_choice[0]},
        "measures": MEASURES, "reference": "base", "index": {"depth": depth}})
    writer.significance(significance_tables(Workspace(out), "base"))  # as a build stores it


def _write_runs(writer, out: Path, q, encoders, docs, scores, ids, depth) -> None:
    """qrels, the corpora (ids only: tie order and the runs' documents) and every encoder's run."""
    ds = q["dataset"].to_numpy().astype(object)
    writer.table("qrels.parquet", pd.DataFrame({"dataset": np.repeat(ds, 2), "role": np.repeat(q["role"], 2),
                                                "qid": np.repeat(q["qid"], 2), "doc_id": ids[:2] * len(q),
                                                "grade": np.tile([2, 1], len(q))}))
    for d in dict.fromkeys(ds.tolist()):
        save_table(inside(out, "datasets", d) / "docs.parquet", pd.DataFrame({"doc_id": ids, "title": "", "text": ""}))
    for e, name in enumerate(encoders):
        valid = docs[e] >= 0
        writer.table("runs.parquet", pd.DataFrame({
            "system": name, "row": np.repeat(np.arange(len(q)), depth)[valid.ravel()],
            "rank": np.tile(np.arange(1, depth + 1), len(q))[valid.ravel()], "doc": docs[e][valid],
            "score": scores[e][valid]}))


def _values(dec, cube: np.ndarray, pool, judged: Judgements, ev: np.ndarray, depth: int) -> np.ndarray:
    """Every measure of a decision on the evaluated queries: a hard choice's stored metrics, a mixture's fused run
    scored (as the build does, on arrays that equal trec_eval)."""
    chosen = dec.chosen
    values = cube[np.maximum(chosen, 0), ev].copy()
    mixed = np.flatnonzero(chosen < 0)
    if len(mixed) and dec.fusion is not None:
        fused, _ = pool.run(dec.weights[mixed], dec.fusion, depth, ev[mixed])
        grades = judged.grades(ev[mixed], fused)
        values[mixed] = np.stack([evaluate(m, grades, judged, ev[mixed]) for m in MEASURES], axis=1)
    return values
