"""Shared fixtures. Expensive ones (the encoder, the sample workspace) are built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: dict[str, list[tuple]]) -> Path:
    """A small BEIR folder from Python objects (qrels: split -> [(qid, docid, grade)])."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        body = "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body, encoding="utf-8")
    return folder


def two_domain_config(path: Path, cache: Path, tables: str = "", experts: str | None = None,
                      names: tuple[str, ...] = ("homefix", "pycode"), max_pairs: int = 32) -> Path:
    """A small build config on two sample domains (few queries, one epoch, no UMAP: seconds a stage), written to
    `path`. `tables`: more TOML tables (e.g. "[index]\nchunk_docs = 30\n"); `experts`: [[experts]] tables in
    place of one LoRA expert per domain."""
    sample = ROOT / "sample_data"
    text = f'title = "{path.stem}"\ncache_dir = "{cache}"\n{tables}[training]\nepochs = 1\n[layout]\numap = false\n'
    for name in ("homefix", "pycode"):
        text += (f'[[datasets]]\nname = "{name}"\npath = "{sample / name}"\ntrain_split = "train"\n'
                 "max_pilot_queries = 20\nmax_eval_queries = 10\n")
    if experts is None:
        experts = "".join(f'[[experts]]\nname = "{n}"\nsources = [{{dataset = "{n}", source = "qrels", '
                          f"max_pairs = {max_pairs}}}]\n" for n in names)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + experts)
    return path


def forge_outside_lists(emb: np.ndarray, index_path: Path, lists_path: Path, nlist: int = 4) -> None:
    """An IVF index whose inverted lists live in `lists_path`, made as faiss.contrib.ondisk makes one: the lists
    file's absolute path is stored inside the index file, and faiss opens it while reading the index."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    trained = faiss.IndexIVFFlat(faiss.IndexFlatIP(emb.shape[1]), emb.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    trained.train(emb)
    shard = faiss.clone_index(trained)
    shard.add_with_ids(emb, np.arange(len(emb), dtype=np.int64))
    faiss.write_index(shard, str(lists_path) + ".shard")
    merge_ondisk(trained, [str(lists_path) + ".shard"], str(lists_path))
    os.unlink(str(lists_path) + ".shard")
    index_path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(trained, str(index_path))


def shorten_and_age(path: Path) -> None:
    """Cut the file to a quarter (a search reaching past its end would die of SIGBUS) and set its access time to
    the epoch: any open-and-map of it moves the access time (relatime), so it shows whether it was opened."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 4])
    os.utime(path, (0, path.stat().st_mtime))


@pytest.fixture(scope="session")
def trains():
    """Asked for by every fixture that loads a model, trains an expert, builds a workspace or reads ../shared/data:
    the tests that need it (or are marked slow themselves) are the slow lane; `make test-fast` runs the others."""
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "trains" in getattr(item, "fixturenames", ()) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_beir(tmp_path) -> Path:
    corpus = [{"_id": f"d{i}", "title": f"Title {i}", "text": f"document number {i} about topic {i % 3}"}
              for i in range(6)]
    queries = [{"_id": "q1", "text": "topic 1"}, {"_id": "q2", "text": "topic 2"}]
    return write_beir(tmp_path / "tiny", corpus, queries, {"test": [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1)]})


@pytest.fixture(scope="session")
def encoder(trains):
    from explorer.encoders import Encoder

    return Encoder()


@pytest.fixture(scope="session")
def shared_data(trains) -> Path:
    """The real BEIR datasets beside the repository. Missing data fails (never skips): CI always has them."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: the real-data tests need ../shared/data"
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_workspace(tmp_path_factory, trains):
    """The sample workspace, built once from sample_data/sample.toml into a temporary folder, with the config's
    own cache (.explorer-cache, the one `make run` uses): running one after the other trains nothing twice."""
    from explorer.build import build
    from explorer.config import load_config

    cfg = load_config(ROOT / "sample_data" / "sample.toml")
    out = tmp_path_factory.mktemp("ws") / "sample"
    ws = build(cfg, out, progress=False)
    return ws
