"""What a faiss index file holds, read here before faiss is asked to read it.

faiss trusts its files: an IVF index may carry on-disk inverted lists whose path is stored inside the file (faiss
opens and memory-maps it while reading, before any check of ours could run), vector sizes it allocates before
comparing them with the file, and ids and graph links it follows into arrays without bounds. So an index file from
a workspace or the cache is walked here first, structure by structure, for exactly the index types the build
writes (`STRUCTURES`): its type and every nested index's, its metric, dimension and count, every vector inside the
file, every id and neighbour in range, and on-disk lists only where the caller expects them, named `index.ivfdata`
beside the index and lying inside that file. Anything else is an IndexFileError naming the file; faiss never sees
it. A verdict is kept per file (path, size, mtime, inode), so a file is walked once per process.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FLAT, HNSW, IVF, IVF_DISK = "flat", "hnsw", "ivf", "ivf-disk"
# the fourcc faiss writes for each structure the build makes (inner product only)
STRUCTURES = {FLAT: b"IxFI", HNSW: b"IHNf", IVF: b"IwFl", IVF_DISK: b"IwFl"}
LISTS_FILE = "index.ivfdata"
INNER_PRODUCT = 0
CHUNK = 1 << 22  # ids checked 4M at a time: bounded memory whatever the index size


class IndexFileError(ValueError):
    """A faiss index file is missing, truncated, forged or not the index it should be; the message names it."""


@dataclass(frozen=True)
class IndexFacts:
    """What the walk found: the structure, dimension and count, and for on-disk lists their file's name and size."""

    structure: str
    d: int
    ntotal: int
    lists_file: str | None = None
    totsize: int = 0


