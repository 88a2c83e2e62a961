"""What the cache's checksums cost (issue 23): every cache entry is hashed (sha256) when stored and again when read,
so a large corpus's embeddings are read once more per build. Measured on a (rows, 384) float32 array, the size of
a 1M-document corpus's embeddings, against reading the same file without hashing.

    python -m bench.checksum                    # 1,000,000 x 384 (1.4 GiB) in a temporary folder
    python -m bench.checksum --rows 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from explorer.files import checksum_problem, write_checksum
from explorer.workspace import atomic_write  # noqa: F401  (imported by a build already: not timed)

from .markdown import table


def _read(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def measure(rows: int, dim: int = 384) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.npy"
        block = np.random.default_rng(0).normal(size=(min(rows, 100_000), dim)).astype(np.float32)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
        for start in range(0, rows, len(block)):
            out[start:start + len(block)] = block[: rows - start]
        out.flush()
        del out
        times = {}
        for name, step in (("read the file (no hash)", lambda: _read(path)),
                           ("store: write_checksum", lambda: write_checksum(path)),
                           ("read: checksum_problem", lambda: checksum_problem(path))):
            start = time.perf_counter()
            assert step() is None
            times[name] = time.perf_counter() - start
        size = path.stat().st_size / 2**30
    return [[f"{rows:,} x {dim}", f"{size:.2f}", name, f"{s:.2f}", f"{size * 1024 / s:.0f}"]
            for name, s in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(table(["array", "GiB", "step", "seconds", "MiB/s"], measure(args.rows)))


if __name__ == "__main__":
    main()
