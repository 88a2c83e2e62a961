"""config -> stages -> workspace.

Heavy stages (document encoding, expert training, query encoding) are cached by content hash in `cache_dir`, so a
rebuild after adding one expert trains and encodes only that expert. Routing, metrics and what the app reads are
recomputed every time (seconds). The workspace is written into a temporary folder and swapped in at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import WORKSPACE_FORMAT_VERSION, __version__
from .config import BuildConfig, ExpertSpec, load_config
from .data import NOT_A_FOLDER, BeirDataset, DataError, load_beir, path_kind, split_judged
from .base_model import base_fingerprint
from .encoders import Encoder
from .evaluation import per_query, run_dict
from .index import build_index, load_index, save_index, search
from .pilot import TIE_RULES
from .projection import pca_layout, umap_layout
from .routing import RoutingContext, all_strategies
from .training import TRAIN_DEFAULTS, balanced_union, make_pairs, train_expert
from .workspace import (META_PREFIX, Workspace, WorkspaceError, atomic_dir, atomic_write, check_output, encoder_file,
                        inside, load_array, remove_stale, save_array, save_table)

PILOT_CROP_SEED_OFFSET = 7919  # pilot pseudo-queries use other crops than training


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# The build's top-level stages, in order, as a person reads them in a progress line.
BUILD_STAGES = {
    "datasets": "reading the datasets", "encoder": "loading the base encoder", "corpora": "encoding the corpora",
    "experts": "training the experts", "queries": "encoding the queries", "search": "searching and scoring",
    "routing": "routing every strategy", "layout": "drawing the 2-D layouts", "write": "writing the workspace",
}


@dataclass
class StageLog:
    """Which stages ran and which came from the cache, kept in the manifest (and read by tests). Each top-level
    stage prints one line and each finished item one line with its time; `status` (if given) receives where the
    build is: stage i of n, its label, and items done of the stage's total."""

    entries: dict = field(default_factory=dict)
    echo: Callable[[str], None] = print
    status: Callable[[dict], None] | None = None
    current: dict = field(default_factory=dict)

    def begin(self, stage: str, line: str, items: int = 0) -> None:
        self.echo(line)
        self.current = {"stage": list(BUILD_STAGES).index(stage) + 1, "stages": len(BUILD_STAGES), "name": stage,
                        "label": BUILD_STAGES[stage], "line": line, "done": 0, "items": items}
        self._report()

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


