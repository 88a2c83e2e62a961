"""How the tool scales: exact vs approximate faiss indexes (10k-1M vectors), workspace load and page time as the
workspace grows, and the 2-D layout around its sampling point. Written up in docs/benchmarks.md.

    python -m bench.scale [--quick] [--out DIR]

Prints a machine line and a Markdown fragment (one `###` section per part); the same goes to DIR/scale.md, and the
raw figures to DIR/scale.json. --quick is a smoke run (small sizes, one repeat) of about a minute; the full run
takes long (1M vectors, 50,000-query workspaces) and wants a quiet machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .markdown import machine_line, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DIM = 384
K = 10
N_QUERIES = 200
HNSW_BUDGET_S = 360  # an HNSW build estimated longer than this is skipped, never extrapolated
RUN_DEPTH = 100  # the build's default [index] depth
DOCS_PER_DATASET = 1_000


def clustered(n: int, seed: int, n_clusters: int = 200, dim: int = DIM, spread: float = 1.0) -> np.ndarray:
    """Unit vectors (inner product = cosine) from a mixture of Gaussian clusters. Structured like text embeddings, so
    approximate recall means something (uniform random vectors have no real near neighbours). The centres are fixed;
    `seed` only draws the points, so documents and queries come from the same mixture."""
    centres = np.random.default_rng(12345).standard_normal((n_clusters, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks, so 1M vectors never need a float64 copy
        m = min(100_000, n - start)
        block = centres[rng.integers(0, n_clusters, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def ms(seconds: float) -> str:
    v = seconds * 1000
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def sec(seconds: float) -> str:
    return f"{seconds:.2f}"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- 1. faiss indexes ---------------------------------------------------------------------------------------------
def index_part(sizes: tuple[int, ...]) -> tuple[str, list[dict]]:
    """flat / hnsw / ivf through explorer.index.build_index (the build's own code path), recall against flat."""
    import faiss

    from explorer.index import INDEX_STRUCTURES, build_index

    queries = clustered(N_QUERIES, seed=1)
    results: list[dict] = []
    hnsw_prev: tuple[int, float] | None = None
    for n in sizes:
        emb = clustered(n, seed=2)
        truth = None
        for kind in INDEX_STRUCTURES:  # flat first: its hits are the truth for recall
            if kind == "hnsw" and hnsw_prev:
                n0, t0 = hnsw_prev
                estimate = t0 * (n / n0) * np.log(n) / np.log(n0)
                if estimate > HNSW_BUDGET_S:
                    results.append({"n": n, "kind": kind, "skipped": True,
                                    "note": f"skipped: build estimated at {estimate / 60:.1f} min (the {n0:,} build "
                                            f"x{n // n0} x log n ratio), over the {HNSW_BUDGET_S // 60}-minute budget"})
                    continue
            t = time.perf_counter()
            index = build_index(emb, kind)
            build_s = time.perf_counter() - t
            single = []
            for q in queries:
                t = time.perf_counter()
                index.search(q[None, :], K)
                single.append(time.perf_counter() - t)
            batch, ids = [], None
            for _ in range(3):
                t = time.perf_counter()
                _, ids = index.search(queries, K)
                batch.append(time.perf_counter() - t)
            if kind == "flat":
                truth = ids
            recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth)]))
            if kind == "hnsw":
                note = f"M={index.hnsw.nb_neighbors(1)}, efConstruction={index.hnsw.efConstruction}, " \
                       f"efSearch={index.hnsw.efSearch}"
                hnsw_prev = (n, build_s)
            elif kind == "ivf":
                note = f"nlist={index.nlist}, nprobe={index.nprobe}"
            else:
                note = "exact inner product"
            results.append({"n": n, "kind": kind, "skipped": False, "build_s": build_s,
                            "p50_s": float(np.percentile(single, 50)), "p95_s": float(np.percentile(single, 95)),
                            "batch_qps": N_QUERIES / statistics.median(batch), "recall": recall,
                            "bytes": int(faiss.serialize_index(index).nbytes), "note": note})
            del index
            gc.collect()
        del emb, truth
        gc.collect()

    rows = []
    for r in results:
        if r["skipped"]:
            rows.append([f"{r['n']:,}", r["kind"], "—", "—", "—", "—", "—", "—", r["note"]])
        else:
            rows.append([f"{r['n']:,}", r["kind"], sec(r["build_s"]), ms(r["p50_s"]), ms(r["p95_s"]),
                         f"{r['batch_qps']:,.0f}", f"{r['recall']:.3f}", mib(r["bytes"]), r["note"]])
    md = "\n\n".join([
        "### Exact vs approximate faiss indexes",
        f"Build time, single-query latency, batch throughput, recall@{K} against `flat` and size of "
        f"`explorer.index.build_index(emb, kind)` on {DIM}-d unit vectors from a seeded mixture of 200 Gaussian "
        f"clusters, {N_QUERIES} queries from the same mixture, top-{K}, faiss on {faiss.omp_get_max_threads()} "
        f"threads.",
        table(["vectors", "index", "build (s)", "query p50 (ms)", "query p95 (ms)", f"batch of {N_QUERIES} (q/s)",
               f"recall@{K}", "index size (MiB)", "parameters"], rows, align="llrrrrrrl"),
        "Single-query latency: each query searched alone, one after another; batch: all queries in one `search` "
        "call (median of 3). Index size: `faiss.serialize_index`. An HNSW build is skipped, not extrapolated, when "
        f"the previous size's build time x size ratio x log-size ratio exceeds {HNSW_BUDGET_S // 60} minutes.",
    ])
    return md, results


