"""The machinery of the build's stages: the progress log the manifest keeps, and the one cached-stage helper.

Heavy work (encoding corpora and queries, indexing, layouts) is cached by content key in `cache_dir`: a stage asks
`Stages.cached(...)` for its value, which loads the entry when it is there, matches the checksum stored beside it
and reads, or computes it, saves it atomically with its checksum and records which happened. A damaged or changed
entry is warned about and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from .files import checksum_problem, remove_entry, write_checksum
from .workspace import atomic_write, load_array, remove_stale, save_array

T = TypeVar("T")

# The build's top-level stages, in order, as a person reads them in a progress line.
BUILD_STAGES = {
    "datasets": "reading the datasets", "encoder": "loading the base encoder", "corpora": "encoding the corpora",
    "experts": "training the experts", "queries": "encoding the queries", "search": "searching and scoring",
    "routing": "routing every strategy", "layout": "drawing the 2-D layouts", "write": "writing the workspace",
    # after the workspace is written (the app opens it meanwhile): a UMAP layout not in the cache (build.add_umap)
    "umap": "adding the UMAP layout",
}
OPENS_AFTER = list(BUILD_STAGES).index("write") + 1  # the stages a first start waits for


def content_key(*parts) -> str:
    """A short stable hash of JSON-able parts: the cache key of whatever they determine."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageLog:
    """Which stages ran and which came from the cache, kept in the manifest (and read by tests). Each top-level
    stage prints one line and each finished item one line with its time; `status` (if given) receives where the
    build is: stage i of n, its label, and items done of the stage's total."""

    entries: dict = field(default_factory=dict)
    echo: Callable[[str], None] = print
    status: Callable[[dict], None] | None = None
    current: dict = field(default_factory=dict)
    walls: dict = field(default_factory=dict)  # stage -> wall-clock seconds (items may overlap in workers)
    since: float = 0.0

    def begin(self, stage: str, line: str, items: int = 0) -> None:
        self.wall()
        self.since = time.perf_counter()
        self.echo(line)
        index = list(BUILD_STAGES).index(stage) + 1  # "stage i of n" counts the stages before the workspace opens
        self.current = {"stage": index, "stages": max(index, OPENS_AFTER), "name": stage,
                        "label": BUILD_STAGES[stage], "line": line, "done": 0, "items": items}
        self._report()

    def wall(self) -> dict:
        """Wall-clock seconds of every stage begun so far (the current one: until now)."""
        if self.current:
            self.walls[self.current["name"]] = round(time.perf_counter() - self.since, 1)
        return dict(self.walls)

    def record(self, stage: str, key: str, cached: bool, seconds: float) -> None:
        self.entries[stage] = {"key": key, "cached": cached, "seconds": round(seconds, 3)}
        self.echo(f"  {stage}: {'cached' if cached else f'done in {seconds:.1f}s'}")
        if self.current:
            self.current["done"] += 1
            self._report()

    def _report(self) -> None:
        if self.status:
            self.status(dict(self.current))


@dataclass
class Stages:
    """The cache folder and the log of one build."""

    cache: Path
    log: StageLog
    # item -> (value, seconds): computed by a worker process of this build (explorer.workers); seconds None when the
    # item was recorded as it finished
    precomputed: dict = field(default_factory=dict)

    def cached(self, item: str, key: str, path: Path, read: Callable[[Path], T], compute: Callable[[], T],
               save: Callable[[Path, T], None]) -> T:
        """Key -> load or compute -> atomic save -> record: `read(path)` when the entry is there and sound, else
        `compute()`, saved with `save(path, value)` (which writes atomically), and the log says which it was."""
        if item in self.precomputed:
            value, seconds = self.precomputed.pop(item)
            save(path, value)
            write_checksum(path)
            if seconds is not None:
                self.log.record(item, key, False, seconds)
            return value
        start = time.perf_counter()
        value = read_cache(path, read, self.log.echo)
        hit = value is not None
        if not hit:
            value = compute()
            save(path, value)
            write_checksum(path)
        self.log.record(item, key, hit, time.perf_counter() - start)
        return value

    def timed(self, item: str, key: str, compute: Callable[[], T]) -> T:
        """A stage that is never cached (seconds of work), timed and recorded like the cached ones."""
        start = time.perf_counter()
        value = compute()
        self.log.record(item, key, False, time.perf_counter() - start)
        return value


def save_array_atomically(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: save_array(tmp, array))


def _unusable(path: Path, reason: str, echo: Callable[[str], None]) -> None:
    echo(f"  warning: the cache file {path} cannot be used ({reason}); computing it again")
    remove_entry(path)


def sound_entry(entry: Path, echo: Callable[[str], None]) -> bool:
    """Whether a cache entry (a file or a folder) is there and holds exactly what was stored (its checksum); one
    that does not is warned about and removed, to be computed again."""
    if not entry.exists() and not entry.is_symlink():
        return False
    problem = checksum_problem(entry)
    if problem:
        _unusable(entry, problem, echo)
    return problem is None


def read_cache(path: Path, read: Callable[[Path], T], echo: Callable[[str], None]) -> T | None:
    """A cache entry, or None to recompute it: when it is not there, no longer matches its checksum (changed
    behind the cache's back), or fails to read (a truncated or damaged file, of the wrong shape), which is warned
    about and then overwritten."""
    if not sound_entry(path, echo):
        return None
    try:
        return read(path)
    except Exception as err:  # any failure of a cache read means: compute it again
        _unusable(path, str(err).replace(f"{path}: ", "").split(" (fix:")[0][:200], echo)
        return None


def array_of_rows(rows: int, mmap: bool = False) -> Callable[[Path], np.ndarray]:
    """A reader of a cached 2-D array that must have `rows` rows (memory-mapped with `mmap`)."""
    def read(path: Path) -> np.ndarray:
        array = load_array(path, mmap=mmap, ndim=2)
        if len(array) != rows:
            raise ValueError(f"{len(array)} rows, expected {rows}")
        return array
    return read


def index_of_size(rows: int, structure: str, d: int) -> Callable[[Path], object]:
    """A reader of a cached faiss index that must be a `structure` index (flat, hnsw, ivf) of `rows` documents of
    dimension `d`, walked before faiss reads it (explorer.index_files)."""
    def read(path: Path):
        from .index import load_index

        return load_index(path, structure, d, rows)
    return read


def partial_dir(folder: Path) -> Path:
    """`<key>.partial-<pid>` beside `folder`, after deleting those of builds that are gone (never a live one's):
    two builds training the same expert at once never share one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)  # the old name, without a pid
    remove_stale(folder.parent, f"{folder.name}.partial-")
    return folder.with_name(f"{folder.name}.partial-{os.getpid()}")


def finish_dir(tmp: Path, folder: Path) -> None:
    """Move a finished partial folder into place with its checksum; if another build finished the same entry
    first, keep theirs."""
    if (folder / "card.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    write_checksum(folder)