def _library_versions() -> dict:
    out = {"python": platform.python_version(), "router-explorer": __version__}
    for pkg in ("torch", "sentence-transformers", "transformers", "peft", "faiss-cpu", "ir-measures", "numpy",
                "scikit-learn", "umap-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def build(config: BuildConfig | str | Path, out: str | Path, echo: Callable[[str], None] = print,
          progress: bool = True, status: Callable[[dict], None] | None = None) -> Workspace:
    """Run every stage of `config` and write the workspace to `out` (atomically). Progress bars only go to a
    terminal; in a log each stage and each finished item print one line. `status` receives each stage's progress."""
    cfg = config if isinstance(config, BuildConfig) else load_config(config)
    start = time.perf_counter()
    progress = progress and sys.stderr.isatty()
    log = StageLog(echo=echo, status=status)
    cache = cfg.cache_dir

    log.begin("datasets", f"Loading {len(cfg.datasets)} dataset(s)")
    datasets: dict[str, BeirDataset] = {}
    failed: list[DataError] = []  # every dataset's problems, reported together (before any model is loaded)
    for spec in cfg.datasets:
        splits = ((spec.judged_from,) if spec.judged_split
                  else tuple(s for s in (spec.test_split, spec.train_split) if s))
        try:
            ds = load_beir(spec.path, spec.name, splits=splits)
        except DataError as err:
            failed.append(err)
            continue
        if spec.judged_split:
            split_judged(ds, spec.judged_from, spec.judged_split, spec.judged_seed, spec.train_split, spec.test_split)
        for w in ds.warnings:
            echo(f"  warning: {w}")
        datasets[spec.name] = ds
    if failed:
        raise DataError([p for err in failed for p in err.problems], datasets=len(failed))
    hashes = {n: d.content_hash for n, d in datasets.items()}
    # what an expert trained on a dataset depends on: its content, and which of its judged queries train
    train_hashes = {s.name: _hash(hashes[s.name], "judged", s.judged_split, s.judged_seed) if s.judged_split
                    else hashes[s.name] for s in cfg.datasets if s.name in hashes}
    check_output(Path(out))  # before any model work: an --out that must not be replaced is refused now
    if path_kind(cache) not in ("folder", "missing"):
        raise WorkspaceError(f"{cache}: {NOT_A_FOLDER[path_kind(cache)]} (fix: set cache_dir in the config to a "
                             f"folder)")
    cache.mkdir(parents=True, exist_ok=True)  # after the data checks: a refused build writes nothing

    log.begin("encoder", f"Loading base encoder {cfg.base!r}")
    encoder = Encoder(cfg.base, device=cfg.device, max_seq_length=cfg.max_seq_length, batch_size=cfg.batch_size)
    base_fp = _hash(base_fingerprint(cfg.base), cfg.max_seq_length)
    base_parameters = sum(p.numel() for p in encoder.model.parameters())

    log.begin("corpora", "Encoding corpora with the base encoder (once per dataset, shared by every expert)",
              len(datasets))
    doc_emb: dict[str, np.ndarray] = {}
    doc_keys: dict[str, str] = {}
    for name, ds in datasets.items():
        t = time.perf_counter()
        key = doc_keys[name] = _hash("docs", hashes[name], base_fp)
        path = cache / "docs" / f"{key}.npy"
        emb = _read_cache(path, lambda p, n=len(ds.corpus): _cached_array(p, n), echo)
        cached = emb is not None
        if not cached:
            emb = encoder.encode(ds.corpus.passages(), show_progress=progress)
            atomic_write(path, lambda p, a=emb: save_array(p, a))
        doc_emb[name] = emb
        log.record(f"docs:{name}", key, cached, time.perf_counter() - t)

    log.begin("experts", f"Experts ({len(cfg.experts)})", len(cfg.experts))
    expert_keys: dict[str, str] = {}
    cards: dict[str, dict] = {}
    ordered = [e for e in cfg.experts if not e.multi_task] + [e for e in cfg.experts if e.multi_task]
    for spec in ordered:
        if spec.multi_task:
            # the union of the other experts' data of its own kind (DDR's prefixes and ERA's pairs repeat it)
            spec.sources = [s for e in cfg.experts
                            if not e.multi_task and e.adapter is None and e.kind == spec.kind for s in e.sources]
        t = time.perf_counter()
        folder, key, cached = _expert(spec, cfg, encoder, datasets, doc_emb, train_hashes, base_fp, progress)
        expert_keys[spec.name] = key
        cards[spec.name] = json.loads((folder / "card.json").read_text())
        cards[spec.name]["_folder"] = str(folder)
        log.record(f"expert:{spec.name}", key, cached, time.perf_counter() - t)

    encoders = ["base"] + [e.name for e in cfg.experts]
    enc_keys = [base_fp] + [expert_keys[e.name] for e in cfg.experts]
    queries = _query_set(cfg, datasets)
    qdigest = queries.digest()

    log.begin("queries", f"Encoding {len(queries.qids)} queries under {len(encoders)} encoders", len(encoders))
    q_emb: list[np.ndarray] = []
    for name, key in zip(encoders, enc_keys):
        t = time.perf_counter()
        ckey = _hash("queries", key, qdigest)
        path = cache / "queries" / f"{ckey}.npy"
        emb = _read_cache(path, lambda p: _cached_array(p, len(queries.qids)), echo)
        cached = emb is not None
        if not cached:
            emb = encoder.encode(queries.texts, expert=None if name == "base" else name, show_progress=progress)
            atomic_write(path, lambda p, a=emb: save_array(p, a))
        q_emb.append(emb)
        log.record(f"queries:{name}", ckey, cached, time.perf_counter() - t)

    log.begin("search", "Indexing and searching", len(datasets) + 1)
    indexes = {}
    for name, ds in datasets.items():
        t = time.perf_counter()
        key = _hash("index", doc_keys[name], cfg.index_kind)
        path = cache / "index" / f"{key}.faiss"
        index = _read_cache(path, lambda p, n=len(ds.corpus): _cached_index(p, n), echo)
        cached = index is not None
        if not cached:
            index = build_index(doc_emb[name], cfg.index_kind)
            save_index(index, path)
        indexes[name] = index
        log.record(f"index:{name}", key, cached, time.perf_counter() - t)
    t = time.perf_counter()
    ds_spec = {s.name: s for s in cfg.datasets}
    qrels_by = _qrels_lookup(queries)
    runs_rows, metric_frames = [], []
    n_enc = len(encoders)
    measures = cfg.measures
    metric_arr = np.zeros((n_enc, len(queries.qids), len(measures)))
    for e, name in enumerate(tqdm(encoders, desc="search+evaluate", disable=not progress)):
        for ds_name in datasets:
            for role in ("pilot", "eval"):
                rows = queries.rows(ds_name, role)
                if len(rows) == 0:
                    continue
                run = search(indexes[ds_name], q_emb[e][rows], cfg.depth, datasets[ds_name].corpus.ids,
                             [queries.qids[r] for r in rows], ds_spec[ds_name].ignore_identical_ids)
                runs_rows.append(_run_frame(name, rows, run))
                pq = per_query(qrels_by[(ds_name, role)], run_dict([queries.qids[r] for r in rows],
                               datasets[ds_name].corpus.ids, run.docs, run.scores), measures,
                               [queries.qids[r] for r in rows])
                metric_arr[e, rows] = pq.to_numpy()
    for e, name in enumerate(encoders):
        frame = pd.DataFrame(metric_arr[e], columns=measures)
        frame.insert(0, "row", np.arange(len(queries.qids)))
        frame.insert(0, "system", name)
        metric_frames.append(frame)
    log.record("search+metrics", _hash(enc_keys, qdigest, cfg.depth, cfg.index_kind), False,
               time.perf_counter() - t)

    log.begin("routing", "Routing", 1)
    t = time.perf_counter()
    roles = np.array(queries.roles)
    pilot_rows, eval_rows = np.flatnonzero(roles == "pilot"), np.flatnonzero(roles == "eval")
    ds_arr = np.array(queries.datasets, dtype=object)
    ndcg = metric_arr[:, :, measures.index("nDCG@10")].T if "nDCG@10" in measures else metric_arr[:, :, 0].T
    own = {}
    for spec in cfg.experts:
        if spec.candidate and not spec.multi_task:
            for d in spec.datasets:
                own.setdefault(d, encoders.index(spec.name))
    candidates = [encoders.index(e.name) for e in cfg.experts if e.candidate]
    if cfg.routing["base_as_candidate"]:
        candidates = [0] + candidates
    ctx = RoutingContext(
        encoders=encoders, candidates=candidates, own_expert=own, pilot_emb=q_emb[0][pilot_rows],
        pilot_dataset=ds_arr[pilot_rows], pilot_scores=ndcg[pilot_rows], eval_dataset=ds_arr[eval_rows],
        eval_scores=ndcg[eval_rows],
        expert_datasets={encoders.index(e.name): e.datasets for e in cfg.experts if not e.multi_task},
        expert_kinds={encoders.index(e.name): e.kind for e in cfg.experts}, params=dict(cfg.routing))
    multitask = cfg.multitask.name if cfg.multitask else None
    strategies = [s for s in all_strategies(encoders, multitask, cfg.routing["strategies"] or None,
                                                 cfg.routing["variants"])
                  if s.available(ctx)]
    decision_frames, strategy_metric_frames = [], []
    eval_emb = q_emb[0][eval_rows]
    for strat in strategies:
        dec = strat.decide(ctx, eval_emb)
        chosen = dec.chosen
        values = np.zeros((len(eval_rows), len(measures)))
        hard = chosen >= 0
        values[hard] = metric_arr[chosen[hard], eval_rows[hard]]
        if (~hard).any():
            values[~hard] = _mixture_runs(strat.name, dec.weights[~hard], eval_rows[~hard], encoders, encoder,
                                          queries, datasets, indexes, cfg, qrels_by, runs_rows)
        decision_frames.append(_decision_frame(strat.name, eval_rows, dec, encoders))
        sm = pd.DataFrame(values, columns=measures)
        sm.insert(0, "row", eval_rows)
        sm.insert(0, "strategy", strat.name)
        strategy_metric_frames.append(sm)
    log.record("routing", _hash(enc_keys, qdigest, cfg.routing), False, time.perf_counter() - t)

    log.begin("layout", "2-D layouts", 1)
    t = time.perf_counter()
    lib = ctx.library
    layout_key = _hash("layout", base_fp, qdigest, lib.centroids.round(6).tolist(), cfg.layout)
    layout_path = cache / "layout" / f"{layout_key}.npz"
    points = np.concatenate([lib.centroids, q_emb[0]]) if len(lib) else q_emb[0]
    stored = _read_cache(layout_path, lambda p: _cached_layout(p, len(points)), echo)
    layout_cached = stored is not None
    if layout_cached:
        coords, sampled = stored
    else:
        coords = {"pca": pca_layout(points, cfg.layout["seed"])}
        sampled = False
        if cfg.layout["umap"]:
            coords["umap"], sampled = umap_layout(points, cfg.layout["max_points"], cfg.layout["n_neighbors"],
                                                  cfg.layout["seed"])
        else:
            coords["umap"] = coords["pca"]
        atomic_write(layout_path, lambda p: np.savez(p, umap=coords["umap"], pca=coords["pca"],
                                                     sampled=np.array(sampled)))
    log.record("layout", layout_key, layout_cached, time.perf_counter() - t)

    log.begin("write", f"Writing workspace {out}")
    with atomic_dir(Path(out)) as tmp:
        for name, ds in datasets.items():
            d = inside(tmp, "datasets", name)  # a name can never write outside the workspace
            save_table(d / "docs.parquet", pd.DataFrame({"doc_id": ds.corpus.ids, "title": ds.corpus.titles,
                                                         "text": ds.corpus.texts}))
            save_array(d / "doc_emb.npy", doc_emb[name])
            save_index(indexes[name], d / "index.faiss")
        for i, emb in enumerate(q_emb):
            save_array(tmp / "embeddings" / encoder_file(i), emb)
        for spec in cfg.experts:
            src = Path(cards[spec.name].pop("_folder"))
            shutil.copytree(src, inside(tmp, "experts", spec.name))
        save_table(tmp / "queries.parquet", queries.frame())
        save_table(tmp / "qrels.parquet", pd.DataFrame(queries.qrels,
                                                       columns=["dataset", "role", "qid", "doc_id", "grade"]))
        save_table(tmp / "runs.parquet", pd.concat(runs_rows, ignore_index=True))
        save_table(tmp / "metrics.parquet", pd.concat(metric_frames, ignore_index=True))
        save_table(tmp / "decisions.parquet", pd.concat(decision_frames, ignore_index=True))
        save_table(tmp / "strategy_metrics.parquet", pd.concat(strategy_metric_frames, ignore_index=True))
        save_array(tmp / "pilots.npy", lib.centroids)
        save_table(tmp / "pilots.parquet", pd.DataFrame({
            "pilot": np.arange(len(lib)), "dataset": lib.dataset.astype(str), "expert":
            [encoders[c] for c in lib.expert], "size": lib.size}))
        labels = ctx.labels
        save_table(tmp / "pilot_labels.parquet", pd.DataFrame({
            "row": pilot_rows, "label": [encoders[c] if c >= 0 else "" for c in labels]}))
        save_table(tmp / "layout.parquet", _layout_frame(coords, len(lib), len(queries.qids)))
        choices = {s.name: [encoders[c] for c in s.columns(ctx)] for s in strategies}  # each one's choice set
        rule, cv = ctx.tie_choice  # "auto" resolved on the pilot queries, with each rule's held-out score
        routing = {**cfg.routing, "ties_chosen": rule, "tie_rule": TIE_RULES[rule],
                   **({"ties_cv": {r: round(v, 6) for r, v in cv.items()}} if cv else {})}
        manifest = _manifest(cfg, datasets, encoders, cards, candidates, own, strategies, choices, routing, log,
                             sampled, time.perf_counter() - start, len(points))
        manifest["base_model"]["parameters"] = base_parameters  # expert cards are read against it
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    echo(f"Built {out} in {time.perf_counter() - start:.1f}s")
    return Workspace(out)


