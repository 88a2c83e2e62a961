"""Corpora of any size in bounded memory: embeddings encoded chunk by chunk into a memory-mapped array, and exact
search chunk by chunk keeping a top-k per query (as BEIR's exact search does).

Peak memory grows with the chunk, not with the corpus: each chunk's embeddings are saved (atomically) as they are
made, so a killed build continues from the last finished chunk; the finished array is read back memory-mapped, and
`ChunkedFlat` scores one chunk of it at a time.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .workspace import atomic_write, load_array, save_array

PART = "part-{:05d}.npy"


def chunks(texts: Sequence[str] | Iterable[str], size: int) -> Iterable[list[str]]:
    """`texts` in lists of `size` (the last one shorter); works on a list or on any iterable (a stream)."""
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_chunked(encode: Callable[[list[str]], np.ndarray], texts: Sequence[str] | Iterable[str], rows: int,
                   path: Path, chunk: int, on_chunk: Callable[[int, int, bool], None] | None = None) -> np.ndarray:
    """The (rows, d) float32 embeddings of `texts`, stored at `path` and returned memory-mapped.

    Chunk i is encoded into `<path>.parts/part-<i>.npy` unless a sound file of the right length is already there
    (a build killed midway resumes at the first missing chunk); the parts are then joined into `path` chunk by
    chunk and removed. `on_chunk(i, n_chunks, reused)` reports each chunk."""
    path = Path(path)
    parts = path.with_name(path.name + ".parts")
    n_chunks = max(1, -(-rows // chunk))
    sizes = [min(chunk, rows - i * chunk) for i in range(n_chunks)]
    for i, batch in enumerate(chunks(texts, chunk)):
        part = parts / PART.format(i)
        reused = _sound(part, sizes[i])
        if not reused:
            emb = np.ascontiguousarray(encode(batch), dtype=np.float32)
            atomic_write(part, lambda tmp, a=emb: save_array(tmp, a))
        if on_chunk:
            on_chunk(i, n_chunks, reused)
    _join(parts, sizes, path)
    shutil.rmtree(parts, ignore_errors=True)
    return load_array(path, mmap=True, ndim=2)


def _sound(part: Path, rows: int) -> bool:
    try:
        return len(load_array(part, mmap=True, ndim=2)) == rows
    except Exception:  # a missing, truncated or damaged part is encoded again
        return False


def _join(parts: Path, sizes: list[int], path: Path) -> None:
    """Write the parts, in order, into one .npy at `path` (atomically), one part in memory at a time: plain file
    writes, not a memory map, so no page of the whole array stays resident."""
    dim = load_array(parts / PART.format(0), mmap=True, ndim=2).shape[1]
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (sum(sizes), dim)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
            for i in range(len(sizes)):
                out.write(np.ascontiguousarray(load_array(parts / PART.format(i), ndim=2), dtype=np.float32).data)

    atomic_write(path, write)


class ChunkedFlat:
    """Exact inner-product search over a (memory-mapped) embedding matrix, `chunk` documents at a time: a faiss-like
    `search(queries, k) -> (scores, rows)` whose peak memory is queries x chunk, whatever the corpus size."""

    kind = "chunked-exact"

    def __init__(self, emb: np.ndarray, chunk: int = 50_000):
        self.emb, self.chunk = emb, int(chunk)
        self.ntotal = len(emb)

    def _block(self, start: int) -> np.ndarray:
        """Documents start..start+chunk: read from the file when `emb` is memory-mapped (the mapping's pages would
        otherwise stay resident, growing the process to the corpus size), else a view."""
        stop = min(start + self.chunk, self.ntotal)
        emb = self.emb
        if isinstance(emb, np.memmap) and emb.filename and emb.dtype == np.float32 and emb.flags.c_contiguous:
            dim = emb.shape[1]
            return np.fromfile(emb.filename, dtype=np.float32, count=(stop - start) * dim,
                               offset=emb.offset + start * dim * 4).reshape(stop - start, dim)
        return np.asarray(emb[start:stop], dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.ntotal)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_r = np.zeros((len(q), 0), dtype=np.int64)
        for start in range(0, self.ntotal, self.chunk):
            block = self._block(start)
            sims = q @ block.T
            take = min(k, sims.shape[1])
            top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
            best_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
            best_r = np.concatenate([best_r, top + start], axis=1)
            if best_s.shape[1] > k:  # keep the running top-k
                keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_s, best_r = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_r, keep, axis=1)
        order = np.lexsort((best_r, -best_s), axis=1) if best_s.size else np.zeros_like(best_r)
        return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_r, order, axis=1)
