"""Peak resident memory of the corpus stages against corpus size: chunked, resumable encoding into a memory-mapped
array, then exact search chunk by chunk, beside the in-memory path (one array, faiss's exact index).

    python -m bench.memory [--sizes 10000 100000 1000000] [--chunk 50000] [--out DIR]

Each (size, path) runs in a fresh process, whose peak resident set size (getrusage ru_maxrss) is reported. The
passages are short synthetic texts produced as a stream, and the encoder is a stand-in (a fixed hashed bag of
words projected to 384 dimensions, normalised): this measures what the stages hold, not the model, whose memory
does not depend on the corpus. Prints a Markdown table; DIR/memory.json keeps the raw figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .markdown import machine_line, table

DIM = 384
VOCAB = 20_000
QUERIES = 200
DEPTH = 100


def passages(n: int, seed: int = 0):
    """A stream of `n` short passages (8-15 words of a 5,000-word vocabulary)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        words = rng.integers(0, 5_000, rng.integers(8, 16))
        yield " ".join(f"w{w}" for w in words)


class StandIn:
    """A deterministic bag-of-words encoder: each word a fixed random 384-d vector, a passage their normalised sum."""

    def __init__(self):
        self.table = np.random.default_rng(7).normal(size=(VOCAB, DIM)).astype(np.float32)

    def __call__(self, texts: list[str], batch: int = 256) -> np.ndarray:
        """In batches, as a model encodes: its working memory is one batch, whatever the number of texts."""
        return np.concatenate([self._batch(texts[i:i + batch]) for i in range(0, len(texts), batch)])

    def _batch(self, texts: list[str]) -> np.ndarray:
        ids = [[hash(w) % VOCAB for w in t.split()] for t in texts]
        lengths = np.array([len(i) for i in ids])
        flat = np.fromiter((w for i in ids for w in i), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        out = np.add.reduceat(self.table[flat], starts, axis=0)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def run_one(n: int, path: str, chunk: int, folder: Path) -> dict:
    """In this process: encode n passages and search QUERIES of them; the peak RSS and the stage times."""
    from explorer.chunked import ChunkedFlat, chunks, encode_chunked
    from explorer.index import build_index

    encode = StandIn()
    queries = encode(list(passages(QUERIES, seed=1)))
    start = time.perf_counter()
    if path == "chunked":
        emb = encode_chunked(encode, passages(n), n, folder / "docs.npy", chunk)
        index = ChunkedFlat(emb, chunk)
    else:
        emb = np.concatenate([encode(batch) for batch in chunks(passages(n), chunk)])
        index = build_index(emb, "flat")
    encoded = time.perf_counter()
    index.search(queries, DEPTH)
    searched = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"n": n, "path": path, "chunk": chunk, "peak_mib": round(peak, 1),
            "encode_s": round(encoded - start, 2), "search_s": round(searched - encoded, 3)}


def baseline() -> float:
    """Peak RSS of a process that imports what run_one imports and does nothing else."""
    code = ("import resource, numpy, explorer.chunked, explorer.index, faiss; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return round(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout), 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--one", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_one(int(args.one[0]), args.one[1], args.chunk, Path(tmp))))
        return
    rows = []
    for n in args.sizes:
        for path in ("chunked", "in-memory"):
            done = subprocess.run([sys.executable, "-m", "bench.memory", "--one", str(n), path, "--chunk",
                                   str(args.chunk)], capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    base = baseline()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps({"baseline_mib": base, "rows": rows}, indent=1))
    embeddings = {r["n"]: r["n"] * DIM * 4 / 2**20 for r in rows}
    print(machine_line())
    print()
    print(table(["passages", "path", "peak RSS (MiB)", "above the imports (MiB)", "embeddings (MiB)",
                 "encode s", f"search {QUERIES} queries s"],
                [[f"{r['n']:,}", r["path"], f"{r['peak_mib']:.0f}", f"{r['peak_mib'] - base:.0f}",
                  f"{embeddings[r['n']]:.0f}", f"{r['encode_s']:.1f}", f"{r['search_s']:.2f}"] for r in rows]))
    print(f"\nImports alone: {base:.0f} MiB. Chunk: {args.chunk:,} passages ({args.chunk * DIM * 4 / 2**20:.0f} MiB "
          "of embeddings).")


if __name__ == "__main__":
    main()
