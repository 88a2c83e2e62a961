"""The app's pages, registered once: key, title, icon, script, the URL parameters it reads, and its data.

A page's `data(ws, params)` returns what the page shows, computed by `explorer.views` from the workspace and the
page's URL parameters (the same names the page syncs its widgets to), as plain data. `explorer view PAGE --json`
prints it, and tests assert on it rather than on widgets. app.py builds its navigation from this registry, and a
new page is one script plus one `register_page` call. No Streamlit and no model here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from . import views
from .cohort import COHORT_FIELD, CohortError, clean_name, cohort_rows
from .gap import GAP_PARTS
from .analysis import significance_table
from .reviewer_stats import cell_statistics
from .scores import points
from .workspace import Workspace


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    icon: str  # a Streamlit material icon
    script: str  # the page's Streamlit script, relative to the repository root
    data: Callable[[Workspace, Mapping[str, str]], dict]
    params: tuple[str, ...] = ()  # the URL parameters the page reads (and `explorer view --param` accepts)
    default: bool = False  # the page the app opens on
    metadata_filters: bool = False  # also reads `kind` and `meta_<field>` (query metadata filters)

    @property
    def url_path(self) -> str:
        return self.key


PAGES: dict[str, Page] = {}


def register_page(page: Page) -> Page:
    """Add a page (names are unique); its order of registration is its order in the navigation."""
    if page.key in PAGES and PAGES[page.key] != page:
        raise ValueError(f"a page with key {page.key!r} is already registered")
    PAGES[page.key] = page
    return page


def page_data(key: str, ws: Workspace, params: Mapping[str, str] | None = None) -> dict:
    """The data page `key` shows for `params` (its URL parameters), as JSON-able values."""
    if key not in PAGES:
        raise KeyError(f"no page {key!r}; pages: {', '.join(PAGES)}")
    page = PAGES[key]
    unknown = [k for k in (params or {}) if k not in page.params
               and not (page.metadata_filters and (k == "kind" or k.startswith("meta_")))]
    if unknown:
        raise KeyError(f"page {key!r} reads no parameter {unknown[0]!r}; it reads: {', '.join(page.params) or 'none'}")
    return jsonable({"page": key, "title": page.title, **page.data(ws, dict(params or {}))})


def jsonable(value: Any) -> Any:
    """Frames as lists of records, NaN as None, numpy scalars as Python numbers, tuple keys joined by '|'."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return [jsonable(r) for r in frame.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {("|".join(map(str, k)) if isinstance(k, tuple) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- each page's data ------------------------------------------------------------------------------------------
def _measure(ws: Workspace, p: Mapping[str, str]) -> str:
    asked = p.get("measure")
    if asked is not None and asked not in ws.measures:
        raise KeyError(f"measure {asked!r} is not one of this workspace's: {', '.join(ws.measures)}")
    return ws.measure(asked)


def _strategy(ws: Workspace, p: Mapping[str, str], key: str = "strategy") -> str:
    asked = p.get(key)
    if asked is not None:
        ws.strategy_info(asked)  # a clear error naming the strategies
        return asked
    return views.default_strategy(ws)


def _slice(p: Mapping[str, str]) -> tuple[str, str] | None:
    """The Overview's slice: a cohort when the link carries one, else `slice` as field=value."""
    if p.get("cohort"):
        return (COHORT_FIELD, p["cohort"])
    field_, _, value = p.get("slice", "").partition("=")
    return (field_, value) if field_ else None


def _cohort(ws: Workspace, p: Mapping[str, str]) -> tuple[int, ...] | None:
    """The rows of the cohort a link carries (`cohort`), or None; a clear KeyError for one that cannot be read."""
    if not p.get("cohort"):
        return None
    try:
        return tuple(int(r) for r in cohort_rows(ws, p["cohort"]))
    except CohortError as err:
        raise KeyError(f"cohort: {err}") from err