def _expert(spec: ExpertSpec, cfg: BuildConfig, encoder: Encoder, datasets, doc_emb, hashes, base_fp, progress):
    """Train (or load) one expert into `encoder`; returns (folder with adapter + card.json, cache key, cached)."""
    if spec.adapter is not None:
        from .data import file_hash

        files = sorted(p for p in spec.adapter.glob("*") if p.is_file())
        key = _hash("adapter", file_hash(files) if files else str(spec.adapter), base_fp)
        folder = cfg.cache_dir / "experts" / key
        count = encoder.load_expert(spec.name, spec.adapter, spec.kind)
        if not (folder / "card.json").is_file():
            tmp = _partial_dir(folder)
            encoder.save_expert(spec.name, tmp)
            card = {"name": spec.name, "kind": spec.kind, "origin": "loaded", "adapter": str(spec.adapter),
                    "trainable_parameters": count, "datasets": spec.datasets}
            (tmp / "card.json").write_text(json.dumps(card, indent=2))
            _finish_dir(tmp, folder)
            return folder, key, False
        return folder, key, True
    key = spec.cache_key(hashes, base_fp)
    folder = cfg.cache_dir / "experts" / key
    if (folder / "card.json").is_file():
        encoder.load_expert(spec.name, folder, spec.kind)
        return folder, key, True
    seed = int(spec.train.get("seed", TRAIN_DEFAULTS["seed"]))
    sets = []
    for i, s in enumerate(spec.sources):
        params = {**spec.train, **{k: v for k, v in s.items() if k not in ("dataset", "source")}}
        sets.append(make_pairs(datasets[s["dataset"]], s["source"], params, seed + i))
    if spec.multi_task:
        by_dataset: dict[str, list] = {}
        for s, pairs in zip(spec.sources, sets):
            by_dataset.setdefault(s["dataset"], []).extend(pairs)
        pairs = balanced_union(list(by_dataset.values()), spec.train.get("per_dataset_pairs"), seed)
    else:
        pairs = [p for s in sets for p in s]
    bar = tqdm(total=None, desc=f"train {spec.name}", disable=not progress, leave=False)

    def tick(step, total, loss):
        bar.total = total
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    result = train_expert(encoder, spec.name, pairs, doc_emb, spec.train, spec.adapter_params, tick, spec.kind,
                          corpora={d: datasets[d].corpus.passages() for d in spec.datasets})
    bar.close()
    tmp = _partial_dir(folder)
    encoder.save_expert(spec.name, tmp)
    card = {
        "name": spec.name, "kind": spec.kind, "origin": "trained", "multi_task": spec.multi_task,
        "datasets": spec.datasets, "sources": spec.sources, "pairs": len(pairs), "steps": result.steps,
        "hyper_parameters": {**{k: spec.train[k] for k in TRAIN_DEFAULTS if k in spec.train}, **result.settings},
        "trainable_parameters": result.trainable_parameters, "loss_curve": result.loss_curve,
        "seconds": round(result.seconds, 2),
    }
    (tmp / "card.json").write_text(json.dumps(card, indent=2))
    _finish_dir(tmp, folder)
    return folder, key, False