class _File:
    """Sequential reads of a file that refuse to go past its end (every size is checked before it is read)."""

    def __init__(self, handle, size: int, path: Path):
        self.f, self.size, self.path = handle, size, path

    def fail(self, what: str) -> IndexFileError:
        return IndexFileError(f"{self.path}: {what}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.f.tell() + n > self.size:
            raise self.fail("truncated or forged (a size inside it runs past the end of the file)")
        return self.f.read(n)

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.f.tell() + n > self.size:
            raise self.fail("truncated or forged (a size inside it runs past the end of the file)")
        self.f.seek(n, os.SEEK_CUR)

    def count(self, itemsize: int) -> int:
        """A vector's length (its size_t), checked to fit in the rest of the file."""
        n = self.unpack("Q")
        if n * itemsize > self.size - self.f.tell():
            raise self.fail("truncated or forged (a vector inside it runs past the end of the file)")
        return n

    def array(self, dtype, n: int) -> np.ndarray:
        return np.frombuffer(self.take(n * np.dtype(dtype).itemsize), dtype=dtype)

    def vector(self, dtype) -> np.ndarray:
        return self.array(dtype, self.count(np.dtype(dtype).itemsize))

    def in_range(self, dtype, n: int, lo: int, hi: int, what: str) -> None:
        """`n` values of `dtype` read in bounded chunks, each in [lo, hi)."""
        while n > 0:
            part = self.array(dtype, min(n, CHUNK))
            if len(part) and (part.min() < lo or part.max() >= hi):
                raise self.fail(f"{what} out of range (forged or damaged)")
            n -= len(part)


def _header(r: _File, fourcc: bytes, what: str) -> tuple[int, int]:
    """An index's fourcc and header: (d, ntotal); inner product only."""
    found = r.take(4)
    if found != fourcc:
        raise r.fail(f"{what} is of type {found.decode('latin-1')!r}, expected {fourcc.decode()!r}")
    d, ntotal, _, _, _, metric = r.unpack("iqqq?i")
    if metric != INNER_PRODUCT:
        raise r.fail(f"{what} does not use inner product (metric {metric})")
    if d <= 0 or ntotal < 0:
        raise r.fail(f"{what} has dimension {d} and {ntotal} vectors")
    return d, ntotal


def _flat(r: _File, what: str) -> tuple[int, int]:
    d, ntotal = _header(r, STRUCTURES[FLAT], what)
    if r.count(4) * 4 != ntotal * d * 4:
        raise r.fail(f"{what} holds vectors of another size than its {ntotal} x {d}")
    r.skip(ntotal * d * 4)
    return d, ntotal


def _hnsw(r: _File) -> tuple[int, int]:
    """An HNSW graph over a flat store: every link points at a stored vector, every level's range inside the
    neighbour table."""
    d, ntotal = _header(r, STRUCTURES[HNSW], "the index")
    r.skip(r.count(8) * 8)  # assign_probas
    cum = r.vector(np.int32).astype(np.int64)
    levels = r.vector(np.int32).astype(np.int64)
    offsets = r.vector(np.uint64)
    n_links = r.count(4)
    if (len(levels) != ntotal or len(offsets) != ntotal + 1 or len(cum) < 2 or (ntotal and (
            levels.min() < 1 or levels.max() >= len(cum))) or offsets[0] != 0 or int(offsets[-1]) != n_links
            or not np.array_equal(np.diff(offsets.astype(np.int64)), cum[levels])):
        raise r.fail("its HNSW graph does not fit its vectors (forged or damaged)")
    r.in_range(np.int32, n_links, -1, ntotal, "an HNSW link")
    entry, max_level, _, _, _ = r.unpack("iiiii")
    if ntotal and not (0 <= entry < ntotal and max_level == levels.max() - 1):
        raise r.fail("its HNSW entry point is out of range (forged or damaged)")
    if _flat(r, "its vector store") != (d, ntotal):
        raise r.fail("its vector store does not match the graph")
    return d, ntotal


def _array_lists(r: _File, nlist: int, code_size: int, ntotal: int) -> None:
    """In-memory inverted lists: sizes, then each list's codes and ids; ids name stored documents."""
    kind = r.take(4)
    if kind != b"full":
        raise r.fail(f"its inverted lists are stored as {kind.decode('latin-1')!r}, expected 'full'")
    sizes = r.vector(np.uint64)
    if len(sizes) != nlist or int(sizes.sum()) != ntotal:
        raise r.fail(f"its inverted lists hold {int(sizes.sum())} entries in {len(sizes)} lists, expected "
                     f"{ntotal} in {nlist}")
    for n in sizes.tolist():
        r.skip(n * code_size)
        r.in_range(np.int64, n, 0, ntotal, "an inverted-list id")


def _disk_lists(r: _File, nlist: int, code_size: int) -> tuple[str, int, np.ndarray]:
    """On-disk inverted lists: (the lists file's name, its size, each list's size/capacity/offset)."""
    n = r.count(24)  # size, capacity, offset of each list
    if n != nlist:
        raise r.fail(f"its on-disk lists describe {n} lists, expected {nlist}")
    lists = r.array(np.uint64, 3 * n)
    r.skip(r.count(16) * 16)  # free slots
    name = r.take(r.count(1)).decode("utf-8", "replace")
    totsize = r.unpack("Q")
    return name, totsize, lists.reshape(nlist, 3).astype(np.int64)


def _ivf(r: _File, on_disk: bool) -> tuple[int, int, tuple | None]:
    d, ntotal = _header(r, STRUCTURES[IVF], "the index")
    nlist, _ = r.unpack("QQ")
    if _flat(r, "its coarse quantizer") != (d, nlist) or nlist == 0:
        raise r.fail(f"its coarse quantizer does not hold its {nlist} centroids of dimension {d}")
    if r.unpack("B") != 0 or r.count(8) != 0:
        raise r.fail("it keeps a direct map, which the build never writes")
    kind, (lists_nlist, code_size) = r.take(4), r.unpack("QQ")
    if lists_nlist != nlist or code_size != d * 4:
        raise r.fail("its inverted lists do not match the index")
    if kind == b"ilar" and not on_disk:
        _array_lists(r, nlist, code_size, ntotal)
        return d, ntotal, None
    if kind == b"ilod" and on_disk:
        return d, ntotal, _disk_lists(r, nlist, code_size)
    if kind == b"ilar":
        raise r.fail("its lists are not on disk (they are inside the index file)")
    if kind == b"ilod":
        raise r.fail("its inverted lists are in a file of their own, which an index of this kind never has")
    raise r.fail(f"its inverted lists are stored as {kind.decode('latin-1')!r}, which the build never writes")


def _walk(path: Path, structure: str) -> tuple[IndexFacts, np.ndarray | None]:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        r = _File(handle, size, path)
        lists = None
        if structure == FLAT:
            d, ntotal = _flat(r, "the index")
        elif structure == HNSW:
            d, ntotal = _hnsw(r)
        else:
            d, ntotal, disk = _ivf(r, structure == IVF_DISK)
        if handle.tell() != size:
            raise r.fail(f"{size - handle.tell()} bytes follow the index (forged or damaged)")
    if structure != IVF_DISK:
        return IndexFacts(structure, d, ntotal), None
    name, totsize, lists = disk
    return IndexFacts(structure, d, ntotal, name, totsize), lists


def _check_lists_file(facts: IndexFacts, lists: np.ndarray, lists_path: Path) -> None:
    """The lists file beside the index: the size the index says, every list inside it, every id in range."""
    if Path(facts.lists_file).name != LISTS_FILE:
        raise IndexFileError(f"{lists_path.parent / 'index.faiss'}: its lists are in {facts.lists_file[:120]!r}, "
                             f"expected {LISTS_FILE} beside it")
    size = lists_path.stat().st_size
    if size != facts.totsize:
        raise IndexFileError(f"{lists_path}: {size} bytes, its index expects {facts.totsize}")
    code_size = facts.d * 4
    sizes, capacity, offset = lists[:, 0], lists[:, 1], lists[:, 2]
    if (sizes > capacity).any() or (offset < 0).any() or (offset + capacity * (code_size + 8) > size).any():
        raise IndexFileError(f"{lists_path}: a list lies outside the file")
    if int(sizes.sum()) != facts.ntotal:
        raise IndexFileError(f"{lists_path}: its lists hold {int(sizes.sum())} entries, the index {facts.ntotal}")
    with open(lists_path, "rb") as handle:
        r = _File(handle, size, lists_path)
        for n, cap, off in zip(sizes.tolist(), capacity.tolist(), offset.tolist()):
            handle.seek(off + cap * code_size)
            r.in_range(np.int64, n, 0, facts.ntotal, "an inverted-list id")


_VERDICTS: dict[tuple, IndexFacts] = {}


def _stamp(path: Path) -> tuple:
    s = path.stat()
    return (os.path.realpath(path), s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev)


def inspect_index(path: Path, structure: str, d: int | None = None, ntotal: int | None = None) -> IndexFacts:
    """Walk `path` as the `structure` index (STRUCTURES) of `d` dimensions holding `ntotal` vectors (None: any),
    and for `ivf-disk` its lists file beside it; IndexFileError naming the file unless all of it is sound."""
    path = Path(path)
    lists_path = path.parent / LISTS_FILE
    try:
        key = (_stamp(path), structure) + ((_stamp(lists_path),) if structure == IVF_DISK else ())
        facts = _VERDICTS.get(key)
        if facts is None:
            facts, lists = _walk(path, structure)
            if structure == IVF_DISK:
                _check_lists_file(facts, lists, lists_path)
            _VERDICTS[key] = facts
    except OSError as err:
        raise IndexFileError(f"{getattr(err, 'filename', None) or path}: cannot be read "
                             f"({err.strerror or err})") from err
    if d is not None and facts.d != d:
        raise IndexFileError(f"{path}: an index of dimension {facts.d}, expected {d}")
    if ntotal is not None and facts.ntotal != ntotal:
        raise IndexFileError(f"{path}: holds {facts.ntotal} documents, expected {ntotal}")
    return facts