def overview_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    measure = _measure(ws, p)
    _cohort(ws, p)  # a clear error for a cohort that cannot be read
    reference = p.get("reference") or ws.manifest.get("reference", "base")
    sig = significance_table(ws, measure, reference, slice_by=_slice(p))  # once, for the marks and the statistics
    view = views.overview_table(ws, measure, reference, p.get("sig", "true") != "false", _slice(p), sig=sig)
    stats = cell_statistics(ws, measure, reference, slice_by=_slice(p), sig=sig)
    for c in ("delta", "low", "high"):
        stats[c] = points(stats[c], None)
    out = {"measure": measure, "reference": view["reference"],
           "table": points(view["table"]), "best": view["best"], "queries": view["queries"],
           "marks": view["marks"], "oracle_gap": points(view["gap"]),
           "win_tie_loss": views.win_tie_loss_table(ws, measure, p.get("reference"), _slice(p)),
           "statistics": stats, "saturated": view["saturated"],
           "saturation_note": views.saturation_note(view, measure)}
    vs = _strategy(ws, p, "vs")  # the per-query difference of one strategy against the reference (x100)
    wf = views.difference_waterfall(ws, view["reference"], vs, measure, _cohort(ws, p))
    out["waterfall"] = {**wf, "bars": wf["bars"].assign(delta=points(wf["bars"]["delta"], None))}
    return out


def map_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    method = p.get("layout") or views.layout_methods(ws)[0]
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    points = views.map_points(ws, method, strategy, measure)
    cohort = _cohort(ws, p)
    focus = [int(r) for r in p.get("focus", "").split(",") if r.strip().lstrip("-").isdigit()]
    arrows = views.expert_arrows(ws, focus or list(cohort or ())[:views.MAX_ARROW_QUERIES], method, measure)
    return {"layout": method, "strategy": strategy, "measure": measure, **points,
            "extent": views.map_extent(ws, method), "arrows": arrows, "found": views.search_queries(ws, p.get("find", "")) if p.get("find") else [],
            "cohort": {"name": clean_name(p.get("cohort_name")), "rows": list(cohort)} if cohort else None}


def decisions_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    view = views.decisions_view(ws, strategy, p.get("skip_ties", "false") == "true", measure, _cohort(ws, p))
    return {"strategy": strategy, "measure": measure,
            **{k: v for k, v in view.items() if k != "queries"}}


def inspector_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    row, notice = views.inspect_row(ws, p.get("row"))
    if row is None:  # as the page opens: the showcase query of the dataset and strategy picked
        dataset = p.get("dataset") or ws.datasets[0]
        ws.dataset_info(dataset)  # a clear error naming the datasets
        row = views.showcase_row(ws, dataset, strategy)
    return {"strategy": strategy, "measure": measure, "query": views.query_info(ws, row), "notice": notice,
            "decisions": views.decision_table(ws, row, measure),
            "routed": views.query_strategy(ws, strategy, row, measure)}


def errors_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    datasets = [d for d in p.get("datasets", "").split(",") if d] or None
    table = views.error_view(ws, strategy, measure, datasets, wrong_only=p.get("wrong") == "true",
                             skip_all_ties=p.get("skip_ties") == "true", hurt_only=p.get("hurt") == "true",
                             rows=_cohort(ws, p), gap_part=_gap_part(p))
    return {"strategy": strategy, "measure": measure, "queries": table}


def _gap_part(p: Mapping[str, str]) -> str | None:
    part = p.get("gap") or None
    if part is not None and part not in GAP_PARTS:
        raise KeyError(f"gap: {part[:40]!r} is not one of: {', '.join(GAP_PARTS)}")
    return part


