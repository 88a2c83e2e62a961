"""Hostile faiss files: every index file is walked before faiss reads it, so a forged one is refused with its name
and faiss never opens a file it names, allocates a size it states or follows an id out of range. Model-free; the
risky reads run in a subprocess, so a crash (SIGBUS, SIGSEGV) fails the test instead of killing pytest."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.index import build_index, load_index, save_index
from explorer.index_files import IndexFileError, inspect_index
from explorer.ondisk import INDEX_FILE, LISTS_FILE, build_ivf_on_disk, load_on_disk

from .conftest import forge_outside_lists, shorten_and_age

D, N = 16, 400


def docs(seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(N, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


LOAD = """
import sys
from explorer.index import load_index
from explorer.index_files import IndexFileError
from explorer.ondisk import load_on_disk
path, structure = sys.argv[1], sys.argv[2]
try:
    index = load_on_disk(__import__("pathlib").Path(path).parent, 16, 400) if structure == "ivf-disk" else \\
        load_index(path, structure, 16, 400)
except IndexFileError as err:
    print("refused:", err)
    sys.exit(0)
import numpy as np
index.nprobe = index.nlist
print("searched:", index.search(np.ones((1, 16), dtype=np.float32), 5)[1].tolist())
"""


def load_in_subprocess(path: Path, structure: str) -> str:
    proc = subprocess.run([sys.executable, "-c", LOAD, str(path), structure], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, f"the reader died ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("structure", ["flat", "ivf", "ivf-disk"])
def test_an_index_with_lists_outside_its_folder_is_refused_and_the_file_never_opened(tmp_path, structure):
    outside = tmp_path / "elsewhere" / LISTS_FILE  # even named as the lists file, it is not the one beside
    outside.parent.mkdir()
    index = tmp_path / "ws" / INDEX_FILE
    forge_outside_lists(docs(), index, outside)
    shorten_and_age(outside)
    if structure == "ivf-disk":  # a plain lists file of the right name beside it changes nothing
        (index.parent / LISTS_FILE).write_bytes(b"\0" * 64)
    out = load_in_subprocess(index, structure)
    assert out.startswith(f"refused: {index}: ") or out.startswith(f"refused: {index.parent / LISTS_FILE}: "), out
    assert outside.stat().st_atime == 0, "faiss opened the file outside the folder"


def _hnsw_with_a_bad_link(path: Path) -> None:
    save_index(build_index(docs(), "hnsw"), path)
    data = bytearray(path.read_bytes())
    at = 4 + 33
    for itemsize in (8, 4, 4, 8):  # assign_probas, cum_nneighbor_per_level, levels, offsets
        at += 8 + itemsize * struct.unpack_from("<Q", data, at)[0]
    data[at + 8:at + 12] = struct.pack("<i", 10**9)  # the first link of the neighbour table
    path.write_bytes(bytes(data))


def _ivf_with_a_bad_id(path: Path) -> None:
    save_index(build_index(docs(), "ivf", ivf_lists=4), path)
    data = bytearray(path.read_bytes())
    data[-8:] = struct.pack("<q", 10**12)  # the last id of the last list
    path.write_bytes(bytes(data))


def _flat_with_a_huge_vector(path: Path) -> None:
    save_index(build_index(docs(), "flat"), path)
    data = bytearray(path.read_bytes())
    data[4 + 33:4 + 33 + 8] = struct.pack("<Q", 1 << 39)  # faiss would allocate 2 TB before reading
    path.write_bytes(bytes(data))


def _nested_quantizer(path: Path) -> None:
    """An IVF index whose coarse quantizer is itself an IVF index (faiss reads a nested index with no flags)."""
    import faiss

    inner = build_index(docs(), "ivf", ivf_lists=2)
    outer = faiss.IndexIVFFlat(inner, D, 4, faiss.METRIC_INNER_PRODUCT)
    outer.train(docs())
    outer.add(docs())
    faiss.write_index(outer, str(path))


FORGED = {
    "another-type": ("hnsw", lambda p: save_index(build_index(docs(), "flat"), p), "of type 'IxFI', expected 'IHNf'"),
    "l2-metric": ("ivf", lambda p: __import__("faiss").write_index(_l2(), str(p)), "does not use inner product"),
    "wrong-dimension": ("flat", lambda p: save_index(build_index(docs()[:, :8].copy(), "flat"), p),
                        "an index of dimension 8, expected 16"),
    "wrong-count": ("flat", lambda p: save_index(build_index(docs()[:50], "flat"), p), "holds 50 documents"),
    "huge-vector": ("flat", _flat_with_a_huge_vector, "runs past the end of the file"),
    "truncated": ("ivf", lambda p: (save_index(build_index(docs(), "ivf", ivf_lists=4), p),
                                    p.write_bytes(p.read_bytes()[:-100])), "truncated or forged"),
    "trailing-bytes": ("flat", lambda p: (save_index(build_index(docs(), "flat"), p),
                                          p.write_bytes(p.read_bytes() + b"x" * 9)), "9 bytes follow the index"),
    "hnsw-link-out-of-range": ("hnsw", _hnsw_with_a_bad_link, "an HNSW link out of range"),
    "ivf-id-out-of-range": ("ivf", _ivf_with_a_bad_id, "an inverted-list id out of range"),
    "nested-quantizer": ("ivf", _nested_quantizer, "its coarse quantizer is of type 'IwFl', expected 'IxFI'"),
    "garbage": ("flat", lambda p: p.write_bytes(b"IxFI" + os.urandom(300)), "index"),
}


def _l2():
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(D), D, 4, faiss.METRIC_L2)
    index.train(docs())
    index.add(docs())
    return index


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_index_file_is_refused_before_faiss_reads_it(tmp_path, case):
    structure, forge, expected = FORGED[case]
    path = tmp_path / "index.faiss"
    forge(path)
    out = load_in_subprocess(path, structure)
    assert out.startswith(f"refused: {path}: ") and expected in out, out


def test_an_on_disk_index_whose_ids_are_random_bytes_is_refused(tmp_path):
    """The lists file has the right size, but its bytes are random: ids are checked before any search."""
    build_ivf_on_disk(docs(), tmp_path / "idx", chunk=100, nlist=4)
    lists = tmp_path / "idx" / LISTS_FILE
    lists.write_bytes(np.random.default_rng(3).bytes(lists.stat().st_size))
    out = load_in_subprocess(tmp_path / "idx" / INDEX_FILE, "ivf-disk")
    assert out.startswith(f"refused: {lists}: an inverted-list id out of range"), out


def test_sound_indexes_load_read_only_and_search(tmp_path):
    for kind in ("flat", "hnsw", "ivf"):
        save_index(build_index(docs(), kind, ivf_lists=4), tmp_path / f"{kind}.faiss")
        index = load_index(tmp_path / f"{kind}.faiss", kind, D, N)
        assert index.ntotal == N and index.search(docs()[:2], 1)[1][:, 0].tolist() == [0, 1]
    build_ivf_on_disk(docs(), tmp_path / "idx", chunk=150, nlist=4)
    lists = tmp_path / "idx" / LISTS_FILE
    before = lists.read_bytes()
    index = load_on_disk(tmp_path / "idx", D, N)
    index.nprobe = 4
    assert index.search(docs()[:2], 1)[1][:, 0].tolist() == [0, 1]
    import faiss

    assert faiss.downcast_InvertedLists(index.invlists).read_only  # mapped read-only: never written
    assert lists.read_bytes() == before
    with pytest.raises(IndexFileError, match="expected 'IxFI'"):
        inspect_index(tmp_path / "idx" / INDEX_FILE, "flat")
