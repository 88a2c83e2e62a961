"""What a page is: a key, a title, its typed URL parameters and one `data(ws, params)` that computes everything it
shows. The page (explorer/ui/), `explorer view PAGE`, the notebook API and the tests all call that one function
with parameters resolved here, so they can never disagree about what a URL means.

A page's parameters are declared once (`UrlParam`: kind, valid values read from the workspace, default, doc). The
same `resolve` turns a URL's strings (or a CLI's `--param KEY=VALUE`) into typed values: the page shows one notice
per bad value and falls back to the default; the CLI refuses it (strict). No Streamlit and no model here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..workspace import Workspace

KINDS = ("choice", "multi", "bool", "int", "float", "text")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
SHOWN_LIMIT = 60  # characters of a bad value repeated in a message


class ParamError(ValueError):
    """A parameter value the page cannot take; the message names the parameter, the value and the fix."""


@dataclass(frozen=True)
class UrlParam:
    """One URL parameter of a page. `choices(ws, values)` lists the valid values given the values resolved before
    it (declaration order); `default` is a value or `(ws, values) -> value`. `shared`: part of the researcher's
    context that every page reading it carries across pages (strategy, measure, the inspected query, ...).
    `label(ws, value)` says a value in words (the page's selectors show it)."""

    name: str
    kind: str = "choice"
    choices: Callable[[Workspace, dict], Sequence] | None = None
    default: Any = None
    doc: str = ""
    min: float | None = None
    max: float | None = None
    shared: bool = False
    cast: Callable[[str], Any] = str
    max_length: int = 2000
    in_url: bool = False  # kept in the URL even at its default (it names the thing shown: the inspected query)
    max_items: int | None = None  # a multi-valued parameter: at most this many values
    explain: Callable[[Workspace, Any], str | None] | None = None  # why a refused value cannot be taken, in words
    describe: Callable[[Workspace, Any], str] | None = None  # a value in words (the notices name it so)
    check: Callable[[Workspace, Any], None] | None = None  # a text value's own rule: raises ParamError saying why not

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"UrlParam {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def default_value(self, ws: Workspace, values: dict) -> Any:
        return self.default(ws, values) if callable(self.default) else self.default

    def options(self, ws: Workspace, values: dict) -> list:
        return list(self.choices(ws, values)) if self.choices else []

    def parse(self, raw: Any, ws: Workspace, values: dict) -> Any:
        """`raw` (a URL string, a list of them, or an already typed value) as this parameter's value; ParamError
        saying why not."""
        if self.kind == "multi":
            return self._parse_multi(raw, ws, values)
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        if isinstance(raw, str) and len(raw) > self.max_length:
            raise ParamError(f"is {len(raw):,} characters long (at most {self.max_length:,})")
        if self.kind == "bool":
            return _boolean(raw)
        if self.kind in ("int", "float"):
            return self._number(raw)
        value = raw if not isinstance(raw, str) or self.kind != "choice" else self._cast(raw)
        if self.kind == "choice":
            options = self.options(ws, values)
            if value not in options:
                raise ParamError(f"is not one of the {len(options)} valid values")
        if self.check is not None and value not in ("", None):
            self.check(ws, value)
        return value

    def _parse_multi(self, raw: Any, ws: Workspace, values: dict) -> list:
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        flat = [p for item in items for p in (item.split(",") if isinstance(item, str) else [item])]
        flat = [self._cast(p) if isinstance(p, str) else p for p in flat if not (isinstance(p, str) and not p.strip())]
        options = self.options(ws, values) if self.choices else None
        bad = [p for p in flat if options is not None and p not in options]
        if bad:
            raise ParamError(f"names {_shown(bad[0])}, which is not one of the {len(options)} valid values")
        flat = list(dict.fromkeys(flat))
        if self.max_items is not None and len(flat) > self.max_items:
            raise ParamError(f"names {len(flat)} values (at most {self.max_items})")
        return flat

    def _cast(self, text: str) -> Any:
        try:
            return self.cast(text.strip())
        except (TypeError, ValueError, OverflowError):
            raise ParamError("is not a value of this kind") from None

    def _number(self, raw: Any) -> float | int:
        try:
            value = (int if self.kind == "int" else float)(raw)
        except (TypeError, ValueError, OverflowError):
            raise ParamError(f"is not {'an integer' if self.kind == 'int' else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError("is not a finite number")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ParamError(f"is outside {_range(self.min, self.max)}")
        return value

    def text(self, value: Any) -> str | list[str] | None:
        """The value as a URL writes it (None: nothing to write)."""
        if value is None:
            return None
        if self.kind == "multi":
            return [str(v) for v in value] or None
        if self.kind == "bool":
            return "1" if value else "0"
        return str(value)


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ParamError("is not true or false (write 1 or 0)")


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f"≥ {lo}" if lo is not None else f"≤ {hi}"


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= SHOWN_LIMIT else text[:SHOWN_LIMIT - 1] + "…")


def _listing(options: Sequence, limit: int = 12) -> str:
    shown = ", ".join(str(o) for o in list(options)[:limit])
    return shown + (f", … {len(options) - limit} more" if len(options) > limit else "") if options else "none"


@dataclass
class Resolved:
    """A page's parameters resolved: typed `values` (every declared parameter), `notices` (one line per value
    that could not be taken, said in words), `bad` (the names of those parameters), and `ws`: the workspace the
    page reads (with a second one beside it when the page compares two, explorer.compare)."""

    values: dict
    notices: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    ws: Workspace | None = None


@dataclass(frozen=True)
class Page:
    """A page: key (its URL path), title, icon (a Streamlit material icon), the Streamlit script that draws it, its
    URL parameters and `data(ws, values)`, the one computation of what it shows. `metadata_filters`: it also reads
    one multi-valued filter per query metadata field (`kind`, `meta_<field>`)."""

    key: str
    title: str
    icon: str
    script: str
    data: Callable[[Workspace, dict], dict]
    params: tuple[UrlParam, ...] = ()
    default: bool = False
    metadata_filters: bool = False
    caption: str = ""
    # on entering the page: (ws, raw values, the URL's values) -> raw values (e.g. a URL's row picks its dataset)
    entering: Callable[[Workspace, dict, dict], dict] | None = None
    order: int = 100  # place in the navigation (then the key)
    compares: bool = False  # reads `compare`: a second workspace's folder, its systems beside this one's as B:<name>

    @property
    def url_path(self) -> str:
        return self.key

    def all_params(self, ws: Workspace) -> tuple[UrlParam, ...]:
        """The declared parameters, then (a page with metadata filters) one per metadata field of `ws`."""
        if not self.metadata_filters:
            return self.params
        return (*self.params, *(metadata_param(ws, f) for f in ws.metadata_fields))

    def param(self, ws: Workspace, name: str) -> UrlParam:
        return next(p for p in self.all_params(ws) if p.name == name)

    def resolve(self, ws: Workspace, raw: Mapping[str, Any], strict: bool = False) -> Resolved:
        """Typed values of every parameter from `raw` (URL strings, lists, or typed values): a missing one takes
        its default; a bad one is a notice and the default (strict: ParamError naming it and the fix). A key the
        page does not read is refused when strict (the CLI) and left out otherwise (a page's URL)."""
        params = self.all_params(ws)
        names = {p.name for p in params}
        unknown = [k for k in raw if k not in names]
        if strict and unknown:
            raise ParamError(f"page {self.key!r} reads no parameter {_shown(unknown[0])} (fix: use one of "
                             f"{', '.join(sorted(names)) or 'none'})")
        out = Resolved({}, ws=ws)
        if self.compares:
            ws = out.ws = self._compared(ws, raw.get("compare"), strict, out)
        for p in params:
            given = raw.get(p.name)
            if given is None or (isinstance(given, str) and given == "" and p.kind != "text"):
                out.values[p.name] = p.default_value(ws, out.values)
                continue
            try:
                out.values[p.name] = p.parse(given, ws, out.values)
            except ParamError as err:
                default = p.default_value(ws, out.values)
                if strict:
                    raise ParamError(f"--param {p.name}={_shown(_first(given))} {err} (fix: {fix(p, ws, out.values)}"
                                     f")") from None
                out.values[p.name] = default
                out.bad.append(p.name)
                out.notices.append(_notice(p, ws, given, err, default))
        return out

    @staticmethod
    def _compared(ws: Workspace, raw: Any, strict: bool, out: Resolved) -> Workspace:
        """`ws` with the workspace `raw` names beside it, or `ws` alone (said why when it cannot be compared)."""
        from ..compare import CompareError, compared
        from ..workspace import WorkspaceError

        path = _first(raw) if raw else None
        if not path or not str(path).strip():
            return ws
        try:
            return compared(ws, str(path).strip()[:4096])
        except (WorkspaceError, CompareError, OSError) as err:
            if strict:
                raise ParamError(f"--param compare: {err}") from None
            out.notices.append(f"Not compared with {_shown(path)}: {err}")
            return ws

    def url(self, ws: Workspace, values: Mapping[str, Any]) -> dict[str, str | list[str]]:
        """The URL parameters of `values`: every value that differs from its default (and those kept in the URL)."""
        out: dict[str, str | list[str]] = {}
        resolved: dict = {}
        for p in self.all_params(ws):
            value = values.get(p.name)
            default = p.default_value(ws, resolved)
            resolved[p.name] = value
            text = p.text(value)
            if text is not None and (p.in_url or value != default):
                out[p.name] = text
        return out


def _notice(p: UrlParam, ws: Workspace, given: Any, err: ParamError, default: Any) -> str:
    """A refused value in words: what was asked for, why it cannot be shown, and what is shown instead."""
    why = p.explain(ws, _first(given)) if p.explain else None
    asked = f"The link's {p.name}: {why}" if why else f"The link's {p.name} = {_shown(_first(given))} {err}"
    shown = (p.describe(ws, default) if p.describe else _shown(p.text(default))) if default is not None else "none"
    return f"{asked}; showing {shown} instead."


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value


def fix(p: UrlParam, ws: Workspace, values: dict) -> str:
    """How to give `p` a value it takes (the fix of a refused one)."""
    if p.kind == "bool":
        return f"write {p.name}=1 or {p.name}=0"
    if p.kind in ("int", "float"):
        return f"give a {'whole ' if p.kind == 'int' else ''}number, {_range(p.min, p.max)}"
    if p.choices:
        return f"use one of {_listing(p.options(ws, values))}"
    return f"give {p.name} as text of at most {p.max_length:,} characters"


def metadata_param(ws: Workspace, field_name: str) -> UrlParam:
    """The filter on one query metadata field: `kind`, or `meta_<field>` (field names keep the name rule, so they
    are safe in a URL); its values are those the field takes ("" for queries without it)."""
    name = "kind" if field_name == "kind" else f"meta_{field_name}"

    def values_of(ws: Workspace, _values: dict) -> list[str]:
        from ..analysis import metadata_values

        return [v or NO_VALUE for v in metadata_values(ws, field_name)["value"]]

    return UrlParam(name, "multi", values_of, [], f"keep the queries whose metadata {field_name} takes one of these")


NO_VALUE = "(no value)"  # a metadata value standing for "the query has no such field" ("" does not survive a URL)


def metadata_choice(values: dict, ws: Workspace) -> dict[str, list[str]]:
    """The metadata filters in `values` (a page with metadata filters) as field -> the values chosen ("" for the
    queries without the field); fields left at "any" are absent."""
    out = {}
    for f in ws.metadata_fields:
        chosen = values.get("kind" if f == "kind" else f"meta_{f}")
        if chosen:
            out[f] = ["" if c == NO_VALUE else c for c in chosen]
    return out


PAGES: dict[str, Page] = {}


def register_page(page: Page) -> Page:
    """Add a page (keys are unique); the registry stays in navigation order (`order`, then the key)."""
    if page.key in PAGES and PAGES[page.key] is not page:
        raise ValueError(f"a page with key {page.key!r} is already registered")
    PAGES[page.key] = page
    ordered = sorted(PAGES.values(), key=lambda p: (p.order, p.key))
    PAGES.clear()
    PAGES.update((p.key, p) for p in ordered)
    return page


def shared_names() -> set[str]:
    """The parameters some page declares `shared`: the researcher's context."""
    return {p.name for page in PAGES.values() for p in page.params if p.shared}


def page_data(key: str, ws: Workspace, params: Mapping[str, Any] | None = None, strict: bool = True) -> dict:
    """What page `key` shows for `params` (URL strings or typed values), as JSON-able values: its parameters
    resolved exactly as the page resolves them (strict: a bad one is a ParamError), then its `data`."""
    if key not in PAGES:
        raise KeyError(f"no page {key!r}; pages: {', '.join(PAGES)}")
    return jsonable({"page": key, "title": PAGES[key].title, **page_frames(key, ws, params, strict)})


def page_frames(key: str, ws: Workspace, params: Mapping[str, Any] | None = None, strict: bool = True) -> dict:
    """What page `key` shows for `params`, as its `data` returns it (tables as DataFrames), with the resolved
    `params`: what page_data makes JSON-able and the notebook API (explorer.open) returns."""
    if key not in PAGES:
        raise KeyError(f"no page {key!r}; pages: {', '.join(PAGES)}")
    page = PAGES[key]
    resolved = page.resolve(ws, dict(params or {}), strict=strict)
    return {"params": resolved.values, **page.data(resolved.ws, resolved.values)}


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
