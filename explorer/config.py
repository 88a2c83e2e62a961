"""The build config (TOML): datasets, experts, routing and evaluation settings, validated with file and key."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .evaluation import DEFAULT_MEASURES
from .experts import EXPERT_KINDS
from .pilot import TIE_RULES
from .training import PAIR_SOURCES, TRAIN_DEFAULTS


class ConfigError(ValueError):
    pass


@dataclass
class DatasetSpec:
    name: str
    path: Path
    test_split: str = "test"
    train_split: str | None = None
    ignore_identical_ids: bool = False
    pilot_source: str = "train"  # "train" (real training queries) or "crops" (held-out pseudo-queries)
    max_pilot_queries: int = 300
    max_eval_queries: int | None = None


@dataclass
class ExpertSpec:
    name: str
    kind: str = "lora"
    sources: list[dict] = field(default_factory=list)  # [{dataset, source, split?, max_pairs?}]
    adapter: Path | None = None  # load instead of training
    multi_task: bool = False
    candidate: bool = True
    train: dict = field(default_factory=dict)  # training hyper-parameters (TRAIN_DEFAULTS overridden)
    adapter_params: dict = field(default_factory=dict)  # r, alpha, dropout, target_modules

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(s["dataset"] for s in self.sources))

    def cache_key(self, data_hashes: dict[str, str], base: str) -> str:
        payload = {"spec": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()},
                   "data": {d: data_hashes.get(d) for d in self.datasets}, "base": base}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    layout: dict
    cache_dir: Path

    @property
    def multitask(self) -> ExpertSpec | None:
        return next((e for e in self.experts if e.multi_task), None)


# Per-kind settings of an [[experts]] table (LoRA: r, alpha, ...; prefix: virtual_tokens; query-adapter: encoder, ...)
ADAPTER_PARAMS = ("r", "alpha", "dropout", "target_modules", "virtual_tokens", "encoder", "stages", "align_passages",
                  "align_loss", "adapter_lr")
ROUTING_DEFAULTS = {"strategies": [], "variants": [], "ties": "first", "pilot_k": 1, "normalize_pilots": True,
                    "base_as_candidate": False, "gamma": 0.05, "tau": 0.05, "dataset_router_samples": 100, "seed": 0,
                    "ddr_top_k": 2}
LAYOUT_DEFAULTS = {"umap": True, "max_points": 5000, "n_neighbors": 15, "seed": 0}


def _fail(path: Path, where: str, message: str, fix: str):
    raise ConfigError(f"{path}: [{where}] {message} (fix: {fix})")


def load_config(path: str | Path) -> BuildConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file (fix: give the path of a build .toml)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err} (fix: correct the syntax at that line)") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 (fix: re-save as UTF-8)") from err
    root = path.parent
    model = raw.get("model", {})
    index = raw.get("index", {})
    training_defaults = {**TRAIN_DEFAULTS, **raw.get("training", {})}

    datasets = []
    for i, d in enumerate(raw.get("datasets", [])):
        where = f"datasets #{i + 1}"
        if "path" not in d:
            _fail(path, where, "no path", "give the BEIR folder, relative to the config file")
        folder = (root / d["path"]).resolve()
        spec = DatasetSpec(name=d.get("name", folder.name), path=folder, test_split=d.get("test_split", "test"),
                           train_split=d.get("train_split") or None,
                           ignore_identical_ids=bool(d.get("ignore_identical_ids", False)),
                           pilot_source=d.get("pilot_source", "train" if d.get("train_split") else "crops"),
                           max_pilot_queries=int(d.get("max_pilot_queries", 300)),
                           max_eval_queries=d.get("max_eval_queries"))
        if spec.pilot_source not in ("train", "crops"):
            _fail(path, where, f"pilot_source = {spec.pilot_source!r}", 'use "train" or "crops"')
        if spec.pilot_source == "train" and not spec.train_split:
            _fail(path, where, "pilot_source = \"train\" without train_split",
                  'set train_split, or pilot_source = "crops" for a dataset without training queries')
        datasets.append(spec)
    if not datasets:
        _fail(path, "datasets", "no datasets", "add at least one [[datasets]] table with a path")
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        _fail(path, "datasets", "two datasets share a name", "give every dataset a unique name")

    experts = []
    for i, e in enumerate(raw.get("experts", [])):
        where = f"experts #{i + 1}"
        if "name" not in e:
            _fail(path, where, "no name", "name every expert")
        kind = e.get("kind", "lora")
        if kind not in EXPERT_KINDS:
            _fail(path, where, f"kind {kind!r} is unknown", f"use one of {', '.join(EXPERT_KINDS)}")
        sources = [dict(s) for s in e.get("sources", [])]
        for s in sources:
            if s.get("dataset") not in names:
                _fail(path, where, f"source dataset {s.get('dataset')!r} is not configured",
                      f"use one of {', '.join(names)}")
            if s.get("source", "qrels") not in PAIR_SOURCES:
                _fail(path, where, f"source {s.get('source')!r} is unknown", f"use one of {', '.join(PAIR_SOURCES)}")
            s.setdefault("source", "qrels")
        multi = bool(e.get("multi_task", False))
        adapter = (root / e["adapter"]).resolve() if e.get("adapter") else None
        if not sources and not multi and adapter is None:
            _fail(path, where, f"expert {e['name']!r} has no sources and no adapter",
                  "give sources = [{dataset = ..., source = ...}], multi_task = true, or adapter = \"folder\"")
        train = {**training_defaults, **{k: v for k, v in e.items() if k in TRAIN_DEFAULTS}}
        adapter_params = {k: e[k] for k in ADAPTER_PARAMS if k in e}
        experts.append(ExpertSpec(name=e["name"], kind=kind, sources=sources, adapter=adapter, multi_task=multi,
                                  candidate=bool(e.get("candidate", not multi)), train=train,
                                  adapter_params=adapter_params))
    from .encoders import EXPERT_NAME

    for e in experts:
        if not EXPERT_NAME.fullmatch(e.name):
            _fail(path, f"experts {e.name!r}", "the name has characters other than letters, digits, '-' and '_'",
                  "rename the expert")
    enames = [e.name for e in experts]
    if len(set(enames)) != len(enames) or "base" in enames:
        _fail(path, "experts", "expert names must be unique and not 'base'", "rename the experts")
    if sum(e.multi_task for e in experts) > 1:
        _fail(path, "experts", "more than one multi_task expert", "keep one")

    routing = {**ROUTING_DEFAULTS, **raw.get("routing", {})}
    if routing["ties"] not in TIE_RULES:
        _fail(path, "routing", f"ties = {routing['ties']!r}", f"use one of {', '.join(TIE_RULES)}")
    for v in routing["variants"]:
        if not isinstance(v, dict) or "name" not in v or "router" not in v:
            _fail(path, "routing.variants", f"{v!r} lacks a name or a router",
                  'write [[routing.variants]] with name = "pilot-mean/skip-all", router = "pilot-mean", ties = ...')
        if "ties" in v and v["ties"] not in TIE_RULES:
            _fail(path, f"routing.variants {v['name']!r}", f"ties = {v['ties']!r}", f"use one of {', '.join(TIE_RULES)}")
    try:
        from .routing import all_strategies

        all_strategies(["base"], None, None, routing["variants"])
    except ValueError as err:
        _fail(path, "routing.variants", str(err), "name a registered router and only routing parameters")
    evaluation = raw.get("evaluation", {})
    cache = raw.get("cache_dir")
    return BuildConfig(
        path=path.resolve(), title=raw.get("title", path.stem), base=model.get("base", "bundled"),
        max_seq_length=int(model.get("max_seq_length", 256)), batch_size=int(model.get("batch_size", 64)),
        index_kind=index.get("kind", "flat"), depth=int(index.get("depth", 100)), datasets=datasets,
        experts=experts, routing=routing, measures=list(evaluation.get("measures", DEFAULT_MEASURES)),
        reference=evaluation.get("reference", "base"), layout={**LAYOUT_DEFAULTS, **raw.get("layout", {})},
        cache_dir=(root / cache).resolve() if cache else Path.home() / ".cache" / "router-explorer",
    )
