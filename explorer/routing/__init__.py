"""Routing strategies: one module per family, all registered in `ROUTERS` (see base.py). Every module of this
package is imported here, so a router added as one module (with `@register`) is picked up without editing this
file; `base` and `fixed` hold the contract and the fixed choices."""

import importlib
import pkgutil

from .base import (COMMON_PARAMS, ROUTERS, Decision, Router, RoutingContext, Variant, argmax_decision, register,
                   routing_context, routing_params)
from .fixed import Fixed, fixed_strategies

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # registration, in a stable order
    importlib.import_module(f"{__name__}.{_module}")


FAMILY_ORDER = ["baseline", "RouterRetriever", "DAR", "DDR", "oracle"]  # display order: baselines, routers, upper bounds


def all_strategies(encoders: list[str], multitask: str | None, only: list[str] | None = None,
                   variants: list[dict] | None = None) -> list[Router]:
    """Every registered router, the configured variants and the fixed choices, in display order; `only` filters
    by name. A variant is {"name": ..., "router": <registered name>, <parameter>: <value>, ...}."""
    registered: list[Router] = [cls() for cls in ROUTERS.values()]
    for v in variants or []:
        if v.get("router") not in ROUTERS:
            raise ValueError(f"variant {v.get('name')!r}: router {v.get('router')!r} is not registered; "
                             f"known: {', '.join(ROUTERS)}")
        overrides = {k: val for k, val in v.items() if k not in ("name", "router")}
        registered.append(Variant(v["name"], ROUTERS[v["router"]](), overrides))
    registered.sort(key=lambda r: FAMILY_ORDER.index(r.family) if r.family in FAMILY_ORDER else len(FAMILY_ORDER))
    routers: list[Router] = [*fixed_strategies(encoders, multitask), *registered]
    if only:
        unknown = [n for n in only if n not in {r.name for r in routers}]
        if unknown:
            names = ", ".join(r.name for r in routers)
            raise ValueError(f"unknown strategy {unknown[0]!r}; known: {names}")
        routers = [r for r in routers if r.name in only]
    return routers


__all__ = ["COMMON_PARAMS", "ROUTERS", "routing_params", "routing_context", "Decision", "Router", "RoutingContext",
           "Variant", "argmax_decision", "register", "Fixed", "fixed_strategies", "all_strategies"]
