"""IVF indexes whose inverted lists live on disk (faiss's OnDiskInvertedLists), for corpora beyond RAM.

The index is trained on a seeded sample and filled from the document embeddings chunk by chunk, one shard per
chunk (each chunk of a memory-mapped matrix, or the chunks a Ray build wrote), which faiss merges into one lists
file; so building needs memory for one chunk, and searching memory-maps the lists. An index folder holds two files,
`index.faiss` (centroids and list offsets) and `index.ivfdata` (the lists), read together with faiss's
IO_FLAG_ONDISK_SAME_DIR, so a folder can be moved (a workspace is built in a temporary folder and renamed).
Both files are walked before faiss reads them (explorer.index_files): the lists file must be a plain file of the size
the index says, every list must lie inside it and every id name a document.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .index_files import IVF_DISK, LISTS_FILE, IndexFileError
from .lazy import Lazy

faiss = Lazy("faiss")

INDEX_FILE = "index.faiss"
TRAIN_PER_LIST = 256  # training sample: up to 256 points per list (faiss warns below 39)


OnDiskIndexError = IndexFileError  # an on-disk index folder is missing a file or does not match its lists

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


def load_on_disk(folder: Path, d: int | None = None, ntotal: int | None = None) -> object:
    """The index in `folder`, its lists memory-mapped read-only once both files are walked (explorer.index_files:
    an IVF index whose lists are `index.ivfdata` beside it, every list inside that file, every id in range, of
    dimension `d` holding `ntotal` documents when given); OnDiskIndexError naming the file otherwise."""
    from .data import NOT_A_FILE, path_kind
    from .index import load_index

    folder = Path(folder)
    lists = folder / LISTS_FILE
    kind = path_kind(lists)
    if lists.is_symlink() or kind != "file":
        why = "is missing" if kind == "missing" else NOT_A_FILE.get(kind, "is a symbolic link, not a plain file")
        raise OnDiskIndexError(f"{lists}: {why}; an on-disk index keeps its lists beside {INDEX_FILE}")
    return load_index(folder / INDEX_FILE, IVF_DISK, d, ntotal)


def on_disk_of_size(folder: Path, rows: int, d: int | None = None):
    """A cached on-disk index that must hold `rows` documents of dimension `d` (the build's cache reader)."""
    return load_on_disk(folder, d, rows)


def copy_on_disk(index, folder: Path) -> None:
    """Put `index` (loaded from the cache) into a workspace folder: its small index file written there, its lists
    file copied (a reflink where the file system offers one): a workspace never shares storage with the cache."""
    from .files import copy_file
    from .index import save_index

    source = Path(faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists).filename)
    folder.mkdir(parents=True, exist_ok=True)
    save_index(index, folder / INDEX_FILE)
    copy_file(source, folder / LISTS_FILE)
