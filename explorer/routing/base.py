"""The routing-strategy contract and its registry.

A strategy is one small class: a name, a one-line description, and `decide`, which returns weights over the
encoder columns (one-hot for hard routing), the per-expert scores it chose by, and the margin between the top
two. Registering a class makes it appear in the CLI, the reports and every page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..capabilities import LEXICAL
from ..fusion import Fusion, RunPool
from ..pilot import PilotLibrary, best_labels, build_library, choose_tie_rule
from ..rankmetrics import Judgements
from ..settings import Param

ROUTERS: dict[str, type["Router"]] = {}
# Settings every router reads: which columns are candidates, and the seed of anything sampled.
COMMON_PARAMS = (
    Param("seed", int, 0, "seed of every sampled choice in routing (pilot sampling, k-means, random ties)"),
    Param("base_as_candidate", bool, False, "the base model (no expert) is a routing candidate too"),
    Param("lexical_as_candidate", bool, False, "every lexical expert (BM25) is a routing candidate too, whatever "
          "its own `candidate` says"),
)


# Mixing instead of choosing (explorer/routing/mixing.py): [routing] settings, and per variant.
MIX_PARAMS = (
    Param("soft_k", int, None, "soft routing: experts whose runs are mixed per query (1 = the hard choice)", min=1,
          max=64, nullable=True, default_doc="chosen on pilot queries among 1, 2, 3"),
    Param("soft_temperature", float, None, "soft routing: temperature of the softmax over the router's scores",
          above=0, max=100, nullable=True, default_doc="chosen on pilot queries among 0.005 to 1"),
    Param("hybrid_weight", float, 0.5, "hybrid: the lexical experts' share of the fused score (CombSUM over "
          "min-max normalised scores; the strategy's runs have the rest)", above=0, below=1),
    Param("hybrid_datasets", str, "all", 'hybrid: fuse with the lexical experts on every dataset ("all"), or on '
          'the datasets whose pilot queries score higher with them than without ("pilot", cross-validated on the '
          "pilot queries; a dataset without pilot queries keeps the strategy alone)", choices=("all", "pilot")),
)
# Only in a [[routing.variants]] table: turn a router's choice into a mixture.
VARIANT_MIX = (
    Param("soft", bool, False, "variant of a router that scores experts: mix the runs of its top soft_k experts, "
          "weighted by softmax(score / soft_temperature), instead of choosing one"),
    Param("hybrid", bool, False, "variant: fuse the strategy's run with the lexical experts' runs (hybrid_weight)"),
)


def register(cls: type["Router"]) -> type["Router"]:
    """Register a router under its name (unique); its declared `params` become settings of [routing] and of its
    variants."""
    if cls.name in ROUTERS and ROUTERS[cls.name] is not cls:
        raise ValueError(f"a router named {cls.name!r} is already registered")
    ROUTERS[cls.name] = cls
    return cls


def routing_params() -> tuple[Param, ...]:
    """Every routing setting: the common ones, then each registered router's own (shared ones once)."""
    out: dict[str, Param] = {p.name: p for p in (*COMMON_PARAMS, *MIX_PARAMS)}
    for cls in ROUTERS.values():
        for p in cls.params:
            out.setdefault(p.name, p)
    return tuple(out.values())


