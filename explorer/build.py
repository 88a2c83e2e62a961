"""config -> stages -> workspace.

`build()` is the list of stages, in order; each is a method of `Build` that reads what earlier ones left and adds
its own. Heavy stages (document encoding, expert training, query encoding, indexing, layouts) are cached by
content key in `cache_dir` through one helper (explorer.stages), so a rebuild after adding one expert trains and
encodes only that expert. Routing, metrics and what the app reads are recomputed every time (seconds). The
workspace is written into a temporary folder and swapped in at the end; the config given is never changed.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import WORKSPACE_FORMAT_VERSION, __version__
from .base_model import base_fingerprint
from .capabilities import LEXICAL
from .chunked import ChunkedFlat, encode_chunked
from .config import BuildConfig, DatasetSpec, ExpertSpec, config_error, load_config
from .data import JUDGED_TRAIN, NOT_A_FOLDER, BeirDataset, DataError, Problem, load_beir, path_kind, split_judged
from .encoders import Encoder
from .engines import corpus_devices, ray_encoder
from .analysis import significance_tables
from .evaluation import per_query, run_dict
from .experts import EXPERT_KINDS
from .files import write_checksum
from .fusion import pool_of, run_arrays
from .index import ON_DISK, Run, build_index, resolve_kind, save_index, search, tune_ivf
from .lexical import LexicalError, build_lexical, indexable, load_lexical, save_lexical
from .ondisk import build_ivf_on_disk, on_disk_of_size
from .names import SystemName
from .pilot import TIE_RULES
from .projection import pca_layout, umap_layout
from .rankmetrics import judgements_for
from .routing import all_strategies, routing_context
from .runs import ImportedRun, RunTarget, import_run
from .settings import Problems
from .stages import (BUILD_STAGES, StageLog, Stages, array_of_rows, content_key, finish_dir, index_of_size,
                     partial_dir, read_cache, save_array_atomically, sound_entry)
from .training import TRAIN_DEFAULTS, balanced_union, make_pairs, train_expert
from .workers import run_in_workers, worker_count
from .workspace import (META_PREFIX, UMAP_PENDING, Workspace, WorkspaceError, WorkspaceWriter, atomic_dir, atomic_write,
                        check_output, check_writable)

__all__ = ["build", "BUILD_STAGES", "StageLog", "QuerySet"]

PILOT_CROP_SEED_OFFSET = 7919  # pilot pseudo-queries use other crops than training
FINGERPRINTS = "fingerprints.json"  # in cache_dir: the base model's large files' digests by path, size and mtime
_hash = content_key


def build(config: BuildConfig | str | Path, out: str | Path, echo: Callable[[str], None] = print,
          progress: bool = True, status: Callable[[dict], None] | None = None) -> Workspace:
    """Run every stage of `config` and write the workspace to `out` (atomically). Progress bars only go to a
    terminal; in a log each stage and each finished item print one line. `status` receives each stage's progress."""
    cfg = config if isinstance(config, BuildConfig) else load_config(config)
    b = Build(cfg, Path(out), StageLog(echo=echo, status=status), progress and sys.stderr.isatty())
    for stage in (b.read_datasets, b.read_runs, b.prepare_output, b.load_encoder, b.encode_corpora, b.train_experts,
                  b.encode_queries, b.search_and_score, b.route, b.draw_layouts, b.write, b.add_umap):
        stage()
    echo(f"Built {out} in {time.perf_counter() - b.start:.1f}s")
    return Workspace(out)


@dataclass
class QuerySet:
    qids: list[str]
    datasets: list[str]
    roles: list[str]
    texts: list[str]
    kinds: list[str]
    qrels: list[tuple[str, str, str, str, int]]  # dataset, role, qid, doc, grade
    meta: list[dict[str, str]] = field(default_factory=list)  # per query: metadata fields other than kind

    def add(self, qid: str, dataset: str, role: str, text: str, kind: str, judged: dict[str, int],
            meta: dict[str, str] | None = None) -> None:
        self.qids.append(qid)
        self.datasets.append(dataset)
        self.roles.append(role)
        self.texts.append(text)
        self.kinds.append(kind)
        self.meta.append(dict(meta or {}))
        self.qrels += [(dataset, role, qid, d, g) for d, g in judged.items()]

    def frame(self) -> pd.DataFrame:
        """queries.parquet: row, qid, dataset, role, text, kind, then one `meta:<field>` column of strings per
        metadata field any query carries (in order of first appearance; "" where a query has no such field)."""
        out = pd.DataFrame({"row": np.arange(len(self.qids)), "qid": self.qids, "dataset": self.datasets,
                            "role": self.roles, "text": self.texts, "kind": self.kinds})
        fields = list(dict.fromkeys(f for m in self.meta for f in m))
        for f in fields:
            out[f"{META_PREFIX}{f}"] = [m.get(f, "") for m in self.meta]
        return out

    def rows(self, dataset: str, role: str) -> np.ndarray:
        return np.array([i for i, (d, r) in enumerate(zip(self.datasets, self.roles)) if d == dataset and r == role],
                        dtype=np.int64)

    def digest(self) -> str:
        return _hash(self.qids, self.datasets, self.roles, self.texts)