def _partial_dir(folder: Path) -> Path:
    """`<key>.partial-<pid>` beside `folder`, after deleting those of builds that are gone (never a live one's):
    two builds training the same expert at once never share one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder.with_name(folder.name + ".partial"), ignore_errors=True)  # the old name, without a pid
    remove_stale(folder.parent, f"{folder.name}.partial-")
    return folder.with_name(f"{folder.name}.partial-{os.getpid()}")


def _finish_dir(tmp: Path, folder: Path) -> None:
    """Move a finished partial folder into place; if another build finished the same entry first, keep theirs."""
    if (folder / "card.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _read_cache(path: Path, read: Callable[[Path], object], echo: Callable[[str], None]):
    """A cache entry, or None to recompute it: when it is not there, or fails to read (a truncated or damaged
    file, of the wrong shape), which is warned about and then overwritten."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read(path)
    except Exception as err:  # any failure of a cache read means: compute it again
        reason = str(err).replace(f"{path}: ", "").split(" (fix:")[0][:200]
        echo(f"  warning: the cache file {path} cannot be used ({reason}); computing it again")
        return None


def _cached_array(path: Path, rows: int) -> np.ndarray:
    array = load_array(path, ndim=2)
    if len(array) != rows:
        raise ValueError(f"{len(array)} rows, expected {rows}")
    return array


