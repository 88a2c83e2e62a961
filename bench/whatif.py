"""What-if recompute time on a 10,000-query workspace (target: under 200 ms per recompute).

    python -m bench.whatif [--queries 10000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from explorer.workspace import Workspace

from .speed import whatif_latency
from .synthetic import synthetic_workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(synthetic_workspace(Path(tmp) / "ws", n_eval=args.queries))
        n_eval = int((ws.queries["role"] == "eval").sum())
        print(f"what-if on {n_eval} evaluated queries, {len(ws.candidates)} experts, {len(ws.strategies)} strategies "
              f"({platform.processor() or platform.machine()}):")
        print(whatif_latency(ws, args.repeats))


if __name__ == "__main__":
    main()
