"""First render of the pages on large workspaces: 1k, 10k and 50k evaluated queries with 20 encoders (18 domain
experts, base, multi-task), cold and warm: the Overview (with its per-cell statistics and per-query waterfall),
Routing decisions, and issue 27's views (Oracle gap, Complementarity, the Routing map with a query's expert arrows,
Error analysis on one part of the oracle gap, the inspector's A vs B waterfall, the Overview on a cohort).

    python -m bench.pages_at_scale [--sizes 1000 10000 50000] [--repeats 2] [--pages ...] [--out DIR]

Workspaces come from bench.synthetic (significance stored as a build stores it; with_map: the pilot library, a PCA
layout and every expert's query embeddings) plus a runs table of depth 100 and a corpus per dataset
(bench.scale.add_runs) and judgements (add_judgements); page times are bench.scale.render_seconds: one fresh
session's `AppTest.run()` opened by the page's link, cold = the server's caches emptied first. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .markdown import machine_line, table
from .scale import add_runs, render_seconds
from .synthetic import synthetic_workspace

TARGETS = {"cold": 3.0, "warm": 1.0}  # seconds, at 50,000 evaluated queries (issues 15 and 27)
COHORT = 1_000  # queries of the cohort the "Overview on a cohort" row filters by


def pages(ws_path: Path) -> dict[str, tuple[str, dict]]:
    """Title -> (page key, link parameters) of every page timed."""
    from explorer.cohort import encode
    from explorer.workspace import Workspace

    ws = Workspace(ws_path)
    ev = ws.eval_rows()["row"].to_numpy()
    cohort = encode(np.random.default_rng(0).choice(ev, min(COHORT, len(ev)), replace=False), len(ws.queries))
    return {"Overview": ("overview", {}), "Routing decisions": ("decisions", {}), "Oracle gap": ("gap", {}),
            "Complementarity": ("complementarity", {}), "Routing map + arrows": ("map", {"focus": int(ev[0])}),
            "Error analysis, routing error": ("errors", {"gap": "routing error"}),
            "Inspector A vs B": ("inspector", {"view": "compare", "row": int(ev[0])}),
            "Overview on a cohort": ("overview", {"cohort": cohort, "cohort_name": "sample"})}


def add_judgements(path: Path, per_query: int = 2, found: float = 0.6, seed: int = 0) -> None:
    """qrels.parquet for a synthetic workspace's evaluated queries: `per_query` relevant documents each, the first
    drawn from base's top 10 with probability `found` (else anywhere in the corpus), the others anywhere."""
    from explorer.workspace import Workspace, WorkspaceWriter

    ws = Workspace(path)
    rng = np.random.default_rng(seed)
    ev = ws.eval_rows()
    runs = ws.run_rows(["base"], ev["row"].tolist())
    top = runs[runs["rank"] <= 10].groupby("row")["doc"].apply(np.asarray)
    frames = []
    for ds, part in ev.groupby("dataset", sort=False):
        ids = ws.docs(ds)["doc_id"].to_numpy()
        for j in range(per_query):
            anywhere = rng.integers(0, len(ids), len(part))
            if j == 0:
                hit = rng.random(len(part)) < found
                anywhere = np.where(hit, [rng.choice(top[r]) for r in part["row"]], anywhere)
            frames.append(pd.DataFrame({"dataset": ds, "role": "eval", "qid": part["qid"].to_numpy(),
                                        "doc_id": ids[anywhere], "grade": 1}))
    WorkspaceWriter(path).table("qrels.parquet", pd.concat(frames).drop_duplicates(["dataset", "qid", "doc_id"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    ap.add_argument("--datasets", type=int, default=18, help="domain experts (encoders = this + 2)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pages", nargs="+", default=None, help="titles of the pages to time (default: all)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_pages")
    args = ap.parse_args(argv)
    rows = []
    for i, n in enumerate(args.sizes):
        path = args.out / f"ws_{n}"
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        synthetic_workspace(path, n_eval=n, n_datasets=args.datasets, with_runs=False, with_map=True)  # runs below
        add_runs(path)
        add_judgements(path)
        made = time.perf_counter() - t
        timed = {k: v for k, v in pages(path).items() if not args.pages or k in args.pages}
        if i == 0:
            for page, params in timed.values():  # imports and plotly's first figure, once per process: not timed
                render_seconds(str(path), page, True, params)
        for title, (page, params) in timed.items():
            row = [f"{n:,}", f"{args.datasets + 2}", f"{made:.0f}", title]
            for mode in ("cold", "warm"):
                times = [render_seconds(str(path), page, mode == "cold", params) for _ in range(args.repeats)]
                row.append(f"{statistics.median(times):.2f}")
            rows.append(row)
        shutil.rmtree(path, ignore_errors=True)
    print(machine_line())
    print()
    print(table(["evaluated queries", "encoders", "workspace made (s)", "page", "cold (s)", "warm (s)"], rows))
    print(f"\nTargets at 50,000: cold ≤ {TARGETS['cold']:.0f} s, warm ≤ {TARGETS['warm']:.0f} s. Median of "
          f"{args.repeats}.")


if __name__ == "__main__":
    main()
