"""Routing strategies: one module per family, all registered in `ROUTERS` (see base.py)."""

from . import classifiers, dataset_router, ddr, oracle, pilot_routers, prototype  # noqa: F401  (registration)
from .base import (COMMON_PARAMS, ROUTERS, Decision, Router, RoutingContext, Variant, argmax_decision, register,
                   routing_context, routing_params)
from .fixed import ExternalRun, Fixed, external_strategies, fixed_strategies


FAMILY_ORDER = ["baseline", "RouterRetriever", "DAR", "DDR", "oracle"]  # display order: baselines, routers, upper bounds


def all_strategies(encoders: list[str], multitask: str | None, only: list[str] | None = None,
                   variants: list[dict] | None = None, external: dict[str, list[str]] | None = None) -> list[Router]:
    """Every registered router, the configured variants, the fixed choices and the runs read from files
    (`external`: name -> its datasets; always kept), in display order; `only` filters the others by name. A variant
    is {"name": ..., "router": <registered name>, <parameter>: <value>, ...}."""
    registered: list[Router] = [cls() for cls in ROUTERS.values()]
    for v in variants or []:
        if v.get("router") not in ROUTERS:
            raise ValueError(f"variant {v.get('name')!r}: router {v.get('router')!r} is not registered; "
                             f"known: {', '.join(ROUTERS)}")
        overrides = {k: val for k, val in v.items() if k not in ("name", "router")}
        registered.append(Variant(v["name"], ROUTERS[v["router"]](), overrides))
    registered.sort(key=lambda r: FAMILY_ORDER.index(r.family) if r.family in FAMILY_ORDER else len(FAMILY_ORDER))
    runs = external_strategies(external)
    routers: list[Router] = [*fixed_strategies(encoders, multitask), *registered]
    if only:
        unknown = [n for n in only if n not in {r.name for r in [*routers, *runs]}]
        if unknown:
            names = ", ".join(r.name for r in routers)
            raise ValueError(f"unknown strategy {unknown[0]!r}; known: {names}")
        routers = [r for r in routers if r.name in only]
    fixed = sum(isinstance(r, Fixed) for r in routers)
    return [*routers[:fixed], *runs, *routers[fixed:]]  # runs from files beside the fixed systems


__all__ = ["COMMON_PARAMS", "ROUTERS", "routing_params", "routing_context", "Decision", "Router", "RoutingContext",
           "Variant", "argmax_decision", "register", "Fixed", "ExternalRun", "fixed_strategies", "external_strategies",
           "all_strategies"]