def gap_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    """Every strategy's share of the reference-to-oracle gap closed (fractions, bootstrap interval), and where one
    strategy's gap goes: per dataset and per map region."""
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    methods = views.layout_methods(ws)
    method = p.get("layout") or (methods[0] if methods else None)
    if method is not None and method not in methods:
        raise KeyError(f"layout {method!r} is not one of this workspace's: {', '.join(methods) or 'none'}")
    return views.gap_view(ws, strategy, measure, p.get("reference"), method, _cohort(ws, p))


def complementarity_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    """One dataset: the relevant documents each encoder finds in its top 10 that another does not, those no
    encoder finds, and each expert's documents gained and lost against base."""
    dataset = p.get("dataset") or ws.datasets[0]
    if dataset not in ws.datasets:
        raise KeyError(f"dataset {dataset[:40]!r} is not one of this workspace's: {', '.join(ws.datasets)}")
    return views.complementarity_view(ws, dataset, _cohort(ws, p))


def experts_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    """The expert cards, and the what-if table with the experts named in `off` (comma-separated) switched off."""
    from .analysis import WhatIf

    measure = _measure(ws, p)
    names = [e["name"] for e in ws.experts]
    off = [e for e in p.get("off", "").split(",") if e]
    unknown = [e for e in off if e not in names]
    if unknown:
        raise KeyError(f"off: {unknown[0]!r} is not an expert of this workspace: {', '.join(names)}")
    whatif = views.whatif_compare(WhatIf(ws), [n for n in names if n not in off], measure)
    return {"measure": measure, "off": off,
            "experts": [{k: v for k, v in c.items() if k != "loss_curve"} for c in views.expert_cards(ws, measure)],
            "whatif": {k: points(whatif[k]) for k in ("now", "all_on", "diff")}}


def playground_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    """The pilot library a typed query is routed against (routing a typed query itself needs the model: the
    Playground page, or explorer.live)."""
    return {"strategies": views.real_strategies(ws), "pilots": ws.pilots,
            "out_of_domain_percentile": views.OOD_PERCENTILE}


COHORT_PARAMS = ("cohort", "cohort_name")  # a named set of test queries, the filter every page with these takes

for _page in (
    Page("overview", "Overview", ":material/table_chart:", "explorer/ui/overview.py", overview_data,
         ("measure", "reference", "sig", "slice", "cols", "strategy", "vs", *COHORT_PARAMS), default=True),
    Page("map", "Routing map", ":material/scatter_plot:", "explorer/ui/routing_map.py", map_data,
         ("layout", "strategy", "measure", "colour", "datasets", "pilots", "arrows", "focus", "find",
          *COHORT_PARAMS),
         metadata_filters=True),
    Page("decisions", "Routing decisions", ":material/alt_route:", "explorer/ui/decisions.py", decisions_data,
         ("strategy", "measure", "skip_ties", *COHORT_PARAMS)),
    Page("inspector", "Query inspector", ":material/search:", "explorer/ui/inspector.py", inspector_data,
         ("row", "dataset", "strategy", "measure", "cols", "view", "by", "a", "b", "doc")),
    Page("errors", "Error analysis", ":material/bug_report:", "explorer/ui/errors.py", errors_data,
         ("strategy", "measure", "datasets", "wrong", "hurt", "skip_ties", "use_margin", "margin", "sort", "gap",
          *COHORT_PARAMS), metadata_filters=True),
    Page("gap", "Oracle gap", ":material/stacked_bar_chart:", "explorer/ui/gap.py", gap_data,
         ("strategy", "measure", "reference", "layout", *COHORT_PARAMS)),
    Page("complementarity", "Complementarity", ":material/join_inner:", "explorer/ui/complementarity.py",
         complementarity_data, ("dataset", *COHORT_PARAMS)),
    Page("experts", "Experts", ":material/school:", "explorer/ui/experts.py", experts_data,
         ("measure", "off", "routing")),
    Page("playground", "Playground", ":material/keyboard:", "explorer/ui/playground.py", playground_data,
         ("q", "strategy", "dataset", "other", "layout")),
):
    register_page(_page)
