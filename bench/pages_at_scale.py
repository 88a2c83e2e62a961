"""First render of the Overview and Routing decisions pages on large workspaces: 1k, 10k and 50k evaluated
queries with 20 encoders (18 domain experts, base, multi-task), cold and warm.

    python -m bench.pages_at_scale [--sizes 1000 10000 50000] [--repeats 2] [--out DIR]

Workspaces come from bench.synthetic (significance stored as a build stores it) plus a runs table of depth 100
(bench.scale.add_runs); page times are bench.scale.render_seconds: one fresh session's `AppTest.run()` opened by
the page's link, cold = the server's caches emptied first. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .markdown import machine_line, table
from .scale import add_runs, render_seconds
from .synthetic import synthetic_workspace

TARGETS = {"cold": 3.0, "warm": 1.0}  # seconds, at 50,000 evaluated queries (issue 15)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    ap.add_argument("--datasets", type=int, default=18, help="domain experts (encoders = this + 2)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_pages")
    args = ap.parse_args(argv)
    pages = {"Overview": "overview", "Routing decisions": "decisions"}
    rows = []
    for i, n in enumerate(args.sizes):
        path = args.out / f"ws_{n}"
        shutil.rmtree(path, ignore_errors=True)
        t = time.perf_counter()
        synthetic_workspace(path, n_eval=n, n_datasets=args.datasets, with_runs=False)  # add_runs gives it runs
        add_runs(path)
        made = time.perf_counter() - t
        if i == 0:
            for page in pages.values():  # imports and plotly's first figure, once per process: not timed
                render_seconds(str(path), page, cold=True)
        row = [f"{n:,}", f"{args.datasets + 2}", f"{made:.0f}"]
        for page in pages.values():
            for mode in ("cold", "warm"):
                times = [render_seconds(str(path), page, cold=mode == "cold") for _ in range(args.repeats)]
                row.append(f"{statistics.median(times):.2f}")
        rows.append(row)
        shutil.rmtree(path, ignore_errors=True)
    print(machine_line())
    print()
    print(table(["evaluated queries", "encoders", "workspace made (s)"]
                + [f"{t} {m} (s)" for t in pages for m in ("cold", "warm")], rows))
    print(f"\nTargets at 50,000: cold ≤ {TARGETS['cold']:.0f} s, warm ≤ {TARGETS['warm']:.0f} s. Median of "
          f"{args.repeats}.")


if __name__ == "__main__":
    main()
