"""A synthetic workspace of any size, for benchmarks of the read side (what-if, tables, page times).

Embeddings are clustered per dataset and every expert is a little better on its own dataset, so routing has
structure. Decisions come from the real routers (explorer.routing), so what-if has real stored scores to mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from explorer import WORKSPACE_FORMAT_VERSION
from explorer.config import ROUTING_DEFAULTS
from explorer.routing import RoutingContext, all_strategies
from explorer.workspace import encoder_file, save_array, save_table

MEASURES = ["nDCG@10", "R@100", "RR@10", "AP"]


def synthetic_workspace(out: Path, n_eval: int = 10_000, n_pilot_per_dataset: int = 300, n_datasets: int = 8,
                        dim: int = 384, seed: int = 0) -> Path:
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
    pilot = np.flatnonzero(q["role"] == "pilot")
    ev = np.flatnonzero(q["role"] == "eval")
    ctx = RoutingContext(encoders=encoders, candidates=list(range(1, n_datasets + 1)),
                         own_expert={d: i + 1 for i, d in enumerate(datasets)}, pilot_emb=emb[pilot],
                         pilot_dataset=q["dataset"].to_numpy()[pilot], pilot_scores=cube[:, pilot, 0].T,
                         eval_dataset=q["dataset"].to_numpy()[ev], eval_scores=cube[:, ev, 0].T,
                         expert_datasets={i + 1: [d] for i, d in enumerate(datasets)}, params=dict(ROUTING_DEFAULTS))
    routers = [r for r in all_strategies(encoders, "multi-task") if r.name != "prototype-merge"]
    decisions, smetrics = [], []
    for r in routers:
        dec = r.decide(ctx, emb[ev])
        chosen = dec.chosen
        frame = pd.DataFrame({"strategy": r.name, "row": ev, "chosen": [encoders[c] for c in chosen],
                              "margin": dec.margin})
        for j, name in enumerate(encoders):
            frame[f"score:{name}"] = dec.scores[:, j]
        for j, name in enumerate(encoders):
            frame[f"weight:{name}"] = dec.weights[:, j]
        decisions.append(frame)
        sm = pd.DataFrame(cube[chosen, ev], columns=MEASURES)
        sm.insert(0, "row", ev)
        sm.insert(0, "strategy", r.name)
        smetrics.append(sm)
    out.mkdir(parents=True, exist_ok=True)
    save_table(out / "queries.parquet", q)
    save_table(out / "decisions.parquet", pd.concat(decisions, ignore_index=True))
    save_table(out / "strategy_metrics.parquet", pd.concat(smetrics, ignore_index=True))
    metrics = []
    for e, name in enumerate(encoders):
        m = pd.DataFrame(cube[e], columns=MEASURES)
        m.insert(0, "row", np.arange(len(q)))
        m.insert(0, "system", name)
        metrics.append(m)
    save_table(out / "metrics.parquet", pd.concat(metrics, ignore_index=True))
    save_array(out / "embeddings" / encoder_file(0), emb)
    manifest = {
        "format_version": WORKSPACE_FORMAT_VERSION, "title": f"synthetic {n_eval} queries",
        "datasets": [{"name": d} for d in datasets], "encoders": encoders,
        "experts": [{"name": e, "kind": "lora", "candidate": True, "multi_task": False, "datasets": [d]}
                    for e, d in zip(experts, datasets)]
        + [{"name": "multi-task", "kind": "lora", "candidate": False, "multi_task": True, "datasets": datasets}],
        "candidates": experts, "own_expert": dict(zip(datasets, experts)),
        "base_model": {"name": "bundled"},
        "strategies": [{"name": r.name, "family": r.family, "description": r.description,
                        "uses_oracle": r.uses_oracle, "whatif": r.whatif} for r in routers],
        "routing": dict(ROUTING_DEFAULTS), "measures": MEASURES, "reference": "base",
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
