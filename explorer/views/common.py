"""What several pages share: strategy groups, the default strategy, score formatting, slices and filters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cohort import COHORT_FIELD
from ..names import SystemName
from ..scores import points, signed, x100  # noqa: F401  (the pages format scores with these)
from ..workspace import Workspace
from .base import UrlParam


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
    systems (base, multi-task, fixed:<expert>, runs read from files)."""
    from ..routing import ExternalRun, Fixed

    fam = strategy_families(ws)
    oracles = set(oracle_strategies(ws))
    fixed = [s for s in ws.strategies if fam.get(s) in (Fixed.family, ExternalRun.family) and s not in oracles]
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


# --- the parameters several pages read (declared once; the researcher's context is made of the shared ones) -----
def _strategies(ws: Workspace, _values: dict) -> list[str]:
    return ws.strategies


STRATEGY = UrlParam("strategy", choices=_strategies, default=lambda ws, v: default_strategy(ws), shared=True,
                    doc="the strategy whose routing the page shows")
MEASURE = UrlParam("measure", choices=lambda ws, v: ws.measures, default=lambda ws, v: ws.label_measure, shared=True,
                   doc="the measure of every score on the page (default: the build's label measure)")
REFERENCE = UrlParam("reference", choices=_strategies, shared=True, doc="the strategy significance compares with",
                     default=lambda ws, v: ws.manifest.get("reference", "base") if ws.manifest.get(
                         "reference", "base") in ws.strategies else ws.strategies[0])
DATASETS = UrlParam("datasets", "multi", lambda ws, v: ws.datasets, [], "only these datasets (none: all)")
SKIP_TIES = UrlParam("skip_ties", "bool", default=False,
                     doc="leave out the queries where every expert of the strategy's choice set ties")
COMPARE = UrlParam("compare", "text", default="", max_length=4096, shared=True,
                   doc="a second workspace's folder, built on the same datasets and evaluated queries: its systems "
                       "and strategies appear beside this one's as B:<name>, paired query by query")


def _check_cohort(ws: Workspace, text: str) -> None:
    from ..cohort import CohortError, cohort_rows
    from .base import ParamError

    try:
        cohort_rows(ws, text)
    except CohortError as err:
        raise ParamError(f"cannot be read on this workspace: {err}") from None


COHORT = UrlParam("cohort", "text", default="", shared=True, check=_check_cohort,
                  max_length=4000, doc="a cohort: test queries saved from a selection on the Routing map (its rows, "
                  "as 'r.<ranges>' or 'b.<bitset>', explorer.cohort); the pages that read it show only those queries")
COHORT_NAME = UrlParam("cohort_name", "text", default="", shared=True, max_length=200,
                       doc="the cohort's name, as plain text (at most 60 characters are shown)")


def cohort_of(ws: Workspace, v: dict) -> tuple[int, ...] | None:
    """The rows of the cohort the parameters name (None: no cohort)."""
    from ..cohort import cohort_rows

    return tuple(int(r) for r in cohort_rows(ws, v["cohort"])) if v.get("cohort") else None


def cohort_info(ws: Workspace, v: dict) -> dict | None:
    """The cohort as a page shows it: its text, its name (plain text) and its rows; None without one."""
    from ..cohort import clean_name

    rows = cohort_of(ws, v)
    return None if rows is None else {"text": v["cohort"], "name": clean_name(v.get("cohort_name")), "rows": rows}