# --- 2. workspace load and pages ----------------------------------------------------------------------------------
def add_runs(path: Path, depth: int = RUN_DEPTH, docs_per_dataset: int = DOCS_PER_DATASET) -> None:
    """Give a bench.synthetic workspace the runs and corpus tables it lacks, which the Overview's TREC-run download
    reads: every encoder x every query x `depth` hits, as the build writes them, so size and read time are real."""
    import pandas as pd

    from explorer.workspace import Workspace, WorkspaceWriter, save_table

    ws = Workspace(path)
    n = len(ws.queries)
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(n), depth)
    rank = np.tile(np.arange(1, depth + 1, dtype=np.int32), n)
    frames = []
    for name in ws.encoders:
        start = np.repeat(rng.integers(0, docs_per_dataset, n), depth)
        top = np.repeat(rng.uniform(0.5, 0.9, n), depth)
        frames.append(pd.DataFrame({"system": name, "row": rows, "rank": rank,
                                    "doc": ((start + rank) % docs_per_dataset).astype(np.int32),
                                    "score": (top - 0.002 * rank).astype(np.float32)}))
    WorkspaceWriter(path).table("runs.parquet", pd.concat(frames, ignore_index=True))  # as a build writes it
    for ds in ws.datasets:
        ids = [f"{ds}-doc{i}" for i in range(docs_per_dataset)]
        save_table(path / "datasets" / ds / "docs.parquet",
                   pd.DataFrame({"doc_id": ids, "title": ids, "text": [f"synthetic document {i}" for i in ids]}))


