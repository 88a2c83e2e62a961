"""A synthetic workspace of any size, for benchmarks of the read side (what-if, tables, page times).

Embeddings are clustered per dataset and every expert is a little better on its own dataset, so routing has
structure. Decisions come from the real routers (explorer.routing), so what-if has real stored scores to mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from explorer import WORKSPACE_FORMAT_VERSION
from explorer.config import routing_defaults
from explorer.routing import all_strategies, routing_context
from explorer.analysis import significance_tables
from explorer.capabilities import MERGE_WEIGHTS
from explorer.workspace import Workspace, WorkspaceWriter

MEASURES = ["nDCG@10", "R@100", "RR@10", "AP"]


def synthetic_workspace(out: Path, n_eval: int = 10_000, n_pilot_per_dataset: int = 300, n_datasets: int = 8,
                        dim: int = 384, seed: int = 0, with_map: bool = False) -> Path:
    """`with_map`: also the pilot library, a layout and every expert's query embeddings (_map_tables)."""
    rng = np.random.default_rng(seed)
    datasets = [f"d{i}" for i in range(n_datasets)]
    experts = [f"e{i}" for i in range(n_datasets)]
    encoders = ["base", *experts, "multi-task"]
    centres = rng.normal(size=(n_datasets, dim))
    rows = []
    for role, per in (("pilot", [n_pilot_per_dataset] * n_datasets),
                      ("eval", np.bincount(rng.integers(0, n_datasets, n_eval), minlength=n_datasets))):
        for k, n in enumerate(per):
            rows += [(f"{role}-{k}-{i}", datasets[k], role) for i in range(n)]
    q = pd.DataFrame(rows, columns=["qid", "dataset", "role"])
    q.insert(0, "row", np.arange(len(q)))
    q["text"] = "synthetic query " + q["qid"]
    q["kind"] = "plain"
    k_of = q["dataset"].str[1:].astype(int).to_numpy()
    emb = centres[k_of] + 1.5 * rng.normal(size=(len(q), dim))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    base = rng.beta(2, 2, size=len(q))
    cube = np.empty((len(encoders), len(q), len(MEASURES)))
    for e in range(len(encoders)):
        bonus = np.where(k_of == e - 1, 0.08, -0.02) if 1 <= e <= n_datasets else 0.0
        score = np.clip(base + bonus + rng.normal(0, 0.1, len(q)), 0, 1)
        score = np.round(score * 10) / 10  # coarse, so ties happen as with real nDCG@10
        cube[e] = np.stack([score, np.clip(score + 0.2, 0, 1), score, score * 0.8], axis=1)
    ev = np.flatnonzero(q["role"] == "eval")
    lora = [MERGE_WEIGHTS]  # what a LoRA expert can do, as a build records it
    records = ([{"name": e, "kind": "lora", "capabilities": lora, "candidate": True, "multi_task": False,
                 "datasets": [d]} for e, d in zip(experts, datasets)]
               + [{"name": "multi-task", "kind": "lora", "capabilities": lora, "candidate": False,
                   "multi_task": True, "datasets": datasets}])
    ctx = routing_context(encoders, records, experts, dict(zip(datasets, experts)), emb, q["dataset"].to_numpy(),
                          q["role"].to_numpy(), cube[:, :, 0].T, dict(routing_defaults()))
    routers = [r for r in all_strategies(encoders, "multi-task") if r.name != "prototype-merge"]
    routed = []
    for r in routers:
        dec = r.decide(ctx, emb[ev])
        routed.append((r.name, ev, dec, cube[dec.chosen, ev]))
    out.mkdir(parents=True, exist_ok=True)
    writer = WorkspaceWriter(out)  # the build's own writer: the same file names and columns
    writer.table("queries.parquet", q)
    writer.routed(routed, encoders, MEASURES)
    writer.metrics(encoders, cube, MEASURES)
    writer.query_embeddings([emb])
    if with_map:
        _map_tables(writer, ctx, q, emb, centres, encoders, rng)
    manifest = {
        "format_version": WORKSPACE_FORMAT_VERSION, "title": f"synthetic {n_eval} queries",
        "datasets": [{"name": d} for d in datasets], "encoders": encoders,
        "experts": records,
        "candidates": experts, "own_expert": dict(zip(datasets, experts)),
        "base_model": {"name": "bundled"},
        "strategies": [r.record(ctx) for r in routers],
        "routing": dict(routing_defaults()), "measures": MEASURES, "reference": "base",
    }
    writer.manifest(manifest)
    writer.significance(significance_tables(Workspace(out), "base"))  # as a build stores it
    return out


def _map_tables(writer: WorkspaceWriter, ctx, q: pd.DataFrame, emb: np.ndarray, centres: np.ndarray,
                encoders: list[str], rng: np.random.Generator) -> None:
    """The pilot library and labels, a PCA layout of the centroids and queries (the build's order: centroids
    first), and one query embedding array per expert (each pulls queries a little towards its dataset's centre),
    written one at a time: what the routing map and its expert arrows read."""
    from explorer.projection import pca_layout
    from explorer.workspace import encoder_file, save_array

    library = ctx.library
    writer.pilots(library, encoders, np.flatnonzero(q["role"].to_numpy() == "pilot"), ctx.labels)
    writer.layout({"pca": pca_layout(np.concatenate([library.centroids, emb]))}, len(library), len(q))
    unit = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    for i, name in enumerate(encoders[1:], start=1):
        pull = unit[(i - 1) % len(unit)] if name != "multi-task" else unit.mean(axis=0)
        moved = emb + 0.3 * pull + 0.05 * rng.normal(size=emb.shape)
        save_array(writer.root / "embeddings" / encoder_file(i),
                   (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32))