@dataclass
class RoutingContext:
    """What routers may look at. Columns of every matrix are `encoders` (column 0 is the base model, then the
    experts, then any runs read from files: a column is a system whose per-query scores are known)."""

    encoders: list[str]
    candidates: list[int]  # columns a router may choose (the domain experts; plus 0 if base is a candidate)
    own_expert: dict[str, int]  # dataset -> column of the expert trained on it
    pilot_emb: np.ndarray  # (n_pilot, d) base embeddings of pilot queries
    pilot_dataset: np.ndarray  # (n_pilot,) source dataset of each pilot query
    pilot_scores: np.ndarray  # (n_pilot, n_encoders) label measure (nDCG@10 unless set) of every encoder
    eval_dataset: np.ndarray  # (n_eval,) dataset of each evaluated query
    eval_scores: np.ndarray  # (n_eval, n_encoders) label measure per encoder: only oracles may read it
    expert_datasets: dict[int, list[str]] = field(default_factory=dict)  # column -> datasets it was trained on
    # column -> what the expert can do (explorer.capabilities); a router asks this, never the kind's name
    expert_capabilities: dict[int, frozenset[str]] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    # every encoder's stored run of every query (pool position = query row), for strategies that mix runs or look
    # at them (fusion, soft routing, post-retrieval routing); None where no run is at hand (a typed query)
    runs: RunPool | None = None
    pilot_rows: np.ndarray | None = None  # (n_pilot,) query rows of the pilot queries, in pilot_emb's order
    row_dataset: np.ndarray | None = None  # (n_queries,) the dataset of every query row
    eval_rows: np.ndarray | None = None  # (n_eval,) query rows of the evaluated queries
    # judgements of the pilot queries only (position = query row): mixing settings are chosen on them
    pilot_judged: Judgements | None = None
    label_measure: str = "nDCG@10"
    depth: int = 100  # documents kept per run
    _cache: dict = field(default_factory=dict, repr=False)

    def able(self, capability: str) -> list[int]:
        """The columns whose expert has `capability`, in column order."""
        return [c for c, caps in sorted(self.expert_capabilities.items()) if capability in caps]

    def param(self, key: str):
        """A routing setting: as configured, else its declared default (declared once, by the router that reads
        it or COMMON_PARAMS); KeyError for a setting no router declares."""
        if key in self.params:
            return self.params[key]
        declared = {p.name: p for p in routing_params()}
        if key not in declared:
            raise KeyError(f"{key!r} is not a declared routing setting")
        return declared[key].default

    @property
    def lexical(self) -> list[int]:
        """Columns of the lexical experts (BM25): they have runs but no query embedding."""
        return self.able(LEXICAL)

    def pilot_subset(self, keep: np.ndarray) -> "RoutingContext":
        """The same context with only the pilot queries at `keep` (a boolean mask or positions): what a router
        trained on part of the pilot queries sees, to be scored on the rest (cross-validation on pilot data)."""
        return replace(self, pilot_emb=self.pilot_emb[keep], pilot_dataset=self.pilot_dataset[keep],
                       pilot_scores=self.pilot_scores[keep],
                       pilot_rows=None if self.pilot_rows is None else self.pilot_rows[keep], _cache={})

    def with_params(self, overrides: dict) -> "RoutingContext":
        """The same context with some parameters overridden (a strategy variant); kept, so its pilot library and
        fitted classifiers are computed once like the main context's."""
        if not overrides:
            return self
        key = ("params", tuple(sorted(overrides.items())))
        return self.cached(key, lambda: replace(self, params={**self.params, **overrides}, _cache={}))

    def cached(self, key, make: Callable):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def tie_choice(self) -> tuple[str, dict[str, float]]:
        """(the tie rule in use, held-out pilot scores of each rule when it was chosen by cross-validation)."""
        def choose():
            rule = self.param("ties")
            if rule != "auto":
                return rule, {}
            return choose_tie_rule(self.pilot_emb, self.pilot_scores, self.candidates, self.pilot_dataset,
                                   self.own_expert, seed=self.param("seed"), k=self.param("pilot_k"),
                                   normalize=self.param("normalize_pilots"))
        return self.cached("tie_choice", choose)

    @property
    def labels(self) -> np.ndarray:
        return self.cached("labels", lambda: best_labels(
            self.pilot_scores, self.candidates, self.pilot_dataset, self.own_expert,
            ties=self.tie_choice[0], seed=self.param("seed")))

    @property
    def library(self) -> PilotLibrary:
        return self.cached("library", lambda: build_library(
            self.pilot_emb, self.labels, self.pilot_dataset, k=self.param("pilot_k"), seed=self.param("seed"),
            normalize=self.param("normalize_pilots")))


@dataclass
class Decision:
    weights: np.ndarray  # (n, n_encoders), rows sum to 1; one-hot for hard routing
    scores: np.ndarray  # (n, n_encoders), NaN where a column was not a candidate
    margin: np.ndarray  # (n,) top-1 minus top-2 candidate score (NaN with fewer than two candidates)
    # how a mixture becomes a ranking: None = one query encoding under the weighted experts (DAR's merge, DDR's
    # prefixes); a Fusion = the weighted experts' stored runs fused (RRF, CombSUM, ...)
    fusion: Fusion | None = None

    @property
    def chosen(self) -> np.ndarray:
        """Column of a hard choice, -1 for a mixture."""
        hard = np.isclose(self.weights.max(axis=1), 1.0)
        return np.where(hard, self.weights.argmax(axis=1), -1)


# how a strategy decides, for grouping: external = a run read from a file (explorer.runs)
GROUPS = ("choose", "mix", "post-retrieval", "lexical", "fixed", "external", "oracle")


