"""The workspace on disk: written atomically by the build, read lazily by the CLI and the app.

Layout and columns are documented in docs/workspace.md. Tables are Parquet, vectors `.npy` read with
`allow_pickle=False`, adapters peft folders, indexes faiss files; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from . import WORKSPACE_FORMAT_VERSION


class WorkspaceError(ValueError):
    pass


@contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out`, on failure or a kill `out` is untouched."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def recover_interrupted_swap(out: Path) -> None:
    """If a build died between its two renames, put the previous workspace back."""
    if not out.exists():
        olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            olds[-1].rename(out)


def save_array(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def save_table(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def encoder_file(index: int) -> str:
    return f"enc{index:02d}.npy"


class Workspace:
    """Read API over a built workspace; every table is loaded on first use and kept."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not self.path.is_dir():
            raise WorkspaceError(f"{self.path}: no such folder (fix: build one with `explorer build CONFIG --out "
                                 f"{self.path}`)")
        if not manifest_path.is_file():
            raise WorkspaceError(f"{self.path}: not a workspace, it has no manifest.json (fix: point to a folder "
                                 f"made by `explorer build`)")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise WorkspaceError(f"{manifest_path}: unreadable ({err}) (fix: rebuild the workspace)") from err
        version = self.manifest.get("format_version")
        if not isinstance(version, int):
            raise WorkspaceError(f"{manifest_path}: no format_version (fix: rebuild the workspace)")
        if version > WORKSPACE_FORMAT_VERSION:
            raise WorkspaceError(f"{self.path}: workspace format {version} is newer than this explorer reads "
                                 f"({WORKSPACE_FORMAT_VERSION}) (fix: upgrade router-explorer, or rebuild the "
                                 f"workspace with this version)")

    # --- manifest views -------------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.manifest.get("title", self.path.name)

    @property
    def encoders(self) -> list[str]:
        return list(self.manifest["encoders"])

    @property
    def experts(self) -> list[dict]:
        return list(self.manifest["experts"])

    @property
    def candidates(self) -> list[str]:
        return list(self.manifest["candidates"])

    @property
    def datasets(self) -> list[str]:
        return [d["name"] for d in self.manifest["datasets"]]

    def dataset_info(self, name: str) -> dict:
        return next(d for d in self.manifest["datasets"] if d["name"] == name)

    @property
    def strategies(self) -> list[str]:
        return [s["name"] for s in self.manifest["strategies"]]

    def strategy_info(self, name: str) -> dict:
        return next(s for s in self.manifest["strategies"] if s["name"] == name)

    @property
    def measures(self) -> list[str]:
        return list(self.manifest["measures"])

    @property
    def own_expert(self) -> dict[str, str]:
        return dict(self.manifest["own_expert"])

    def expert_card(self, name: str) -> dict:
        path = self.path / "experts" / name / "card.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def adapter_dir(self, name: str) -> Path:
        return self.path / "experts" / name

    # --- tables ---------------------------------------------------------------------------------------------
    def _table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / name)

    @cached_property
    def queries(self) -> pd.DataFrame:
        """One row per query (`row` = its position in every embedding array): qid, dataset, role, text, kind."""
        return self._table("queries.parquet")

    @cached_property
    def qrels_table(self) -> pd.DataFrame:
        return self._table("qrels.parquet")

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """Per-query metrics of every encoder on every query: system, row, one column per measure."""
        return self._table("metrics.parquet")

    @cached_property
    def strategy_metrics(self) -> pd.DataFrame:
        """Per-query metrics of every strategy on the evaluated queries: strategy, row, measures."""
        return self._table("strategy_metrics.parquet")

    @cached_property
    def decisions(self) -> pd.DataFrame:
        """strategy, row, chosen, margin, score:<encoder>..., weight:<encoder>..."""
        return self._table("decisions.parquet")

    @cached_property
    def runs(self) -> pd.DataFrame:
        """system, row, rank, doc (corpus position), score. system = an encoder, or mix:<strategy>."""
        return self._table("runs.parquet")

    @cached_property
    def pilots(self) -> pd.DataFrame:
        return self._table("pilots.parquet")

    @cached_property
    def pilot_labels(self) -> pd.DataFrame:
        return self._table("pilot_labels.parquet")

    @cached_property
    def layout(self) -> pd.DataFrame:
        return self._table("layout.parquet")

    @cached_property
    def pilot_centroids(self) -> np.ndarray:
        return load_array(self.path / "pilots.npy")

    def embeddings(self, encoder: str = "base") -> np.ndarray:
        return self._embeddings(self.encoders.index(encoder))

    def _embeddings(self, index: int) -> np.ndarray:
        key = f"_emb{index}"
        if key not in self.__dict__:
            self.__dict__[key] = load_array(self.path / "embeddings" / encoder_file(index))
        return self.__dict__[key]

    def docs(self, dataset: str) -> pd.DataFrame:
        key = f"_docs:{dataset}"
        if key not in self.__dict__:
            self.__dict__[key] = self._table(f"datasets/{dataset}/docs.parquet")
        return self.__dict__[key]

    def doc_embeddings(self, dataset: str) -> np.ndarray:
        return load_array(self.path / "datasets" / dataset / "doc_emb.npy")

    def qrels(self, dataset: str, role: str = "eval") -> dict[str, dict[str, int]]:
        t = self.qrels_table
        t = t[(t["dataset"] == dataset) & (t["role"] == role)]
        out: dict[str, dict[str, int]] = {}
        for qid, did, grade in zip(t["qid"], t["doc_id"], t["grade"]):
            out.setdefault(qid, {})[did] = int(grade)
        return out

    def eval_rows(self, dataset: str | None = None) -> pd.DataFrame:
        q = self.queries
        q = q[q["role"] == "eval"]
        return q if dataset is None else q[q["dataset"] == dataset]

    def ranking(self, system: str, row: int, depth: int = 10) -> pd.DataFrame:
        """Top `depth` of one query under one encoder (or mix:<strategy>): rank, doc_id, title, text, score, grade."""
        r = self.runs
        hits = r[(r["system"] == system) & (r["row"] == row)].sort_values("rank").head(depth)
        q = self.queries.iloc[row]
        docs = self.docs(q["dataset"])
        judged = self.qrels(q["dataset"], q["role"]).get(q["qid"], {})
        out = docs.iloc[hits["doc"].to_numpy()][["doc_id", "title", "text"]].reset_index(drop=True)
        out.insert(0, "rank", hits["rank"].to_numpy())
        out["score"] = hits["score"].to_numpy()
        out["grade"] = [judged.get(d) for d in out["doc_id"]]
        return out

    def strategy_system(self, strategy: str, row: int) -> str:
        """The run a strategy used for a query: its chosen encoder, or mix:<strategy> for a merged encode."""
        d = self.decisions
        chosen = d[(d["strategy"] == strategy) & (d["row"] == row)]["chosen"].iloc[0]
        return f"mix:{strategy}" if chosen == "mixture" else chosen
