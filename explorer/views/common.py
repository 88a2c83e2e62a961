"""What several pages share: strategy groups, the default strategy, score formatting, slices and filters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cohort import COHORT_FIELD
from ..names import SystemName
from ..scores import points, signed, x100  # noqa: F401  (the pages format scores with these)
from ..workspace import Workspace


def strategy_families(ws: Workspace) -> dict[str, str]:
    return {s["name"]: s.get("family", "") for s in ws.manifest["strategies"]}


def oracle_strategies(ws: Workspace) -> list[str]:
    return [s["name"] for s in ws.manifest["strategies"] if s.get("uses_oracle")]


def real_strategies(ws: Workspace) -> list[str]:
    """Strategies that do not read the evaluated queries' own judgements."""
    return [s["name"] for s in ws.manifest["strategies"] if not s.get("uses_oracle")]


def default_strategy(ws: Workspace) -> str:
    for name in ("pilot-mean", "pilot-nearest", "prototype"):
        if name in ws.strategies:
            return name
    return real_strategies(ws)[0] if real_strategies(ws) else ws.strategies[0]


def instance_oracle(ws: Workspace) -> str | None:
    if "instance-oracle" in ws.strategies:
        return "instance-oracle"
    oracles = oracle_strategies(ws)
    return oracles[0] if oracles else None


MIXTURE = "mixture"


DASH = "–"


def strategy_order(ws: Workspace) -> list[str]:
    """Strategies as the inspector lists them: routers first (manifest order), then the oracles, then the fixed
    experts (base, multi-task, fixed:<expert>)."""
    fam = strategy_families(ws)
    oracles = set(oracle_strategies(ws))
    fixed = [s for s in ws.strategies if fam.get(s) == "fixed" and s not in oracles]
    routers = [s for s in ws.strategies if s not in oracles and s not in fixed]
    return routers + [s for s in ws.strategies if s in oracles] + fixed


def margin_text(value) -> str:
    """A routing margin as shown in tables: three decimals, '–' when the strategy has none (fixed experts)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return DASH
    return f"{float(value):.3f}"


def slice_options(ws: Workspace) -> dict[str, pd.DataFrame]:
    """Every metadata field a slice can be taken by (`kind`, then the workspace's `meta:` fields) -> its values on
    the evaluated queries with their counts (analysis.metadata_values)."""
    from ..analysis import metadata_values

    return {f: metadata_values(ws, f) for f in ws.metadata_fields}


def slice_label(slice_by: tuple[str, str] | None) -> str:
    """A slice in words for the page (plain text: escape it before drawing)."""
    if not slice_by:
        return "all test queries"
    field, value = slice_by
    if field == COHORT_FIELD:
        return "the queries of a cohort"
    return f"{field} = {value}" if value != "" else f"no {field}"


def metadata_columns(ws: Workspace) -> dict[str, str]:
    """Column name in the error table -> metadata field: `kind`, then `meta:<field>` for every other field."""
    return {("kind" if f == "kind" else f"meta:{f}"): f for f in ws.metadata_fields}


def metadata_filter(ws: Workspace, chosen: dict[str, list[str]] | tuple) -> set[int]:
    """Rows of the queries whose metadata matches every field's chosen values (Workspace.metadata, as strings;
    '' = no value); a field with nothing chosen keeps every query. `chosen`: field -> values, or (field, values)
    pairs."""
    items = chosen.items() if isinstance(chosen, dict) else chosen
    keep = np.ones(len(ws.queries), dtype=bool)
    for field, values in items:
        if values and field in ws.metadata_fields:
            keep &= ws.metadata(field).isin([str(v) for v in values]).to_numpy()
    return set(ws.queries.loc[keep, "row"].astype(int))


def fixed_strategy(ws: Workspace, expert: str) -> str | None:
    for name in (str(SystemName.fixed(expert)), expert):
        if name in ws.strategies:
            return name
    return None
