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
    frames = page_frames(key, ws, params)  # a page or parameter it lacks: KeyError
    return jsonable({"page": key, "title": PAGES[key].title, **frames})


def page_frames(key: str, ws: Workspace, params: Mapping[str, str] | None = None) -> dict:
    """The data page `key` shows for `params`, as its `data` returns it (DataFrames as frames): what page_data
    makes JSON-able and the notebook API (explorer.open) returns. KeyError for a page or parameter it lacks."""
    if key not in PAGES:
        raise KeyError(f"no page {key!r}; pages: {', '.join(PAGES)}")
    page = PAGES[key]
    unknown = [k for k in (params or {}) if k not in page.params
               and not (page.metadata_filters and (k == "kind" or k.startswith("meta_")))]
    if unknown:
        raise KeyError(f"page {key!r} reads no parameter {unknown[0]!r}; it reads: {', '.join(page.params) or 'none'}")
    return page.data(ws, dict(params or {}))


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
    field_, _, value = p.get("slice", "").partition("=")
    return (field_, value) if field_ else None


def _compared(ws: Workspace, p: Mapping[str, str]) -> Workspace:
    """With `compare` (a second workspace's folder): both, the second's systems as B:<name> (explorer.compare)."""
    from .compare import compared

    return compared(ws, p.get("compare") or None)


def overview_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    ws = _compared(ws, p)
    measure = _measure(ws, p)
    view = views.overview_table(ws, measure, p.get("reference"), p.get("sig", "true") != "false", _slice(p))
    return {"measure": measure, "reference": view["reference"],
            "table": points(view["table"]), "best": view["best"], "queries": view["queries"],
            "marks": view["marks"], "oracle_gap": points(view["gap"]),
            "win_tie_loss": views.win_tie_loss_table(ws, measure, p.get("reference"), _slice(p))}


def map_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    method = p.get("layout") or views.layout_methods(ws)[0]
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    points = views.map_points(ws, method, strategy, measure)
    return {"layout": method, "strategy": strategy, "measure": measure, **points}


def decisions_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    strategy, measure = _strategy(ws, p), _measure(ws, p)
    view = views.decisions_view(ws, strategy, p.get("skip_ties", "false") == "true", measure)
    return {"strategy": strategy, "measure": measure,
            **{k: v for k, v in view.items() if k != "queries"}}


def inspector_data(ws: Workspace, p: Mapping[str, str]) -> dict:
    ws = _compared(ws, p)
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
                             skip_all_ties=p.get("skip_ties") == "true", hurt_only=p.get("hurt") == "true")
    return {"strategy": strategy, "measure": measure, "queries": table}


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


for _page in (
    Page("overview", "Overview", ":material/table_chart:", "explorer/ui/overview.py", overview_data,
         ("measure", "reference", "sig", "slice", "cols", "strategy", "compare"), default=True),
    Page("map", "Routing map", ":material/scatter_plot:", "explorer/ui/routing_map.py", map_data,
         ("layout", "strategy", "measure", "colour", "datasets", "pilots"), metadata_filters=True),
    Page("decisions", "Routing decisions", ":material/alt_route:", "explorer/ui/decisions.py", decisions_data,
         ("strategy", "measure", "skip_ties")),
    Page("inspector", "Query inspector", ":material/search:", "explorer/ui/inspector.py", inspector_data,
         ("row", "dataset", "strategy", "measure", "cols", "view", "by", "a", "b", "doc", "compare")),
    Page("errors", "Error analysis", ":material/bug_report:", "explorer/ui/errors.py", errors_data,
         ("strategy", "measure", "datasets", "wrong", "hurt", "skip_ties", "use_margin", "margin", "sort"),
         metadata_filters=True),
    Page("experts", "Experts", ":material/school:", "explorer/ui/experts.py", experts_data,
         ("measure", "off", "routing")),
    Page("playground", "Playground", ":material/keyboard:", "explorer/ui/playground.py", playground_data,
         ("q", "strategy", "dataset", "other", "layout")),
):
    register_page(_page)