def _cached_index(path: Path, rows: int):
    index = load_index(path)
    if index.ntotal != rows:
        raise ValueError(f"{index.ntotal} documents, expected {rows}")
    return index


def _cached_layout(path: Path, points: int) -> tuple[dict, bool]:
    with np.load(path, allow_pickle=False) as z:
        coords = {"umap": np.asarray(z["umap"]), "pca": np.asarray(z["pca"])}
        sampled = bool(z["sampled"])
    if any(c.shape != (points, 2) for c in coords.values()):
        raise ValueError(f"layouts of shape {coords['pca'].shape}, expected ({points}, 2)")
    return coords, sampled


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


def _mixture_runs(strategy, weights, rows, encoders, encoder, queries, datasets, indexes, cfg, qrels_by, runs_rows):
    """Encode the queries a strategy merged (e.g. DAR below its margin) under their weighted adapters; evaluate."""
    values = np.zeros((len(rows), len(cfg.measures)))
    ds_spec = {s.name: s for s in cfg.datasets}
    for i, (row, w) in enumerate(zip(rows, weights)):
        mix = {encoders[c]: float(w[c]) for c in np.flatnonzero(w)}
        emb = encoder.encode([queries.texts[row]], expert=mix)
        ds = queries.datasets[row]
        run = search(indexes[ds], emb, cfg.depth, datasets[ds].corpus.ids, [queries.qids[row]],
                     ds_spec[ds].ignore_identical_ids)
        runs_rows.append(_run_frame(f"mix:{strategy}", np.array([row]), run))
        qid = queries.qids[row]
        pq = per_query(qrels_by[(ds, "eval")], run_dict([qid], datasets[ds].corpus.ids, run.docs, run.scores),
                       cfg.measures, [qid])
        values[i] = pq.to_numpy()[0]
    return values