@dataclass
class Build:
    """One build's state, filled in by its stages in the order `build()` runs them."""

    cfg: BuildConfig
    out: Path
    log: StageLog
    progress: bool
    start: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    datasets: dict[str, BeirDataset] = field(default_factory=dict)
    train_hashes: dict[str, str] = field(default_factory=dict)
    doc_emb: dict[str, np.ndarray] = field(default_factory=dict)
    doc_keys: dict[str, str] = field(default_factory=dict)
    experts: list[ExpertSpec] = field(default_factory=list)  # the config's, multi-task sources filled in (copies)
    expert_keys: dict[str, str] = field(default_factory=dict)
    cards: dict[str, dict] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)
    q_emb: list[np.ndarray] = field(default_factory=list)
    indexes: dict = field(default_factory=dict)
    index_recall: dict = field(default_factory=dict)  # dataset -> an IVF index's tuned nprobe and measured recall
    index_storage: dict = field(default_factory=dict)  # dataset -> how its index is stored (INDEX_STORAGE)
    runs: list[pd.DataFrame] = field(default_factory=list)
    routed: list = field(default_factory=list)
    precomputed: dict = field(default_factory=dict)  # stage items done by forked workers (Stages.precomputed)
    lexical: dict = field(default_factory=dict)  # (lexical expert, dataset) -> its BM25 index
    imported: list[ImportedRun] = field(default_factory=list)  # [[runs]]: run files read as systems
    never_scored: dict[str, list[str]] = field(default_factory=dict)  # strategy -> candidate runs it cannot choose
    queries: QuerySet | None = None

    @property
    def stages(self) -> Stages:
        return Stages(self.cfg.cache_dir, self.log, self.precomputed)

    def _in_workers(self, items: list, task: Callable[[object], object],
                    done: Callable[[object, object], None]) -> None:
        """`task(item)` for each item in forked CPU workers (explorer.workers) when the machine and [compute] workers
        allow it, `done(item, result)` here as each finishes; nothing when they do not (the stage's own loop then
        computes every item in this process)."""
        n = worker_count(len(items), int(self.cfg.compute["workers"]), self.cfg.device)
        if not n:
            return

        def run(i: int):
            self.progress = False  # no progress bars from several processes at once
            return task(items[i])

        run_in_workers(run, items, n, lambda i, result: done(items[i], result))

    @property
    def echo(self) -> Callable[[str], None]:
        return self.log.echo

    # --- datasets and output ----------------------------------------------------------------------------------
    def _splits_read(self, spec: DatasetSpec) -> tuple[str, ...]:
        """The qrels files of a dataset that the build reads: its test and training splits (or the one its judged
        split divides), and any other that an expert trains on or stops on (`split`, `stop_split`)."""
        own = (spec.judged_from,) if spec.judged_split else (spec.test_split, spec.train_split)
        experts = [e for e in self.cfg.experts if spec.name in e.datasets]
        read = [s.get("split", e.train.get("split")) for e in experts for s in e.sources
                if s.get("dataset") == spec.name and s.get("source") in ("qrels", "generated")]
        read += [e.train.get("stop_split") for e in experts]
        return tuple(dict.fromkeys(s for s in (*own, *read) if s and s != JUDGED_TRAIN))

    def read_datasets(self) -> None:
        """Every dataset, every problem of all of them reported together, before any model is loaded."""
        cfg = self.cfg
        self.log.begin("datasets", f"Loading {len(cfg.datasets)} dataset(s)")
        failed: list[DataError] = []
        for spec in cfg.datasets:
            try:
                ds = load_beir(spec.path, spec.name, splits=self._splits_read(spec))
            except DataError as err:
                failed.append(err)
                continue
            if spec.judged_split:
                split_judged(ds, spec.judged_from, spec.judged_split, spec.judged_seed, spec.train_split,
                             spec.test_split)
            for w in ds.warnings:
                self.echo(f"  warning: {w}")
            self.datasets[spec.name] = ds
        if failed:
            raise DataError([p for err in failed for p in err.problems], datasets=len(failed))
        self._check_lexical()
        self._check_training_data()
        hashes = {n: d.content_hash for n, d in self.datasets.items()}
        # what an expert trained on a dataset depends on: its content, and which of its judged queries train
        self.train_hashes = {s.name: _hash(hashes[s.name], "judged", s.judged_split, s.judged_seed)
                             if s.judged_split else hashes[s.name] for s in cfg.datasets}

    def _lexical_specs(self) -> list[ExpertSpec]:
        return [e for e in self.cfg.experts if EXPERT_KINDS[e.kind].can(LEXICAL)]

    def _check_lexical(self) -> None:
        """A lexical expert indexes every corpus: one without a single indexable word is refused here, before any
        model loads, naming the expert and the corpus."""
        lexical = self._lexical_specs()
        if not lexical:
            return
        bad = [Problem(ds.path / "corpus.jsonl", None, f"expert {lexical[0].name!r} (kind {lexical[0].kind!r}) "
                       f"cannot index dataset {name!r}: no document holds a word (every title and text is empty or "
                       "shorter than two letters)", "give the documents text, or drop the lexical expert")
               for name, ds in self.datasets.items() if not indexable(ds.corpus.passages())]
        if bad:
            raise DataError(bad, datasets=len(bad))

    def read_runs(self) -> None:
        """Every [[runs]] file read against its dataset's queries and documents and scored, every problem of all of
        them reported together, before any model is loaded (explorer.runs)."""
        if not self.cfg.runs:
            return
        self.echo(f"Reading {len(self.cfg.runs)} run file(s)")  # part of the datasets stage: data, not models
        t = time.perf_counter()
        self.queries = _query_set(self.cfg, self.datasets)
        frame = self.queries.frame()
        qrels = _qrels_lookup(self.queries)
        failed: list[DataError] = []
        for spec in self.cfg.runs:
            ds, dspec = self.datasets[spec.dataset], next(d for d in self.cfg.datasets if d.name == spec.dataset)
            mine = frame[frame["dataset"] == spec.dataset]
            target = RunTarget(spec.dataset, ds.corpus.ids, set(mine["qid"]), self.cfg.depth,
                               dspec.ignore_identical_ids)
            by_role = {role: qrels.get((spec.dataset, role), {}) for role in ("pilot", "eval")}
            try:
                run = import_run(spec.name, spec.path, target, mine, by_role, self.cfg.measures, spec.format,
                                 spec.candidate)
            except DataError as err:
                failed.append(err)
                continue
            for w in run.record["warnings"]:
                self.echo(f"  warning: {spec.path}: {w}")
            self.imported.append(run)
        if failed:
            raise DataError([p for err in failed for p in err.problems], datasets=len(failed))
        self.log.record("runs", _hash(*(r.record["sha256"] for r in self.imported)), False, time.perf_counter() - t)

    @property
    def external(self) -> dict[str, list[str]]:
        """Each run read from a file -> the datasets it ranks."""
        out: dict[str, list[str]] = {}
        for run in self.imported:
            out.setdefault(run.name, []).append(run.dataset)
        return out

    @property
    def systems(self) -> list[str]:
        """Columns of every per-system array: the encoders, then the runs read from files."""
        return self.encoders + list(self.external)

    def _check_training_data(self) -> None:
        """What only the data can tell, still before any model loads: a judged split that leaves no query to train
        or to evaluate, and an expert whose judged pairs are none (ConfigError naming the key, exit 2)."""
        problems = Problems()
        for spec in (s for s in self.cfg.datasets if s.judged_split):
            ds = self.datasets[spec.name]
            n, train, test = (len(ds.split_queries(spec.judged_from)), len(ds.qrels[spec.train_split]),
                              len(ds.qrels[spec.test_split]))
            if not train or not test:
                problems.add(f"datasets {spec.name!r}", "judged_split", f"{spec.judged_split:g} of the {n} judged "
                             f"queries of {spec.judged_from!r} leaves {train} to train the expert and {test} to "
                             "evaluate", f"use a share from {1 / n:.2g} to {(n - 1) / n:.2g}" if n > 1 else
                             "drop judged_split: the split has fewer than two judged queries")
        for spec in self.cfg.experts:
            judged = [s for s in spec.sources if s["source"] in ("qrels", "generated")]
            if spec.adapter is None and not spec.multi_task and judged and len(judged) == len(spec.sources) \
                    and not self._pairs(spec):
                split = judged[0].get("split", spec.train.get("split"))
                problems.add(f"experts {spec.name!r}", "sources", f"the judged queries of {split!r} give the expert no "
                             "training pair (no document judged relevant)", "train it on another split, or on "
                             'source = "crops"')
        if problems:
            raise config_error(self.cfg.path, problems)

    def prepare_output(self) -> None:
        """Refuse an --out that must not be replaced and a cache that is not a folder, before any model work; a
        refused build writes nothing."""
        check_output(self.out)
        cache = self.cfg.cache_dir
        if path_kind(cache) not in ("folder", "missing"):
            raise WorkspaceError(f"{cache}: {NOT_A_FOLDER[path_kind(cache)]} (fix: set cache_dir in the config to "
                                 f"a folder)")
        check_writable(self.out, cache)  # read-only or immutable: refused now, not after the model loads
        cache.mkdir(parents=True, exist_ok=True)

    # --- models ---------------------------------------------------------------------------------------------
    def load_encoder(self) -> None:
        cfg = self.cfg
        self.log.begin("encoder", f"Loading base encoder {cfg.base!r}")
        self.encoder = Encoder(cfg.base, device=cfg.device, max_seq_length=cfg.max_seq_length,
                               batch_size=cfg.batch_size, precision=cfg.precision)
        # the weights' bytes, hashed once per file and remembered in the cache (base_model.base_fingerprint); every
        # cached embedding depends on the precision too (float32 keeps the key it always had)
        self.base_identity = base_fingerprint(cfg.base, cfg.cache_dir / FINGERPRINTS)
        self.base_fp = _hash(self.base_identity, cfg.max_seq_length,
                             *([cfg.precision] if cfg.precision != "float32" else []))
        self.base_parameters = sum(p.numel() for p in self.encoder.model.parameters())

    def encode_corpora(self) -> None:
        """Each corpus under the base encoder, once per dataset, shared by every expert."""
        self.log.begin("corpora", "Encoding corpora with the base encoder (once per dataset, shared by every "
                                  "expert)", len(self.datasets))
        cfg, chunk = self.cfg, self.cfg.chunk_docs
        on_ray = cfg.compute["engine"] == "ray"
        devices = corpus_devices(cfg.compute.get("devices", []), cfg.device)
        if on_ray:
            encode = ray_encoder(cfg.base, cfg.max_seq_length, cfg.compute)
        elif len(devices) > 1:  # one process per device (every GPU): the base model only, before any expert
            encode = lambda texts: self.encoder.encode_on(texts, devices, show_progress=self.progress)  # noqa: E731
        else:
            encode = lambda texts: self.encoder.encode(texts, show_progress=self.progress)  # noqa: E731
        paths = {}
        for name, ds in self.datasets.items():
            key = self.doc_keys[name] = _hash("docs", ds.content_hash, self.base_fp)
            paths[name] = cfg.cache_dir / "docs" / f"{key}.npy"
        if not on_ray and len(devices) <= 1:  # small corpora not in the cache: in worker processes
            todo = [n for n, ds in self.datasets.items() if len(ds.corpus) <= chunk and not paths[n].exists()]
            self._in_workers(todo, lambda n: _timed(lambda: encode(self.datasets[n].corpus.passages())),
                             lambda n, r: self._worker_done(f"docs:{n}", self.doc_keys[n], r, record=True))
        for name, ds in self.datasets.items():
            key, path = self.doc_keys[name], paths[name]
            chunked = on_ray or len(ds.corpus) > chunk  # resumable, chunk by chunk, kept memory-mapped
            self.doc_emb[name] = self.stages.cached(
                f"docs:{name}", key, path, array_of_rows(len(ds.corpus), mmap=chunked),
                lambda ds=ds, path=path: encode_chunked(encode, ds.corpus.passages(), len(ds.corpus), path, chunk,
                                                        self._chunk_done) if chunked
                else encode(ds.corpus.passages()),
                (lambda p, a: None) if chunked else save_array_atomically)

    def _worker_done(self, item: str, key: str, result: tuple, record: bool) -> None:
        """A worker's (value, seconds) for a stage item: recorded now (the stage's progress moves) or when the stage
        reaches it, and kept for the stage's loop (Stages.cached), which saves it to the cache."""
        value, seconds = result
        if record:
            self.log.record(item, key, False, seconds)
        self.precomputed[item] = (value, None if record else seconds)

    def _chunk_done(self, i: int, n: int, reused: bool) -> None:
        self.echo(f"    chunk {i + 1}/{n}: {'kept from an earlier run' if reused else 'encoded'}")

    def train_experts(self) -> None:
        """Train (or load) every expert into the encoder; multi-task experts last, on the union of the other
        experts' data of their own kind."""
        cfg = self.cfg
        self.log.begin("experts", f"Experts ({len(cfg.experts)})", len(cfg.experts))
        single = [e for e in cfg.experts if not e.multi_task]
        union = {e.name: [s for o in single if o.adapter is None and o.kind == e.kind for s in o.sources]
                 for e in cfg.experts if e.multi_task}
        self.experts = [replace(e, sources=union[e.name]) if e.multi_task else e for e in cfg.experts]
        order = [e for e in self.experts if not e.multi_task] + [e for e in self.experts if e.multi_task]
        self._train_in_workers(order)
        for spec in order:
            t = time.perf_counter()
            folder, key, cached = (self._lexical_card(spec) if EXPERT_KINDS[spec.kind].can(LEXICAL)
                                   else self._load_adapter(spec) if spec.adapter is not None else self._train(spec))
            self.expert_keys[spec.name], self.folders[spec.name] = key, folder
            self.cards[spec.name] = json.loads((folder / "card.json").read_text())
            if self.precomputed.pop(f"expert:{spec.name}", None) is None:  # else recorded when its worker finished
                self.log.record(f"expert:{spec.name}", key, cached, time.perf_counter() - t)

    def _train_in_workers(self, order: list[ExpertSpec]) -> None:
        """The experts that are not in the cache, trained in forked workers (the longest first), each then encoding
        every query under itself; the base model's query pass is one more item. The stage's loop then loads them
        from the cache like any cached expert, and the queries stage takes their embeddings."""
        trained = [s for s in order if s.adapter is None and not EXPERT_KINDS[s.kind].can(LEXICAL)]
        todo = sorted((s for s in trained if not self._cached_expert(
            self.cfg.cache_dir / "experts" / s.cache_key(self.train_hashes, self.base_fp))),
                      key=lambda s: -len(self._pairs(s)) * int(s.train.get("epochs", TRAIN_DEFAULTS["epochs"])))
        if len(todo) < 2:
            return
        for spec in todo:  # a refused stopping split is reported from here, as in the serial build
            self._stop_pairs(spec)
        self.queries = self.queries or _query_set(self.cfg, self.datasets)

        def task(spec):
            if spec is None:
                return None, _timed(lambda: self.encoder.encode(self.queries.texts))
            trained = _timed(lambda: self._train(spec))[1]
            return trained, _timed(lambda: self.encoder.encode(self.queries.texts, expert=spec.name))

        def done(spec, result):
            trained, queries = result
            if spec is not None:
                self._worker_done(f"expert:{spec.name}", spec.cache_key(self.train_hashes, self.base_fp),
                                  (True, trained), record=True)
            self._worker_done(f"queries:{'base' if spec is None else spec.name}", "", queries, record=False)

        self._in_workers([*todo, None], task, done)

    def _lexical_settings(self, spec: ExpertSpec) -> dict:
        versions = {p: metadata.version(p) for p in ("bm25s", "PyStemmer")}
        return {**EXPERT_KINDS[spec.kind].defaults, **spec.adapter_params, "versions": versions}

    def _lexical_card(self, spec: ExpertSpec) -> tuple[Path, str, bool]:
        """A lexical expert trains nothing: its folder holds its card (kind, settings, library versions)."""
        settings = self._lexical_settings(spec)
        key = _hash("lexical", spec.kind, settings)
        folder = self.cfg.cache_dir / "experts" / key
        if (folder / "card.json").is_file():
            return folder, key, True
        tmp = partial_dir(folder)
        tmp.mkdir(parents=True, exist_ok=True)
        card = {"name": spec.name, "kind": spec.kind, "origin": "indexed", "multi_task": False, "datasets": [],
                "hyper_parameters": settings, "trainable_parameters": 0}
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        finish_dir(tmp, folder)
        return folder, key, False

    def _load_adapter(self, spec: ExpertSpec) -> tuple[Path, str, bool]:
        """An adapter folder given in the config, checked and loaded into the encoder; cached by its files."""
        from .data import file_hash

        files = sorted(p for p in spec.adapter.glob("*") if p.is_file())
        key = _hash("adapter", file_hash(files) if files else str(spec.adapter), self.base_fp)
        folder = self.cfg.cache_dir / "experts" / key
        count = self.encoder.load_expert(spec.name, spec.adapter, spec.kind)
        if self._cached_expert(folder):
            return folder, key, True
        tmp = partial_dir(folder)
        self.encoder.save_expert(spec.name, tmp)
        card = {"name": spec.name, "kind": spec.kind, "origin": "loaded", "adapter": str(spec.adapter),
                "trainable_parameters": count, "datasets": spec.datasets}
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        finish_dir(tmp, folder)
        return folder, key, False

    def _cached_expert(self, folder: Path) -> bool:
        """An expert's cache folder is there, whole (card.json) and unchanged since it was stored (its checksum);
        a changed one is warned about and removed, to be trained again."""
        return (folder / "card.json").is_file() and sound_entry(folder, self.echo)

    def _train(self, spec: ExpertSpec) -> tuple[Path, str, bool]:
        """A trained expert: from the cache when its key is there, else trained on its pairs and saved with its
        card (what it was trained on and how)."""
        key = spec.cache_key(self.train_hashes, self.base_fp)
        folder = self.cfg.cache_dir / "experts" / key
        if self._cached_expert(folder):
            self.encoder.load_expert(spec.name, folder, spec.kind)
            return folder, key, True
        pairs = self._pairs(spec)
        bar = tqdm(total=None, desc=f"train {spec.name}", disable=not self.progress, leave=False)

        def tick(step, total, loss):
            bar.total = total
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        stop_pairs = self._stop_pairs(spec)
        result = train_expert(self.encoder, spec.name, pairs, self.doc_emb, spec.train, spec.adapter_params, tick,
                              spec.kind, corpora={d: self.datasets[d].corpus.passages() for d in spec.datasets},
                              stop_pairs=stop_pairs)
        bar.close()
        tmp = partial_dir(folder)
        self.encoder.save_expert(spec.name, tmp)
        card = {
            "name": spec.name, "kind": spec.kind, "origin": "trained", "multi_task": spec.multi_task,
            "datasets": spec.datasets, "sources": spec.sources, "pairs": len(pairs), "steps": result.steps,
            "hyper_parameters": {**{k: spec.train[k] for k in TRAIN_DEFAULTS if k in spec.train}, **result.settings},
            "trainable_parameters": result.trainable_parameters, "loss_curve": result.loss_curve,
            "seconds": round(result.seconds, 2),
        }
        (tmp / "card.json").write_text(json.dumps(card, indent=2))
        finish_dir(tmp, folder)
        return folder, key, False

    def _stop_pairs(self, spec: ExpertSpec) -> list | None:
        """The judged queries of `stop_split` (the config checked: its one dataset, a split it does not train on,
        never the evaluated one); a split without a single relevant judgement is refused, not silently replaced by
        the holdout."""
        split = spec.train.get("stop_split")
        if not split:
            return None
        ds = self.datasets[spec.datasets[0]]
        pairs = make_pairs(ds, "qrels", {"split": split, "max_pairs": 0}, 0)
        if not pairs:
            file = ds.path if split == JUDGED_TRAIN else ds.path / "qrels" / f"{split}.tsv"
            raise DataError([Problem(file, None, f"split {split!r} judges no document of the corpus relevant to any "
                                     f"query in queries.jsonl, so expert {spec.name!r} has nothing to stop on",
                                     "give it judgements with a grade above 0, or drop stop_split")])
        return pairs

    def _pairs(self, spec: ExpertSpec) -> list:
        """An expert's training pairs: each source's, seeded; a multi-task expert's balanced across datasets."""
        seed = int(spec.train.get("seed", TRAIN_DEFAULTS["seed"]))
        sets = []
        for i, s in enumerate(spec.sources):
            params = {**spec.train, **{k: v for k, v in s.items() if k not in ("dataset", "source")}}
            sets.append(make_pairs(self.datasets[s["dataset"]], s["source"], params, seed + i))
        if not spec.multi_task:
            return [p for s in sets for p in s]
        by_dataset: dict[str, list] = {}
        for s, pairs in zip(spec.sources, sets):
            by_dataset.setdefault(s["dataset"], []).extend(pairs)
        return balanced_union(list(by_dataset.values()), spec.train.get("per_dataset_pairs"), seed)

    # --- queries, search, scores ----------------------------------------------------------------------------
    @property
    def encoders(self) -> list[str]:
        return ["base"] + [e.name for e in self.cfg.experts]

    def encode_queries(self) -> None:
        """Every pilot and evaluated query under the base and every expert (those the experts' workers encoded
        already: taken from them)."""
        self.queries = self.queries or _query_set(self.cfg, self.datasets)
        digest = self.queries.digest()
        keys = [self.base_fp] + [self.expert_keys[e.name] for e in self.cfg.experts]
        self.log.begin("queries", f"Encoding {len(self.queries.qids)} queries under {len(self.encoders)} encoders",
                       len(self.encoders))
        lexical = {e.name for e in self._lexical_specs()}
        for name, key in zip(self.encoders, keys):
            if name in lexical:  # no query embedding: its runs come from its own index (search_and_score)
                self.q_emb.append(None)
                continue
            ckey = _hash("queries", key, digest)
            self.q_emb.append(self.stages.cached(
                f"queries:{name}", ckey, self.cfg.cache_dir / "queries" / f"{ckey}.npy",
                array_of_rows(len(self.queries.qids)),
                lambda name=name: self.encoder.encode(self.queries.texts, expert=None if name == "base" else name,
                                                      show_progress=self.progress),
                save_array_atomically))
        self.search_key = _hash(keys, digest, self.cfg.depth, self.cfg.index_kind)
        self.routing_key = _hash(keys, digest, self.cfg.routing, *(r.record["sha256"] for r in self.imported))

    def search_and_score(self) -> None:
        """An index per corpus (cached), then every encoder's run and per-query scores on every query."""
        cfg = self.cfg
        self.log.begin("search", "Indexing and searching", len(self.datasets) + 1)
        for name, ds in self.datasets.items():
            kind = resolve_kind(cfg.index_kind, len(ds.corpus), cfg.exact_max_docs, cfg.memory_max_docs)
            if kind == "flat" and len(ds.corpus) > cfg.chunk_docs:  # exact, chunk by chunk: no index
                self.indexes[name] = ChunkedFlat(self.doc_emb[name], cfg.chunk_docs)
                self.index_storage[name] = "chunked-exact"
                continue
            key = _hash("index", self.doc_keys[name], kind)
            self.indexes[name] = self._index(name, key, kind, len(ds.corpus))
            self.index_storage[name] = "faiss-on-disk" if kind == ON_DISK else "faiss"
            if kind in ("ivf", ON_DISK):  # stated in the workspace: how near exact this approximate index is
                self.index_recall[name] = tune_ivf(self.indexes[name], self.doc_emb[name], chunk=cfg.chunk_docs)
        self._lexical_indexes()
        self.qrels_by = _qrels_lookup(self.queries)
        self.metric_arr = self.stages.timed("search+metrics", self.search_key, self._score_every_encoder)
        self.metric_arr = np.concatenate([self.metric_arr, self._external_scores()])

    def _external_scores(self) -> np.ndarray:
        """(run read from a file, query row, measure) scores (0 where a run ranks no dataset of the row: those
        rows are never written, nor decided by its strategy)."""
        cube = np.zeros((len(self.external), len(self.queries.qids), len(self.cfg.measures)))
        names = list(self.external)
        for run in self.imported:
            cube[names.index(run.name), run.metrics["row"].to_numpy()] = run.metrics[self.cfg.measures].to_numpy()
        return cube

    def _lexical_indexes(self) -> None:
        """Every lexical expert's BM25 index of every corpus, cached by content hash (bm25s's .npy + JSON)."""
        for spec in self._lexical_specs():
            settings = self._lexical_settings(spec)
            for name, ds in self.datasets.items():
                key = _hash("bm25", ds.content_hash, settings)
                folder, n = self.cfg.cache_dir / "lexical" / key, len(ds.corpus)
                self.lexical[(spec.name, name)] = self.stages.cached(
                    f"bm25:{spec.name}:{name}", key, folder / "params.index.json",
                    lambda path, n=n: load_lexical(path.parent, settings, n),
                    lambda ds=ds, name=name: self._index_lexical(spec, ds, name, settings),
                    lambda path, index: _save_lexical_folder(index, path.parent))

    def _index_lexical(self, spec: ExpertSpec, ds: BeirDataset, name: str, settings: dict):
        try:
            return build_lexical(ds.corpus.passages(), settings, f"expert {spec.name!r} on dataset {name!r}")
        except LexicalError as err:
            raise DataError([Problem(ds.path / "corpus.jsonl", None, str(err), "give the documents text, or drop "
                                     "the lexical expert")]) from err

    def _index(self, name: str, key: str, kind: str, n_docs: int):
        """A corpus's faiss index from the cache, or built: in memory, or (ivf-disk) chunk by chunk into a cache
        folder holding the index and its lists file."""
        cfg, dim = self.cfg, int(self.doc_emb[name].shape[1])
        if kind == ON_DISK:
            folder = cfg.cache_dir / "index" / key
            return self.stages.cached(
                f"index:{name}", key, folder, lambda p: on_disk_of_size(p, n_docs, dim),
                lambda: build_ivf_on_disk(self.doc_emb[name], folder, cfg.chunk_docs), lambda p, i: None)
        return self.stages.cached(
            f"index:{name}", key, cfg.cache_dir / "index" / f"{key}.faiss", index_of_size(n_docs, kind, dim),
            lambda: build_index(self.doc_emb[name], kind), lambda p, i: save_index(i, p))

    def _score_every_encoder(self) -> np.ndarray:
        """(encoder, query row, measure) scores; every run goes into `runs`."""
        q = self.queries
        cube = np.zeros((len(self.encoders), len(q.qids), len(self.cfg.measures)))
        for e, name in enumerate(tqdm(self.encoders, desc="search+evaluate", disable=not self.progress)):
            for ds_name in self.datasets:
                for role in ("pilot", "eval"):
                    rows = q.rows(ds_name, role)
                    if len(rows):
                        emb = None if self.q_emb[e] is None else self.q_emb[e][rows]
                        cube[e, rows] = self._run(name, ds_name, role, rows, emb)
        return cube

    def _run(self, system: str, dataset: str, role: str, rows: np.ndarray, emb: np.ndarray | None) -> np.ndarray:
        """Search `dataset` with `emb` (the queries at `rows`; a lexical expert reads their texts), keep the run as
        `system`'s, return the scores."""
        spec = next(s for s in self.cfg.datasets if s.name == dataset)
        qids = [self.queries.qids[r] for r in rows]
        ids = self.datasets[dataset].corpus.ids
        if (system, dataset) in self.lexical:
            run = self.lexical[(system, dataset)].search([self.queries.texts[r] for r in rows], self.cfg.depth, ids,
                                                         qids, spec.ignore_identical_ids)
        else:
            run = search(self.indexes[dataset], emb, self.cfg.depth, ids, qids, spec.ignore_identical_ids)
        return self._keep_run(system, dataset, role, rows, run)

    def _keep_run(self, system: str, dataset: str, role: str, rows: np.ndarray, run: Run) -> np.ndarray:
        """Keep `run` (of the queries at `rows`) as `system`'s and return its per-query scores of every measure."""
        qids = [self.queries.qids[r] for r in rows]
        ids = self.datasets[dataset].corpus.ids
        self.runs.append(_run_frame(system, rows, run))
        return per_query(self.qrels_by[(dataset, role)], run_dict(qids, ids, run.docs, run.scores),
                         self.cfg.measures, qids).to_numpy()

    # --- routing and layouts --------------------------------------------------------------------------------
    def expert_records(self) -> list[dict]:
        """The manifest's record of every expert: what the read side knows of it (kind, capabilities, data)."""
        return [{"name": e.name, "kind": e.kind, "capabilities": sorted(EXPERT_KINDS[e.kind].capabilities),
                 "candidate": e.candidate, "multi_task": e.multi_task, "datasets": e.datasets,
                 "adapter": f"experts/{e.name}", "card": self.cards[e.name]} for e in self.experts]

    def route(self) -> None:
        """Every strategy decides every evaluated query; a mixture is encoded under its weighted experts."""
        cfg = self.cfg
        self.log.begin("routing", "Routing", 1)
        t = time.perf_counter()
        roles = np.array(self.queries.roles)
        self.pilot_rows, eval_rows = np.flatnonzero(roles == "pilot"), np.flatnonzero(roles == "eval")
        own: dict[str, str] = {}
        for spec in self.experts:
            if spec.candidate and not spec.multi_task:
                for d in spec.datasets:
                    own.setdefault(d, spec.name)
        candidates = (["base"] if cfg.routing["base_as_candidate"] else []) + [e.name for e in self.experts
                                                                               if e.candidate]
        if cfg.routing["lexical_as_candidate"]:
            candidates += [e.name for e in self._lexical_specs() if e.name not in candidates]
        candidates += list(dict.fromkeys(r.name for r in self.imported if r.record["candidate"]))
        labels = self.metric_arr[:, :, cfg.measures.index(cfg.label_measure)].T  # labels pilots, defines oracles
        self.ctx = routing_context(self.systems, self.expert_records(), candidates, own, self.q_emb[0],
                                   self.queries.datasets, self.queries.roles, labels, cfg.routing,
                                   runs=self._run_pool(), pilot_judged=self._judgements(("pilot",)),
                                   label_measure=cfg.label_measure, depth=cfg.depth)
        multitask = cfg.multitask.name if cfg.multitask else None
        self.strategies = [s for s in all_strategies(self.encoders, multitask, cfg.routing["strategies"] or None,
                                                     cfg.routing["variants"], external=self.external)
                           if s.available(self.ctx)]
        datasets = np.asarray(self.queries.datasets, dtype=object)
        runs = [self.systems.index(n) for n in candidates if n in self.external]
        for strat in self.strategies:
            rows = eval_rows[strat.covers(datasets[eval_rows])]
            dec = strat.decide(self.ctx, self.q_emb[0][rows], rows)
            self.routed.append((strat.name, rows, dec, self._strategy_scores(strat.name, dec, rows)))
            # said in the manifest: a candidate run this router never scores (it routes by what a file lacks)
            self.never_scored[strat.name] = [self.systems[c] for c in runs if np.isnan(dec.scores[:, c]).all()]
        self.log.record("routing", self.routing_key, False, time.perf_counter() - t)

    def _run_pool(self):
        """Every system's run of every query (the encoders', and those read from files), gathered for fusion and
        post-retrieval routing."""
        frames = [*self.runs, *(r.runs for r in self.imported)]
        docs, scores = run_arrays(pd.concat(frames, ignore_index=True), self.systems, len(self.queries.qids),
                                  self.cfg.depth)
        return pool_of(docs, scores, np.asarray(self.queries.datasets, dtype=object),
                       {n: ds.corpus.ids for n, ds in self.datasets.items()})

    def _judgements(self, roles: tuple[str, ...]):
        q = self.queries
        return judgements_for(pd.DataFrame(q.qrels, columns=["dataset", "role", "qid", "doc_id", "grade"]),
                              pd.DataFrame({"row": np.arange(len(q.qids)), "qid": q.qids, "dataset": q.datasets,
                                            "role": q.roles}),
                              {n: ds.corpus.ids for n, ds in self.datasets.items()}, roles)

    def _strategy_scores(self, strategy: str, dec, rows: np.ndarray) -> np.ndarray:
        """Per evaluated query, every measure of what the strategy chose; a mixture is either the weighted experts'
        stored runs fused (dec.fusion: RRF, CombSUM, ...) or one encoding under its weighted adapters (DAR below
        its margin, DDR), searched and scored here."""
        chosen = dec.chosen
        values = np.zeros((len(rows), len(self.cfg.measures)))
        hard = chosen >= 0
        values[hard] = self.metric_arr[chosen[hard], rows[hard]]
        if dec.fusion is not None:
            mixed = np.flatnonzero(~hard)
            if len(mixed):
                values[mixed] = self._fused_scores(str(SystemName.mix(strategy)), dec, rows[mixed], mixed)
            return values
        for i in np.flatnonzero(~hard):
            row, w = rows[i], dec.weights[i]
            emb = self.encoder.encode([self.queries.texts[row]],
                                      expert={self.encoders[c]: float(w[c]) for c in np.flatnonzero(w)})
            values[i] = self._run(str(SystemName.mix(strategy)), self.queries.datasets[row], "eval",
                                  np.array([row]), emb)[0]
        return values

    def _fused_scores(self, system: str, dec, rows: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The fused runs of the queries at `rows` (decision rows `at`), kept as `system`'s and scored per dataset."""
        docs, scores = self.ctx.runs.run(dec.weights[at], dec.fusion, self.cfg.depth, rows)
        out = np.zeros((len(rows), len(self.cfg.measures)))
        ds = np.asarray(self.queries.datasets, dtype=object)[rows]
        for name in dict.fromkeys(ds.tolist()):
            mine = np.flatnonzero(ds == name)
            run = Run(docs[mine].astype(np.int32), np.nan_to_num(scores[mine], nan=0.0))
            out[mine] = self._keep_run(system, name, "eval", rows[mine], run)
        return out

    def draw_layouts(self) -> None:
        """PCA of the pilot centroids and every query, and UMAP when the cache has it; otherwise UMAP (a first fit
        in a new environment spends most of its time compiling) follows the workspace in `add_umap`, so the app
        opens on PCA without waiting for it."""
        cfg = self.cfg
        self.log.begin("layout", "2-D layouts", 1)
        lib = self.ctx.library
        key = _hash("layout", self.base_fp, self.queries.digest(), lib.centroids.round(6).tolist(), cfg.layout)
        self.points = np.concatenate([lib.centroids, self.q_emb[0]]) if len(lib) else self.q_emb[0]
        self.layout_entry = (key, cfg.cache_dir / "layout" / f"{key}.npz")
        t = time.perf_counter()
        cached = read_cache(self.layout_entry[1], lambda p: _cached_layout(p, len(self.points)), self.echo)
        self.umap_pending = cached is None and bool(cfg.layout["umap"])
        if cached is not None:
            self.coords, self.sampled = cached
        else:
            pca = pca_layout(self.points, cfg.layout["seed"])
            self.coords, self.sampled = ({"pca": pca} if self.umap_pending else {"pca": pca, "umap": pca}), False
            if not self.umap_pending:
                _save_layouts(self.layout_entry[1], (self.coords, False))
        self.log.record("layout", key, cached is not None, time.perf_counter() - t)

    def add_umap(self) -> None:
        """The UMAP layout of a workspace already written with PCA only (its manifest says layout.umap =
        "pending"): fitted, cached, then landed in the workspace by replacing layout.parquet and then manifest.json,
        each atomically. A build killed before that leaves a workspace that opens (on PCA) and says so."""
        if not self.umap_pending:
            return
        layout = self.cfg.layout
        self.log.begin("umap", "UMAP layout (the workspace is open meanwhile, on PCA)", 1)
        t = time.perf_counter()
        umap_xy, self.sampled = umap_layout(self.points, layout["max_points"], layout["n_neighbors"], layout["seed"])
        self.coords = {"pca": self.coords["pca"], "umap": umap_xy}  # the order a cached layout has
        _save_layouts(self.layout_entry[1], (self.coords, self.sampled))
        self.log.record("layout:umap", self.layout_entry[0], False, time.perf_counter() - t)
        self.umap_pending = False
        if not self._still_ours():
            self.echo(f"  {self.out} was replaced meanwhile: its UMAP layout is left to that build (cached here)")
            return
        w = WorkspaceWriter(self.out)
        w.layout(self.coords, len(self.ctx.library), len(self.queries.qids))
        w.manifest(self.manifest())

    def _still_ours(self) -> bool:
        """Whether the workspace at `out` is the one this build wrote and left waiting for its UMAP."""
        try:
            layout = json.loads((self.out / "manifest.json").read_text(encoding="utf-8")).get("layout", {})
        except (OSError, ValueError, AttributeError):
            return False
        return layout.get("umap") == UMAP_PENDING and layout.get("pending") == self._pending_marker()

    def _pending_marker(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": round(self.started_at, 3)}

    # --- the workspace --------------------------------------------------------------------------------------
    def write(self) -> None:
        """Every file of the workspace into a temporary folder, swapped in whole."""
        self.log.begin("write", f"Writing workspace {self.out}")
        enc, q, lib = self.encoders, self.queries, self.ctx.library
        with atomic_dir(self.out) as tmp:
            w = WorkspaceWriter(tmp)
            for name, ds in self.datasets.items():
                w.dataset(name, ds.corpus.ids, ds.corpus.titles, ds.corpus.texts, self.doc_emb[name],
                          self.indexes[name], self.index_storage[name])
            w.query_embeddings(self.q_emb)
            for spec in self.cfg.experts:
                w.expert(spec.name, self.folders[spec.name])
            w.table("queries.parquet", q.frame())
            w.table("qrels.parquet", pd.DataFrame(q.qrels, columns=["dataset", "role", "qid", "doc_id", "grade"]))
            w.table("runs.parquet", pd.concat(self.runs, ignore_index=True))
            w.metrics(enc, self.metric_arr, self.cfg.measures)
            for run in self.imported:  # their own partitions: float64 scores, only the rows of their dataset
                w.table("runs.parquet", run.runs)
                w.table("metrics.parquet", run.metrics)
            w.routed(self.routed, self.systems, self.cfg.measures)
            w.pilots(lib, self.systems, self.pilot_rows, self.ctx.labels)
            w.layout(self.coords, len(lib), len(q.qids))
            w.manifest(self.manifest())
            # the slowest thing a page would compute, done once here from the tables just written
            w.significance(self.stages.timed("significance", self.routing_key, lambda: significance_tables(
                Workspace(tmp), self.cfg.reference)))
            w.manifest(self.manifest())  # again, with the significance stage in its log

    def manifest(self) -> dict:
        cfg = self.cfg
        rule, cv = self.ctx.tie_choice  # "auto" resolved on the pilot queries, with each rule's held-out score
        routing = {**cfg.routing, "ties_chosen": rule, "tie_rule": TIE_RULES[rule],
                   **({"ties_cv": {r: round(v, 6) for r, v in cv.items()}} if cv else {})}
        return {
            "format_version": WORKSPACE_FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "title": cfg.title, "config": str(cfg.path),
            "base_model": {"name": cfg.base, "fingerprint": self.base_identity,
                           "max_seq_length": cfg.max_seq_length, "parameters": self.base_parameters,
                           "precision": cfg.precision},
            "datasets": [{**_dataset_record(s, self.datasets[s.name]),
                          "index": self.index_storage[s.name],
                          **({"ivf": self.index_recall[s.name]} if s.name in self.index_recall else {})}
                         for s in cfg.datasets],
            "encoders": self.encoders,
            "experts": self.expert_records(),
            "candidates": [self.systems[c] for c in self.ctx.candidates],
            "own_expert": {d: self.encoders[c] for d, c in self.ctx.own_expert.items()},
            **({"runs": [r.record for r in self.imported]} if self.imported else {}),
            "strategies": [{**s.record(self.ctx), **({"cannot_choose": self.never_scored[s.name]}
                                                     if self.never_scored.get(s.name) else {})}
                           for s in self.strategies],
            "routing": routing,
            "measures": cfg.measures, "reference": cfg.reference, "label_measure": cfg.label_measure,
            "compute": {k: v for k, v in cfg.compute.items() if k != "address"},  # never a cluster's address
            "index": {"kind": cfg.index_kind, "depth": cfg.depth, "chunk_docs": cfg.chunk_docs,
                      "exact_max_docs": cfg.exact_max_docs, "memory_max_docs": cfg.memory_max_docs},
            "layout": {**cfg.layout, "sampled": self.sampled, "points": len(self.points),
                       **({"umap": UMAP_PENDING, "pending": self._pending_marker()} if self.umap_pending else {})},
            "versions": _library_versions(), "stages": self.log.entries, "stage_seconds": self.log.wall(),
            "build_seconds": round(time.perf_counter() - self.start, 1),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }


def _timed(compute: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = compute()
    return value, time.perf_counter() - start


def _dataset_record(s, ds: BeirDataset) -> dict:
    judged = ({"judged_split": {"share": s.judged_split, "seed": s.judged_seed, "of": s.judged_from,
                                "train": len(ds.qrels[s.train_split]), "test": len(ds.qrels[s.test_split])}}
              if s.judged_split else {})
    return {"name": s.name, "path": str(s.path), "hash": ds.content_hash, "n_docs": len(ds.corpus),
            "test_split": s.test_split, "train_split": s.train_split, "ignore_identical_ids": s.ignore_identical_ids,
            "pilot_source": s.pilot_source, "role": s.role, **judged, "warnings": [str(w) for w in ds.warnings]}


def _library_versions() -> dict:
    out = {"python": platform.python_version(), "router-explorer": __version__}
    for pkg in ("torch", "sentence-transformers", "transformers", "peft", "faiss-cpu", "ir-measures", "numpy",
                "scikit-learn", "umap-learn", "bm25s", "PyStemmer"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _save_lexical_folder(index, folder: Path) -> None:
    """A BM25 index into the cache, atomically: written into a partial folder, renamed into place."""
    import shutil

    tmp = partial_dir(folder)
    save_lexical(index, tmp)
    if (folder / "params.index.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _cached_layout(path: Path, points: int) -> tuple[dict, bool]:
    with np.load(path, allow_pickle=False) as z:
        coords = {"pca": np.asarray(z["pca"]), "umap": np.asarray(z["umap"])}  # the order _layouts makes
        sampled = bool(z["sampled"])
    if any(c.shape != (points, 2) for c in coords.values()):
        raise ValueError(f"layouts of shape {coords['pca'].shape}, expected ({points}, 2)")
    return coords, sampled


def _save_layouts(path: Path, value: tuple[dict, bool]) -> None:
    coords, sampled = value
    atomic_write(path, lambda p: np.savez(p, umap=coords["umap"], pca=coords["pca"], sampled=np.array(sampled)))
    write_checksum(path)  # read back through read_cache, which wants it


def _query_set(cfg: BuildConfig, datasets: dict[str, BeirDataset]) -> QuerySet:
    """Pilot queries (training queries, or held-out pseudo-queries) and evaluated queries of every dataset."""
    qs = QuerySet([], [], [], [], [], [])
    seed = int(cfg.routing["seed"])
    for spec in cfg.datasets:
        ds = datasets[spec.name]
        if spec.pilot_source == "none":
            pass  # a zero-shot dataset, or max_pilot_queries = 0: no pilot queries at all
        elif spec.pilot_source == "train":
            ids = ds.split_queries(spec.train_split)
            if len(ids) > spec.max_pilot_queries:
                rng = np.random.default_rng(seed)
                ids = [ids[i] for i in sorted(rng.choice(len(ids), spec.max_pilot_queries, replace=False))]
            for q in ids:
                qs.add(q, ds.name, "pilot", ds.queries[q], ds.query_kinds.get(q, "plain"),
                       ds.qrels[spec.train_split][q], ds.query_metadata.get(q))
        else:
            pairs = make_pairs(ds, "crops", {"crops_per_doc": 1, "max_pairs": spec.max_pilot_queries},
                               seed + PILOT_CROP_SEED_OFFSET)
            for i, p in enumerate(pairs):
                qs.add(f"pilot-crop-{i:05d}", ds.name, "pilot", p.query, "crop", {ds.corpus.ids[p.doc]: 1})
        ids = ds.split_queries(spec.test_split)
        if spec.max_eval_queries and len(ids) > spec.max_eval_queries:
            rng = np.random.default_rng(seed)
            ids = [ids[i] for i in sorted(rng.choice(len(ids), int(spec.max_eval_queries), replace=False))]
        for q in ids:
            qs.add(q, ds.name, "eval", ds.queries[q], ds.query_kinds.get(q, "plain"), ds.qrels[spec.test_split][q],
                   ds.query_metadata.get(q))
    return qs


def _qrels_lookup(queries: QuerySet) -> dict:
    out: dict = {}
    for ds, role, q, d, g in queries.qrels:
        out.setdefault((ds, role), {}).setdefault(q, {})[d] = g
    return out


def _run_frame(system: str, rows: np.ndarray, run) -> pd.DataFrame:
    k = run.docs.shape[1]
    valid = run.docs >= 0
    return pd.DataFrame({
        "system": system, "row": np.repeat(rows, k)[valid.ravel()],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(rows))[valid.ravel()],
        "doc": run.docs[valid], "score": run.scores[valid],
    })