class Router:
    name: str = ""
    description: str = ""
    family: str = ""
    group: str = "choose"  # one of GROUPS: picks one expert, mixes them, looks at their runs, ...
    uses_oracle: bool = False  # reads the evaluated queries' own scores (an upper bound, not a real router)
    typed_queries: bool = True  # can decide a query typed in the app (not a run read from a file: it has none)
    params: tuple[Param, ...] = ()  # the settings this router reads (besides COMMON_PARAMS)
    needs_runs: bool = False  # decides from every expert's run of the query (post-retrieval), not the embedding
    scores_experts: bool = True  # decides by a score per expert: a soft variant may mix its top ones instead
    merges_adapters: bool = False  # its mixtures are encodings under merged experts, not fusions of runs
    chosen: dict | None = None  # settings its build chose (the manifest's `settings`), reused rather than chosen again

    def available(self, ctx: RoutingContext) -> bool:
        return len(ctx.candidates) > 0

    def covers(self, datasets: np.ndarray) -> np.ndarray:
        """Which evaluated queries (by their dataset) this strategy decides: all of them, but for a run read from
        a file, which ranks only its own datasets."""
        return np.ones(len(datasets), dtype=bool)

    def columns(self, ctx: RoutingContext) -> list[int]:
        """The encoder columns this router chooses among (what-if re-decides among those still enabled)."""
        return ctx.candidates

    def score(self, ctx: RoutingContext, emb: np.ndarray) -> np.ndarray:
        """(n, n_encoders) scores; the decision is the best candidate. A router that `needs_runs` is called as
        score(ctx, emb, rows) with the queries' rows, whose runs it reads from ctx.runs."""
        raise NotImplementedError

    def scores(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """`score`, handed the query rows when the router reads runs."""
        if self.needs_runs:
            if rows is None or ctx.runs is None:
                raise ValueError(f"{self.name} decides from every expert's stored run: it needs the queries' rows")
            return self.score(ctx, emb, rows)
        return self.score(ctx, emb)

    def decide(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        return argmax_decision(self.scores(ctx, emb, rows), ctx.candidates, len(ctx.encoders))

    def group_in(self, ctx: RoutingContext) -> str:
        return self.group

    def fusion(self, ctx: RoutingContext) -> Fusion | None:
        """How this strategy's mixtures become rankings when they fuse stored runs (None: it chooses, or merges
        experts into one encoding)."""
        return None

    def settings(self, ctx: RoutingContext) -> dict:
        """Settings chosen at build time (e.g. on pilot queries by cross-validation), with the scores that chose
        them: the manifest keeps them, and the what-if and live routing reuse them instead of choosing again."""
        return {}

    def record(self, ctx: RoutingContext) -> dict:
        """What the manifest keeps of this strategy: the read side rebuilds its choice set and labels from it."""
        chosen = self.settings(ctx)
        return {"name": self.name, "description": self.description, "family": self.family,
                "group": self.group_in(ctx), "uses_oracle": self.uses_oracle,
                "choices": [ctx.encoders[c] for c in self.columns(ctx)], **({"settings": chosen} if chosen else {})}

    def what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]) -> np.ndarray | None:
        """The column each evaluated query goes to with the experts at `off` switched off (-1: a stored mixture
        of experts still on, whose stored score stands), or None when the strategy cannot run without them.
        `ctx`'s candidates and own experts are those still on. By default: decide again from the pilot data."""
        return self.decide(ctx, emb, ctx.eval_rows).chosen

    def what_if_decision(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]
                         ) -> Decision | None:
        """For a strategy whose mixtures fuse runs: the whole decision (weights and fusion) with the experts at
        `off` switched off, so the what-if fuses again; None when it cannot run without them. By default: the
        stored decision's scores re-decided by `what_if` (hard routing)."""
        chosen = self.what_if(ctx, emb, stored, off)
        if chosen is None:
            return None
        weights = np.zeros_like(stored.weights)
        hard = chosen >= 0
        weights[np.flatnonzero(hard), chosen[hard]] = 1.0
        weights[~hard] = stored.weights[~hard]
        return Decision(weights, stored.scores, stored.margin, stored.fusion)

    def masked_what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        """What-if for routers whose per-expert scores do not depend on which other experts exist: the scores
        stored at build time, with the switched-off experts masked, choose again."""
        masked = stored.scores.copy()
        masked[:, off] = np.nan
        chosen = argmax_decision(masked, [c for c in self.columns(ctx) if c not in off], len(ctx.encoders)).chosen
        kept = (stored.weights.max(axis=1) < 1) & ~np.any(stored.weights[:, off] > 0, axis=1)
        return np.where(kept, -1, chosen)  # a stored mixture of enabled experts still stands