def render_seconds(ws_path: str, page: str, cold: bool, params: dict | None = None) -> float:
    """One fresh session's first run of a page, timed as bench.app.first_render times it (its page list needs a built
    workspace: the map, inspector and playground read layout, pilots and adapters that a synthetic one lacks). The
    page is opened by its link (?page=<key>), so the Overview is not rendered first. `cold` empties st.cache_data and
    st.cache_resource first: the first visitor after a server start, imports done. `params`: more of the link's
    parameters."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from .app import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["workspace_path"] = ws_path
    at.query_params["page"] = page
    at.query_params.update({k: str(v) for k, v in (params or {}).items()})
    if cold:
        st.cache_data.clear()
        st.cache_resource.clear()
    t = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t
    assert not at.exception, [e.message for e in at.exception]
    return elapsed


def workspace_part(sizes: tuple[int, ...], repeats: int, out_dir: Path) -> tuple[str, list[dict]]:
    """Workspace open + first touch of its tables, size on disk, and Overview / Routing decisions render times."""
    import streamlit as st

    from explorer.pages import PAGES
    from explorer.workspace import Workspace

    from .synthetic import synthetic_workspace

    pages = {PAGES[key].title: key for key in ("overview", "decisions")}
    results: list[dict] = []
    for i, n_eval in enumerate(sizes):
        path = out_dir / f"workspace_{n_eval}"
        shutil.rmtree(path, ignore_errors=True)
        synthetic_workspace(path, n_eval=n_eval, with_runs=False)  # add_runs gives it runs
        r = {"n_eval": n_eval, "tables_bytes": folder_bytes(path)}
        add_runs(path)
        r["total_bytes"] = folder_bytes(path)
        opens, tables, runs = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ws = Workspace(path)
            t1 = time.perf_counter()
            for name in ("queries", "metrics", "strategy_metrics", "decisions"):
                getattr(ws, name)
            t2 = time.perf_counter()
            r["run_rows"] = len(ws.runs)
            t3 = time.perf_counter()
            opens.append(t1 - t0)
            tables.append(t2 - t1)
            runs.append(t3 - t2)
            r.update(n_queries=len(ws.queries), n_decisions=len(ws.decisions), n_datasets=len(ws.datasets),
                     n_encoders=len(ws.encoders), n_strategies=len(ws.strategies))
            del ws
            gc.collect()
        r.update(open_s=statistics.median(opens), tables_s=statistics.median(tables), runs_s=statistics.median(runs))
        if i == 0:
            for page in pages.values():  # imports and plotly's first figure, once per process; not timed
                render_seconds(str(path), page, cold=True)
        for title, page in pages.items():
            r[f"{title}:cold"] = statistics.median(render_seconds(str(path), page, cold=True) for _ in range(repeats))
            r[f"{title}:warm"] = statistics.median(render_seconds(str(path), page, cold=False) for _ in range(repeats))
        results.append(r)
        st.cache_data.clear()
        st.cache_resource.clear()
        shutil.rmtree(path)
        gc.collect()

    load_rows = [[f"{r['n_eval']:,}", f"{r['n_queries']:,}", f"{r['n_decisions']:,}", mib(r["tables_bytes"]),
                  mib(r["total_bytes"]), ms(r["open_s"]), sec(r["tables_s"]), sec(r["runs_s"])] for r in results]
    page_rows = [[f"{r['n_eval']:,}"] + [sec(r[f"{t}:{m}"]) for t in pages for m in ("cold", "warm")]
                 for r in results]
    first = results[0]
    md = "\n\n".join([
        "### Workspace load and page time as the workspace grows",
        f"`bench.synthetic` workspaces ({first['n_datasets']} datasets, {first['n_encoders']} encoders, "
        f"{first['n_strategies']} strategies, {first['n_queries'] - first['n_eval']:,} pilot queries) of growing "
        f"size plus a runs table of depth {RUN_DEPTH}: time to open and read them, size on disk, and first render "
        f"of two pages (median of {repeats}).",
        table(["evaluated queries", "queries (with pilots)", "decision rows", "tables (MiB)",
               "+ runs & corpus (MiB)", "`Workspace()` (ms)", "queries, metrics, strategy_metrics, decisions (s)",
               "runs (s)"], load_rows),
        table(["evaluated queries"] + [f"{t} {m} (s)" for t in pages for m in ("cold", "warm")], page_rows),
        f"Tables: the Parquet files `bench.synthetic` writes; runs & corpus: plus `runs.parquet` (every encoder x "
        f"every query x {RUN_DEPTH} hits, as a build writes it) and {DOCS_PER_DATASET:,} short documents per dataset, "
        f"which the Overview's TREC-run download reads. A built workspace also holds document embeddings, faiss "
        f"indexes and adapters, which grow with the corpora, not with the queries. Table reads are from a warm page "
        f"cache. Page times are one `AppTest.run()` of a fresh session, as in `bench/app.py`, opened by its link "
        f"(`?page=overview`, `?page=decisions`): cold = the server's "
        f"`st.cache_data`/`st.cache_resource` emptied first (the first visitor after a start, imports done), "
        f"warm = every later visitor.",
    ])
    return md, results


# --- 3. 2-D layouts -----------------------------------------------------------------------------------------------
def layout_part(sizes: tuple[int, ...], max_points: int) -> tuple[str, dict]:
    """umap_layout and pca_layout up to and past the sampling point (`[layout] max_points`, projection.py)."""
    import umap

    from explorer.config import LAYOUT_DEFAULTS
    from explorer.projection import pca_layout, umap_layout

    # Warm-up: numba compiles UMAP on its first fit in a process, fit and transform (the sampled path). UMAP finds
    # neighbours exactly below 4,096 points and with NNDescent above: that path compiles separately (~30 s), so it is
    # warmed too when a measured fit reaches it. PCA's first call pays a one-off setup as well.
    approximate = max(min(n, max_points) for n in sizes) >= 4096
    tiny = clustered(300, seed=3)
    t = time.perf_counter()
    umap_layout(tiny, max_points=150)
    if approximate:
        umap.UMAP(metric="cosine", random_state=0, force_approximation_algorithm=True).fit(tiny[:150]).transform(
            tiny[150:])
    pca_layout(tiny)
    warmup_s = time.perf_counter() - t
    rows_raw = []
    for n in sizes:
        emb = clustered(n, seed=5)
        t = time.perf_counter()
        _, sampled = umap_layout(emb, max_points=max_points)
        umap_s = time.perf_counter() - t
        t = time.perf_counter()
        pca_layout(emb)
        pca_s = time.perf_counter() - t
        rows_raw.append({"n": n, "fitted_on": min(n, max_points), "sampled": sampled, "umap_s": umap_s,
                         "pca_s": pca_s})
    rows = [[f"{r['n']:,}", f"{r['fitted_on']:,}", "yes" if r["sampled"] else "no", sec(r["umap_s"]),
             ms(r["pca_s"])] for r in rows_raw]
    md = "\n\n".join([
        "### 2-D layout and its sampling point",
        f"`explorer.projection.umap_layout` (cosine, 15 neighbours) and `pca_layout` on {DIM}-d clustered unit "
        f"vectors, up to and past the sampling point max_points = {max_points:,}"
        + (f" (lowered from the default {LAYOUT_DEFAULTS['max_points']:,})"
           if max_points != LAYOUT_DEFAULTS["max_points"] else "")
        + "; above it UMAP is fitted on a seeded sample and the rest transformed in.",
        table(["points", "UMAP fitted on", "sampled", "UMAP (s)", "PCA (ms)"], rows),
        f"Excluded above: a 300-point warm-up of {sec(warmup_s)} s, mostly numba compiling UMAP (fit and transform; "
        + ("exact and NNDescent neighbour paths" if approximate else "exact neighbour path, as no fit here reaches "
           "NNDescent's 4,096 points")
        + ") and PCA's first call; a build pays it once per process.",
    ])
    return md, {"max_points": max_points, "warmup_s": warmup_s, "approximate_warmed": approximate, "rows": rows_raw}


def run(quick: bool, out_dir: Path) -> str:
    """All three parts as one Markdown fragment; also written to out_dir (scale.md with the machine line, scale.json
    with the raw figures)."""
    from explorer.config import LAYOUT_DEFAULTS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message="n_jobs value")  # UMAP with a seed runs single-threaded; it says so
    raw: dict = {"machine": machine_line(), "quick": quick}
    max_points = 1_000 if quick else LAYOUT_DEFAULTS["max_points"]
    indexes_md, raw["indexes"] = index_part((10_000,) if quick else (10_000, 100_000, 1_000_000))
    workspace_md, raw["workspace"] = workspace_part((1_000, 3_000) if quick else (1_000, 10_000, 30_000),
                                                    1 if quick else 2, out_dir)
    layout_md, raw["layout"] = layout_part((500, 2_000) if quick else (1_000, max_points, 20_000), max_points)
    fragment = "\n\n".join([indexes_md, workspace_md, layout_md]) + "\n"
    (out_dir / "scale.md").write_text(raw["machine"] + "\n\n" + fragment)
    (out_dir / "scale.json").write_text(json.dumps(raw, indent=2))
    return fragment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run of about a minute")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_scale",
                        help="folder for the temporary workspaces, scale.md and scale.json")
    args = parser.parse_args()
    print(machine_line())
    print()
    print(run(args.quick, args.out), end="")


if __name__ == "__main__":
    main()