def _decision_frame(strategy: str, rows: np.ndarray, dec, encoders: list[str]) -> pd.DataFrame:
    chosen = dec.chosen
    frame = pd.DataFrame({"strategy": strategy, "row": rows,
                          "chosen": [encoders[c] if c >= 0 else "mixture" for c in chosen],
                          "margin": dec.margin})
    for j, name in enumerate(encoders):
        frame[f"score:{name}"] = dec.scores[:, j]
    for j, name in enumerate(encoders):
        frame[f"weight:{name}"] = dec.weights[:, j]
    return frame


def _layout_frame(coords: dict, n_pilots: int, n_queries: int) -> pd.DataFrame:
    frames = []
    for method, xy in coords.items():
        frames.append(pd.DataFrame({
            "method": method, "item": ["pilot"] * n_pilots + ["query"] * n_queries,
            "ref": np.concatenate([np.arange(n_pilots), np.arange(n_queries)]), "x": xy[:, 0], "y": xy[:, 1]}))
    return pd.concat(frames, ignore_index=True)


def _manifest(cfg, datasets, encoders, cards, candidates, own, strategies, choices, routing, log, sampled, seconds,
              n_points) -> dict:
    return {
        "format_version": WORKSPACE_FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "title": cfg.title, "config": str(cfg.path),
        "base_model": {"name": cfg.base, "fingerprint": base_fingerprint(cfg.base),
                       "max_seq_length": cfg.max_seq_length},
        "datasets": [{
            "name": s.name, "path": str(s.path), "hash": datasets[s.name].content_hash,
            "n_docs": len(datasets[s.name].corpus), "test_split": s.test_split, "train_split": s.train_split,
            "ignore_identical_ids": s.ignore_identical_ids, "pilot_source": s.pilot_source,
            "role": s.role, **({"judged_split": {"share": s.judged_split, "seed": s.judged_seed, "of": s.judged_from,
                                                 "train": len(datasets[s.name].qrels[s.train_split]),
                                                 "test": len(datasets[s.name].qrels[s.test_split])}}
                               if s.judged_split else {}),
            "warnings": [str(w) for w in datasets[s.name].warnings]} for s in cfg.datasets],
        "encoders": encoders,
        "experts": [{"name": e.name, "kind": e.kind, "candidate": e.candidate, "multi_task": e.multi_task,
                     "datasets": e.datasets, "adapter": f"experts/{e.name}", "card": cards[e.name]}
                    for e in cfg.experts],
        "candidates": [encoders[c] for c in candidates],
        "own_expert": {d: encoders[c] for d, c in own.items()},
        "strategies": [{"name": s.name, "description": s.description, "family": s.family,
                        "uses_oracle": s.uses_oracle, "whatif": s.whatif, "choices": choices[s.name]}
                       for s in strategies],
        "routing": routing,
        "measures": cfg.measures, "reference": cfg.reference,
        "index": {"kind": cfg.index_kind, "depth": cfg.depth},
        "layout": {**cfg.layout, "sampled": sampled, "points": n_points},
        "versions": _library_versions(), "stages": log.entries, "build_seconds": round(seconds, 1),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
