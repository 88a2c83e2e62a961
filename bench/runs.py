"""Runs brought from files: importing a large run file (time and peak memory), and the Overview's cold render with
external runs beside a workspace's own systems.

    python -m bench.runs import [--lines 1000000 10000000] [--known-every 1 100] [--depth 100]
    python -m bench.runs overview --workspace workspaces/sample [--runs 10] [--repeats 3] [--stage prepare|render]

`import` writes a seeded TREC file (1,000 documents per query, scores with ties; every n-th query one of the
dataset's, the others unknown to it, as a run over a whole collection is against a workspace that samples it) and
reads and scores it in a fresh process (explorer.runs.import_run against a synthetic dataset of 100,000 documents),
reporting the wall time and the process's peak resident memory (getrusage ru_maxrss), beside the same process's
memory before reading. `overview` copies the workspace twice, adds `--runs` runs to every dataset of one copy with
`explorer add-run` (each the workspace's stored base run with seeded noise on its scores; stage `prepare`, no model
library), and times the Overview's first render cold on both (bench.scale.render_seconds; stage `render`, which
imports the app and so torch: run it under the heavy lock). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .markdown import machine_line, table

DOCS_PER_QUERY = 1000
N_DOCS = 100_000


def write_run(path: Path, lines: int, known_every: int = 1, seed: int = 0) -> int:
    """A TREC run of `lines` lines, DOCS_PER_QUERY per query, written in blocks; every `known_every`-th query is one
    of the dataset's (q<n>), the others are not (other<n>). Returns its number of queries."""
    rng = np.random.default_rng(seed)
    queries = lines // DOCS_PER_QUERY
    with open(path, "w", encoding="utf-8") as out:
        for q in range(queries):
            docs = rng.choice(N_DOCS, DOCS_PER_QUERY, replace=False)
            scores = np.round(rng.gamma(2.0, 3.0, DOCS_PER_QUERY), 2)  # two decimals: ties happen
            order = np.argsort(-scores, kind="stable")
            qid = f"q{q}" if q % known_every == 0 else f"other{q}"
            out.write("".join(f"{qid} Q0 d{docs[i]} {r + 1} {scores[i]} bench\n" for r, i in enumerate(order)))
    return queries


CHILD = r"""
import json, resource, sys, time
import pandas as pd
from explorer.runs import RunTarget, import_run
path, queries, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
qids = [f"q{q}" for q in range(queries)]
target = RunTarget("bench", [f"d{i}" for i in range(N_DOCS)], set(qids), depth)
frame = pd.DataFrame({"row": range(len(qids)), "qid": qids, "role": "eval"})
qrels = {"eval": {q: {f"d{(i * 7919 + len(q)) % N_DOCS}": 1 for i in range(5)} for q in qids}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
run = import_run("bench", path, target, frame, qrels, ["nDCG@10", "R@100", "RR@10", "AP"])
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "before_kib": before, "peak_kib": peak,
                  "kept": len(run.runs), "lines": run.record["lines"], "warnings": run.record["warnings"]}))
""".replace("N_DOCS", str(N_DOCS))


def import_part(sizes: list[int], depth: int, out: Path, known_every: list[int]) -> str:
    rows = []
    for lines, every in [(n, k) for n in sizes for k in known_every]:
        path = out / f"run_{lines}.trec"
        queries = write_run(path, lines, every)
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(queries), str(depth)], check=True,
                              capture_output=True, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([f"{lines:,}", f"{path.stat().st_size / 2**20:,.0f}", f"{100 / every:g}%", f"{r['kept']:,}",
                     f"{r['seconds']:.1f}",
                     f"{r['seconds'] and lines / r['seconds'] / 1e6:.2f}", f"{r['before_kib'] / 1024:,.0f}",
                     f"{r['peak_kib'] / 1024:,.0f}"])
        path.unlink()
    return table(["lines", "file (MiB)", "queries of the dataset", f"results kept (depth {depth})", "import (s)",
                  "M lines/s",
                  "RSS before (MiB)", "peak RSS (MiB)"], rows)


def noisy_runs(ws_path: Path, names: list[str], out: Path) -> list[tuple[str, str, Path]]:
    """(name, dataset, file) for every run and dataset: the stored base run with seeded noise on its scores."""
    from explorer.workspace import Workspace

    ws = Workspace(ws_path)
    qid = ws.queries.set_index("row")["qid"]
    made = []
    for k, name in enumerate(names):
        rng = np.random.default_rng(k)
        for dataset in ws.datasets:
            rows = ws.eval_rows(dataset)["row"]
            runs = ws.run_rows(["base"], rows)
            doc_ids = ws.docs(dataset)["doc_id"].to_numpy()
            scores = runs["score"].to_numpy() + rng.normal(0, 0.05, len(runs))
            path = out / f"{name}.{dataset}.trec"
            path.write_text("".join(f"{qid[r]} Q0 {doc_ids[d]} {i} {s:.6f} {name}\n" for i, (r, d, s) in
                                    enumerate(zip(runs["row"], runs["doc"], scores), start=1)))
            made.append((name, dataset, path))
    return made


def prepare(workspace: Path, n_runs: int, out: Path) -> float:
    """Two copies of the workspace under `out`: `plain`, and `runs` with `n_runs` runs added to every dataset by
    add-run; returns the mean seconds of one add-run. Imports no model library (the renders do, under the lock)."""
    from explorer.add_run import add_run

    for name in ("plain", "runs"):
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(workspace, out / name)
    made = noisy_runs(out / "runs", [f"run{k}" for k in range(n_runs)], out)
    t = time.perf_counter()
    for name, dataset, path in made:
        add_run(out / "runs", path, dataset, name)
    seconds = (time.perf_counter() - t) / len(made)
    (out / "add_run_seconds.json").write_text(json.dumps({"mean": seconds, "runs": n_runs, "files": len(made)}))
    return seconds


def render(out: Path, repeats: int) -> str:
    """The Overview's first render, cold, on both copies that `prepare` left."""
    from explorer.workspace import Workspace

    from .scale import render_seconds

    added = json.loads((out / "add_run_seconds.json").read_text())
    render_seconds(str(out / "plain"), "overview", cold=True)  # imports and plotly's first figure: not timed
    rows = []
    for name, label in (("plain", "as built"), ("runs", f"with {added['runs']} runs on every dataset")):
        times = [render_seconds(str(out / name), "overview", cold=True) for _ in range(repeats)]
        rows.append([label, len(Workspace(out / name).strategies), f"{added['mean']:.1f}" if name == "runs" else "",
                     f"{statistics.median(times):.2f}"])
    return table(["workspace", "strategies", "add-run (s, mean of each file)", "Overview cold (s, median)"], rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["import", "overview"])
    ap.add_argument("--stage", choices=["all", "prepare", "render"], default="all",
                    help="overview: add the runs (no model library), render (under the heavy lock), or both")
    ap.add_argument("--lines", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--known-every", type=int, nargs="+", default=[1],
                    help="every n-th query of the file is one of the dataset's (1: all of them)")
    ap.add_argument("--workspace", type=Path, default=Path("workspaces/sample"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_runs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print()
    if args.part == "import":
        print(import_part(args.lines, args.depth, args.out, args.known_every))
    else:
        if args.stage in ("all", "prepare"):
            print(f"add-run: {prepare(args.workspace, args.runs, args.out):.1f} s a file")
        if args.stage in ("all", "render"):
            print(render(args.out, args.repeats))


if __name__ == "__main__":
    main()
