"""The routing-strategy contract and its registry.

A strategy is one small class: a name, a one-line description, and `decide`, which returns weights over the
encoder columns (one-hot for hard routing), the per-expert scores it chose by, and the margin between the top
two. Registering a class makes it appear in the CLI, the reports and every page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..pilot import PilotLibrary, best_labels, build_library, choose_tie_rule
from ..settings import Param

ROUTERS: dict[str, type["Router"]] = {}
# Settings every router reads: which columns are candidates, and the seed of anything sampled.
COMMON_PARAMS = (
    Param("seed", int, 0, "seed of every sampled choice in routing (pilot sampling, k-means, random ties)"),
    Param("base_as_candidate", bool, False, "the base model (no expert) is a routing candidate too"),
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
    out: dict[str, Param] = {p.name: p for p in COMMON_PARAMS}
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
    _cache: dict = field(default_factory=dict, repr=False)

    def able(self, capability: str) -> list[int]:
        """The columns whose expert has `capability`, in column order."""
        return [c for c, caps in sorted(self.expert_capabilities.items()) if capability in caps]

    def param(self, key: str, default):
        return self.params.get(key, default)

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
            rule = self.param("ties", "auto")
            if rule != "auto":
                return rule, {}
            return choose_tie_rule(self.pilot_emb, self.pilot_scores, self.candidates, self.pilot_dataset,
                                   self.own_expert, seed=self.param("seed", 0), k=self.param("pilot_k", 1),
                                   normalize=self.param("normalize_pilots", True))
        return self.cached("tie_choice", choose)

    @property
    def labels(self) -> np.ndarray:
        return self.cached("labels", lambda: best_labels(
            self.pilot_scores, self.candidates, self.pilot_dataset, self.own_expert,
            ties=self.tie_choice[0], seed=self.param("seed", 0)))

    @property
    def library(self) -> PilotLibrary:
        return self.cached("library", lambda: build_library(
            self.pilot_emb, self.labels, self.pilot_dataset, k=self.param("pilot_k", 1), seed=self.param("seed", 0),
            normalize=self.param("normalize_pilots", True)))


@dataclass
class Decision:
    weights: np.ndarray  # (n, n_encoders), rows sum to 1; one-hot for hard routing
    scores: np.ndarray  # (n, n_encoders), NaN where a column was not a candidate
    margin: np.ndarray  # (n,) top-1 minus top-2 candidate score (NaN with fewer than two candidates)

    @property
    def chosen(self) -> np.ndarray:
        """Column of a hard choice, -1 for a mixture."""
        hard = np.isclose(self.weights.max(axis=1), 1.0)
        return np.where(hard, self.weights.argmax(axis=1), -1)


class Router:
    name: str = ""
    description: str = ""
    family: str = ""
    uses_oracle: bool = False  # reads the evaluated queries' own scores (an upper bound, not a real router)
    typed_queries: bool = True  # can decide a query typed in the app (not a run read from a file: it has none)
    params: tuple[Param, ...] = ()  # the settings this router reads (besides COMMON_PARAMS)

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
        """(n, n_encoders) scores; the decision is the best candidate."""
        raise NotImplementedError

    def decide(self, ctx: RoutingContext, emb: np.ndarray) -> Decision:
        return argmax_decision(self.score(ctx, emb), ctx.candidates, len(ctx.encoders))

    def record(self, ctx: RoutingContext) -> dict:
        """What the manifest keeps of this strategy: the read side rebuilds its choice set and labels from it."""
        return {"name": self.name, "description": self.description, "family": self.family,
                "uses_oracle": self.uses_oracle, "choices": [ctx.encoders[c] for c in self.columns(ctx)]}

    def what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]) -> np.ndarray | None:
        """The column each evaluated query goes to with the experts at `off` switched off (-1: a stored mixture
        of experts still on, whose stored score stands), or None when the strategy cannot run without them.
        `ctx`'s candidates and own experts are those still on. By default: decide again from the pilot data."""
        return self.decide(ctx, emb).chosen

    def masked_what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        """What-if for routers whose per-expert scores do not depend on which other experts exist: the scores
        stored at build time, with the switched-off experts masked, choose again."""
        masked = stored.scores.copy()
        masked[:, off] = np.nan
        chosen = argmax_decision(masked, [c for c in self.columns(ctx) if c not in off], len(ctx.encoders)).chosen
        kept = (stored.weights.max(axis=1) < 1) & ~np.any(stored.weights[:, off] > 0, axis=1)
        return np.where(kept, -1, chosen)  # a stored mixture of enabled experts still stands


def routing_context(encoders: list[str], experts: list[dict], candidates: list[str], own_expert: dict[str, str],
                    base_emb: np.ndarray, datasets, roles, label_scores: np.ndarray, params: dict) -> RoutingContext:
    """The one way a RoutingContext is made (the build, the what-if, the synthetic benchmark): from the
    manifest's expert records, candidate and own-expert names, and per-query arrays of every query in row order
    (base embeddings, dataset, role, and the label measure of every encoder); pilot and evaluated rows are taken
    by role."""
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
        params=dict(params))


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

    def __init__(self, name: str, inner: Router, overrides: dict):
        allowed = [p.name for p in (*COMMON_PARAMS, *inner.params)]
        unknown = [k for k in overrides if k not in allowed]
        if unknown:
            raise ValueError(f"variant {name!r}: {unknown[0]!r} cannot be overridden for router {inner.name!r}; "
                             f"use {', '.join(allowed)}")
        self.name, self.inner, self.overrides = name, inner, dict(overrides)
        self.family, self.uses_oracle = inner.family, inner.uses_oracle
        settings = ", ".join(f"{k} = {v}" for k, v in overrides.items())
        self.description = f"{inner.name} with {settings}"

    def _context(self, ctx: RoutingContext) -> RoutingContext:
        ctx = ctx.with_params(self.overrides)
        if "base_as_candidate" in self.overrides:
            with_base = [0] + [c for c in ctx.candidates if c != 0]
            without = [c for c in ctx.candidates if c != 0]
            ctx.candidates = with_base if self.overrides["base_as_candidate"] else without
        return ctx

    def available(self, ctx: RoutingContext) -> bool:
        return self.inner.available(self._context(ctx))

    def columns(self, ctx: RoutingContext) -> list[int]:
        return self.inner.columns(self._context(ctx))

    def decide(self, ctx: RoutingContext, emb: np.ndarray) -> Decision:
        return self.inner.decide(self._context(ctx), emb)

    def what_if(self, ctx: RoutingContext, emb: np.ndarray, stored: Decision, off: list[int]):
        return self.inner.what_if(self._context(ctx), emb, stored, off)
