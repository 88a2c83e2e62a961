"""Search at 1M and 10M vectors: exact chunk-by-chunk search, IVF in memory, and IVF on disk (inverted lists
memory-mapped from a file), each built from a memory-mapped embedding file chunk by chunk.

    python -m bench.search_scale [--sizes 1000000 10000000] [--out DIR]

Vectors: 384-d unit vectors from bench.scale's seeded mixture of 200 Gaussian clusters, written to DIR in blocks
(10M is 15 GiB). Queries: 200 more points of the same mixture. Recall@10 is against exact search. IVF has
nlist = sqrt(n) lists (as explorer.index.build_index chooses), is trained on 256 seeded vectors per list
(explorer.ondisk.train_ivf, as the build's on-disk IVF is), and its
nprobe is the smallest power of two reaching recall@10 >= 0.95, tuned on 200 *corpus documents* used as queries
(explorer.index.tune_ivf), never on the 200 evaluation queries. Single-query latency: each query searched alone
(p50, p95; exact search: 20 queries, each a full pass over the corpus); faiss on every core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from .markdown import machine_line, table
from .scale import clustered

DIM, K, QUERIES = 384, 10, 200
BLOCK = 500_000


def vectors(path: Path, n: int) -> np.ndarray:
    """n clustered unit vectors in a .npy at `path` (made once, block by block), memory-mapped."""
    if not path.exists():
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
        for start in range(0, n, BLOCK):
            m = min(BLOCK, n - start)
            out[start:start + m] = clustered(m, seed=1000 + start // BLOCK)
        out.flush()
        del out
    return np.load(path, mmap_mode="r")


def ivf(emb: np.ndarray, nlist: int, folder: Path | None):
    """An IVF-flat index trained on a seeded sample and filled chunk by chunk; with `folder`, the build's on-disk
    IVF (explorer.ondisk: its lists merged from per-chunk shards into one file, memory-mapped when searched)."""
    from explorer.ondisk import build_ivf_on_disk, train_ivf

    if folder is not None:
        return build_ivf_on_disk(emb, folder, BLOCK, nlist)
    trained = train_ivf(emb, nlist)
    for start in range(0, len(emb), BLOCK):
        trained.add(np.ascontiguousarray(emb[start:start + BLOCK]))
    return trained


def latencies(index, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], K)
        times.append(time.perf_counter() - t)
    return statistics.median(times), float(np.percentile(times, 95))


def recall(rows: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows.tolist(), truth.tolist())]))


def measure(n: int, out: Path) -> list[dict]:
    from explorer.chunked import ChunkedFlat
    from explorer.index import tune_ivf

    emb = vectors(out / f"vectors-{n}.npy", n)
    queries = clustered(QUERIES, seed=1)
    rows = []
    t = time.perf_counter()
    exact = ChunkedFlat(emb, BLOCK)
    _, truth = exact.search(queries, K)
    batch = time.perf_counter() - t
    p50, p95 = latencies(exact, queries[:20])  # a full pass over the corpus per query: 20 of them
    rows.append({"n": n, "index": "exact, chunk by chunk", "build_s": 0.0, "p50_s": p50, "p95_s": p95,
                 "batch_s": batch, "recall": 1.0, "nprobe": "–"})
    nlist = int(np.sqrt(n))  # as build_index chooses
    for name, folder in (("IVF in memory", None), ("IVF on disk", out / f"ondisk-{n}")):
        t = time.perf_counter()
        index = ivf(emb, nlist, folder)
        built = time.perf_counter() - t
        tuned = tune_ivf(index, emb, chunk=BLOCK)
        p50, p95 = latencies(index, queries)
        _, got = index.search(queries, K)
        rows.append({"n": n, "index": name, "build_s": built, "p50_s": p50, "p95_s": p95, "batch_s": None,
                     "recall": recall(got, truth), "nprobe": f"{tuned['nprobe']} of {nlist}",
                     "tuned_recall": tuned["recall_at_10"]})
        del index
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_search"))
    ap.add_argument("--keep", action="store_true", help="keep the vector files for another run")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        rows += measure(n, args.out)
        print(json.dumps(rows[-3:], default=str), flush=True)
        if not args.keep:
            (args.out / f"vectors-{n}.npy").unlink(missing_ok=True)
    (args.out / "search.json").write_text(json.dumps(rows, indent=1, default=str))
    print(machine_line())
    print()
    print(table(["vectors", "index", "build (s)", "query p50 (ms)", "query p95 (ms)", "recall@10", "nprobe"],
                [[f"{r['n']:,}", r["index"], f"{r['build_s']:.0f}", f"{1000 * r['p50_s']:.1f}",
                  f"{1000 * r['p95_s']:.1f}", f"{r['recall']:.3f}", r["nprobe"]] for r in rows]))


if __name__ == "__main__":
    main()
