"""What-if recompute time on a 10,000-query workspace (target: under 200 ms per recompute).

    python -m bench.whatif [--queries 10000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from explorer.analysis import WhatIf
from explorer.workspace import Workspace

from .synthetic import synthetic_workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(synthetic_workspace(Path(tmp) / "ws", n_eval=args.queries))
        whatif = WhatIf(ws)
        experts = [e["name"] for e in ws.experts]
        t = time.perf_counter()
        whatif.run(experts)
        first = time.perf_counter() - t
        rng = np.random.default_rng(0)
        times = []
        for _ in range(args.repeats):
            off = set(rng.choice(ws.candidates, rng.integers(1, 4), replace=False))
            t = time.perf_counter()
            whatif.run([e for e in experts if e not in off])
            times.append(time.perf_counter() - t)
        n_eval = int((ws.queries["role"] == "eval").sum())
        print(f"what-if on {n_eval} evaluated queries, {len(ws.candidates)} experts, {len(ws.strategies)} strategies "
              f"({platform.processor() or platform.machine()}):")
        print(f"  first call (loads tables, prepares arrays): {first * 1000:.0f} ms")
        print(f"  recompute with 1-3 experts off: median {statistics.median(times) * 1000:.0f} ms, "
              f"max {max(times) * 1000:.0f} ms over {args.repeats}")


if __name__ == "__main__":
    main()
