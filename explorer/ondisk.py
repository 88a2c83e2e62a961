"""IVF indexes whose inverted lists live on disk (faiss's OnDiskInvertedLists), for corpora beyond RAM.

The index is trained on a seeded sample and filled from the document embeddings chunk by chunk, one shard per
chunk (each chunk of a memory-mapped matrix, or the chunks a Ray build wrote), which faiss merges into one lists
file; so building needs memory for one chunk, and searching memory-maps the lists. An index folder holds two files,
`index.faiss` (centroids and list offsets) and `index.ivfdata` (the lists), read together with faiss's
IO_FLAG_ONDISK_SAME_DIR, so a folder can be moved (a workspace is built in a temporary folder and renamed).
A lists file is checked against its index before any search: it must be a plain file of the size the index says,
and every list must lie inside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .lazy import Lazy

faiss = Lazy("faiss")

INDEX_FILE, LISTS_FILE = "index.faiss", "index.ivfdata"
TRAIN_PER_LIST = 256  # training sample: up to 256 points per list (faiss warns below 39)


class OnDiskIndexError(ValueError):
    """An on-disk index folder is missing a file or does not match its lists; the message names the file."""


def train_ivf(doc_emb: np.ndarray, nlist: int, seed: int = 0):
    """An empty IVF-flat index trained on up to TRAIN_PER_LIST x `nlist` seeded documents (all of them, in order,
    when the corpus is that small)."""
    n, d = doc_emb.shape
    take = min(n, TRAIN_PER_LIST * nlist)
    picks = np.arange(n) if take == n else np.sort(np.random.default_rng(seed).choice(n, take, replace=False))
    trained = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    trained.train(np.ascontiguousarray(np.asarray(doc_emb[picks]), dtype=np.float32))
    return trained


def build_ivf_on_disk(doc_emb: np.ndarray, folder: Path, chunk: int, nlist: int | None = None,
                      seed: int = 0) -> object:
    """An IVF-flat index over `doc_emb` with its lists in `folder`, written into a temporary sibling and renamed
    into place (a killed build leaves no half index). Up to `TRAIN_PER_LIST` x nlist seeded documents train it
    (all of them, in order, for a corpus that small: then it equals build_index's in-memory IVF)."""
    from faiss.contrib.ondisk import merge_ondisk

    from .workspace import remove_stale

    n = len(doc_emb)
    trained = train_ivf(doc_emb, nlist or max(1, int(np.sqrt(n))), seed)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(folder.parent, f".{folder.name}.tmp-")
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "shards").mkdir(parents=True)
    faiss.write_index(trained, str(tmp / "trained.faiss"))
    shards = []
    for i, start in enumerate(range(0, n, chunk)):
        shard = faiss.read_index(str(tmp / "trained.faiss"))
        block = np.ascontiguousarray(np.asarray(doc_emb[start:start + chunk]), dtype=np.float32)
        shard.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
        shards.append(str(tmp / "shards" / f"{i:05d}.faiss"))
        faiss.write_index(shard, shards[-1])
        del shard, block
    merge_ondisk(trained, shards, str(tmp / LISTS_FILE))
    faiss.write_index(trained, str(tmp / INDEX_FILE))
    shutil.rmtree(tmp / "shards")
    (tmp / "trained.faiss").unlink()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return load_on_disk(folder)


def load_on_disk(folder: Path) -> object:
    """The index in `folder`, its lists memory-mapped; OnDiskIndexError naming the file when a file is missing, a
    link, or the lists do not fit the file."""
    from .data import NOT_A_FILE, path_kind
    from .index import load_index

    folder = Path(folder)
    lists = folder / LISTS_FILE
    kind = path_kind(lists)
    if lists.is_symlink() or kind != "file":
        why = "is missing" if kind == "missing" else NOT_A_FILE.get(kind, "is a symbolic link, not a plain file")
        raise OnDiskIndexError(f"{lists}: {why}; an on-disk index keeps its lists beside {INDEX_FILE}")
    index = load_index(folder / INDEX_FILE, faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)  # never written
    check_lists(index, lists)
    return index


def on_disk_of_size(folder: Path, rows: int):
    """A cached on-disk index that must hold `rows` documents (the build's cache reader)."""
    index = load_on_disk(folder)
    if index.ntotal != rows:
        raise ValueError(f"{index.ntotal} documents, expected {rows}")
    return index


def check_lists(index, lists: Path) -> None:
    """Every inverted list of `index` lies inside the file `lists`, which is as long as the index says: a forged
    index cannot make a search read past the memory-mapped file."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError as err:
        raise OnDiskIndexError(f"{lists.parent / INDEX_FILE}: not an IVF index") from err
    ondisk = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(ondisk, faiss.OnDiskInvertedLists):
        raise OnDiskIndexError(f"{lists.parent / INDEX_FILE}: its lists are not on disk")
    size = lists.stat().st_size
    entry = ivf.code_size + np.dtype(np.int64).itemsize  # a code and its id per entry
    if Path(ondisk.filename).name != LISTS_FILE or ondisk.totsize != size:
        raise OnDiskIndexError(f"{lists}: {size} bytes, its index expects {ondisk.totsize} in {LISTS_FILE}")
    for i in range(ondisk.lists.size()):
        item = ondisk.lists.at(i)
        if item.size > item.capacity or item.offset + item.capacity * entry > size:
            raise OnDiskIndexError(f"{lists}: list {i} lies outside the file")


def copy_on_disk(index, folder: Path) -> None:
    """Put `index` (loaded from the cache) into a workspace folder: its small index file written there, its lists
    file linked (cache entries are never rewritten in place, so a hard link is safe) or else copied."""
    from .index import save_index

    source = Path(faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists).filename)
    folder.mkdir(parents=True, exist_ok=True)
    save_index(index, folder / INDEX_FILE)
    try:
        os.link(source, folder / LISTS_FILE)
    except OSError:
        shutil.copyfile(source, folder / LISTS_FILE)
