"""Routing strategies: one module per family, all registered in `ROUTERS` (see base.py). Every module of this
package is imported here, so a router added as one module (with `@register`) is picked up without editing this
file; `base` and `fixed` hold the contract and the fixed choices."""

import importlib
import pkgutil

from .base import (COMMON_PARAMS, GROUPS, MIX_PARAMS, ROUTERS, VARIANT_MIX, Decision, Router, RoutingContext, Variant,
                   argmax_decision, register, routing_context, routing_params)
from .fixed import ExternalRun, Fixed, external_strategies, fixed_strategies
from .mixing import make_variant

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # registration, in a stable order
    importlib.import_module(f"{__name__}.{_module}")

# display order: baselines, routers, mixtures, post-retrieval, lexical, upper bounds
FAMILY_ORDER = ["baseline", "RouterRetriever", "DAR", "DDR", "fusion", "post-retrieval", "lexical", "oracle"]


def all_strategies(encoders: list[str], multitask: str | None, only: list[str] | None = None,
                   variants: list[dict] | None = None, chosen: dict[str, dict] | None = None,
                   external: dict[str, list[str]] | None = None) -> list[Router]:
    """Every registered router, the configured variants, the fixed choices and the runs read from files
    (`external`: name -> its datasets; always kept), in display order; `only` filters the others by name. A variant
    is {"name": ..., "router": <registered name>, <parameter>: <value>, ...}. `chosen`: per strategy, settings a
    build chose (the manifest's `settings`), reused instead of choosing them again."""
    registered: list[Router] = [cls() for cls in ROUTERS.values()]
    for router in registered:
        router.chosen = (chosen or {}).get(router.name)
    for v in variants or []:
        if v.get("router") not in ROUTERS:
            raise ValueError(f"variant {v.get('name')!r}: router {v.get('router')!r} is not registered; "
                             f"known: {', '.join(ROUTERS)}")
        overrides = {k: val for k, val in v.items() if k not in ("name", "router")}
        registered.append(make_variant(v["name"], ROUTERS[v["router"]](), overrides, (chosen or {}).get(v["name"])))
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


def chosen_settings(manifest: dict) -> dict[str, dict]:
    """Per strategy, the settings its build chose (manifest `strategies[].settings`)."""
    return {s["name"]: s["settings"] for s in manifest.get("strategies", []) if isinstance(s.get("settings"), dict)}


__all__ = ["COMMON_PARAMS", "GROUPS", "MIX_PARAMS", "VARIANT_MIX", "ROUTERS", "routing_params", "routing_context",
           "Decision", "Router", "RoutingContext", "Variant", "argmax_decision", "register", "Fixed", "ExternalRun",
           "fixed_strategies", "external_strategies", "all_strategies", "chosen_settings"]
