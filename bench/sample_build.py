"""Sample workspace build time: from scratch (empty cache) and again with every stage cached.

    python -m bench.sample_build
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from explorer.build import build
from explorer.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "sample_data" / "sample.toml")
        cfg.cache_dir = Path(tmp) / "cache"
        t = time.perf_counter()
        ws = build(cfg, Path(tmp) / "ws", echo=lambda _: None, progress=False)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        build(cfg, Path(tmp) / "ws",
              echo=lambda _: None, progress=False)
        warm = time.perf_counter() - t
        stages = ws.manifest["stages"]
        print(f"sample build ({len(ws.datasets)} datasets, {len(ws.experts)} experts, "
              f"{int((ws.queries['role'] == 'eval').sum())} test queries; {os.cpu_count()} cores)")
        print(f"  from scratch: {cold:.1f} s   rebuild with every heavy stage cached: {warm:.1f} s")
        groups: dict[str, float] = {}
        for name, info in stages.items():
            key = name.split(":")[0]
            groups[key] = groups.get(key, 0.0) + info["seconds"]
        print("  stages (from scratch): " + ", ".join(f"{k} {v:.1f} s" for k, v in groups.items()))


if __name__ == "__main__":
    main()