def routing_context(encoders: list[str], experts: list[dict], candidates: list[str], own_expert: dict[str, str],
                    base_emb: np.ndarray, datasets, roles, label_scores: np.ndarray, params: dict,
                    runs: RunPool | None = None, pilot_judged: Judgements | None = None,
                    label_measure: str = "nDCG@10", depth: int = 100) -> RoutingContext:
    """The one way a RoutingContext is made (the build, the what-if, the synthetic benchmark): from the
    manifest's expert records, candidate and own-expert names, and per-query arrays of every query in row order
    (base embeddings, dataset, role, and the label measure of every encoder); pilot and evaluated rows are taken
    by role. `runs` (pool position = query row) and the pilot queries' judgements serve the strategies that mix
    or read runs."""
    col = {e: i for i, e in enumerate(encoders)}
    roles = np.asarray(roles)
    ds = np.asarray(datasets, dtype=object)
    pilot, ev = roles == "pilot", roles == "eval"
    return RoutingContext(
        encoders=list(encoders), candidates=[col[c] for c in candidates],
        own_expert={d: col[e] for d, e in own_expert.items()}, pilot_emb=base_emb[pilot], pilot_dataset=ds[pilot],
        pilot_scores=label_scores[pilot], eval_dataset=ds[ev], eval_scores=label_scores[ev],
        expert_datasets={col[e["name"]]: list(e["datasets"]) for e in experts if not e["multi_task"]},
        expert_capabilities={col[e["name"]]: frozenset(e.get("capabilities", ())) for e in experts},
        params=dict(params), runs=runs, pilot_rows=np.flatnonzero(pilot), eval_rows=np.flatnonzero(ev), row_dataset=ds,
        pilot_judged=pilot_judged, label_measure=label_measure, depth=depth)


def argmax_decision(scores: np.ndarray, candidates: list[int], n_encoders: int) -> Decision:
    """Hard routing: the candidate with the highest score (ties: the first), one-hot weights; with no candidate
    left (every expert switched off) the base model, column 0."""
    n = len(scores)
    full = np.full((n, n_encoders), np.nan)
    cand = np.asarray(candidates, dtype=np.int64)
    full[:, cand] = scores[:, cand]
    sub = np.nan_to_num(full[:, cand], nan=-np.inf)
    pick = cand[np.argmax(sub, axis=1)] if len(cand) else np.zeros(n, dtype=int)
    weights = np.zeros((n, n_encoders))
    weights[np.arange(n), pick] = 1.0
    return Decision(weights, full, top2_margin(sub))


def top2_margin(sub: np.ndarray) -> np.ndarray:
    if sub.shape[1] < 2:
        return np.full(len(sub), np.nan)
    top = -np.sort(-sub, axis=1)[:, :2]
    with np.errstate(invalid="ignore"):  # fewer than two scored candidates (-inf - -inf): no margin, NaN
        margin = top[:, 0] - top[:, 1]
    return np.where(np.isfinite(top).all(axis=1), margin, np.nan)


class Variant(Router):
    """A registered router run with parameter overrides under its own name, e.g. pilot-mean with another tie rule,
    so that a design choice can be compared side by side with the original everywhere."""

    extra_params: tuple[Param, ...] = ()  # what a subclass lets a variant set besides the inner router's settings

    def __init__(self, name: str, inner: Router, overrides: dict):
        allowed = [p.name for p in (*COMMON_PARAMS, *MIX_PARAMS, *self.extra_params, *inner.params)]
        unknown = [k for k in overrides if k not in allowed]
        if unknown:
            raise ValueError(f"variant {name!r}: {unknown[0]!r} cannot be overridden for router {inner.name!r}; "
                             f"use {', '.join(allowed)}")
        self.name, self.inner, self.overrides = name, inner, dict(overrides)
        self.family, self.uses_oracle, self.group = inner.family, inner.uses_oracle, inner.group
        self.needs_runs, self.merges_adapters = inner.needs_runs, inner.merges_adapters
        settings = ", ".join(f"{k} = {v}" for k, v in overrides.items())
        self.description = f"{inner.name} with {settings}"

    def _context(self, ctx: RoutingContext) -> RoutingContext:
        ctx = ctx.with_params(self.overrides)
        for key, cols in (("base_as_candidate", [0]), ("lexical_as_candidate", ctx.lexical)):
            if key in self.overrides:
                without = [c for c in ctx.candidates if c not in cols]
                ctx.candidates = sorted(set(without) | set(cols)) if self.overrides[key] else without
        return ctx

    def available(self, ctx: RoutingContext) -> bool:
        return self.inner.available(self._context(ctx))

    def columns(self, ctx: RoutingContext) -> list[int]:
        return self.inner.columns(self._context(ctx))

    def group_in(self, ctx: RoutingContext) -> str:
        return self.inner.group_in(self._context(ctx))

    def fusion(self, ctx: RoutingContext) -> Fusion | None:
        return self.inner.fusion(self._context(ctx))

    def settings(self, ctx: RoutingContext) -> dict:
        return self.inner.settings(self._context(ctx))

    def decide(self, ctx: RoutingContext, emb: np.ndarray, rows: np.ndarray | None = None) -> Decision:
        return self.inner.decide(self._context(ctx), emb, rows)

    def what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        return self.inner.what_if(self._context(ctx), emb, stored, off)

    def what_if_decision(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        return self.inner.what_if_decision(self._context(ctx), emb, stored, off)
