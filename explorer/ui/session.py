"""The researcher's context across pages, and a page's parameters between its widgets, its URL and its data.

One typed session object per browser session holds what the pages share (the strategy, the measure, the
reference, the inspected query, the A/B pair: every parameter declared `shared`) and, per page, the values it was
left with. A page run goes:

1. `params(PAGE)`: on entering a page, its remembered values, then the shared context, then the URL (a link, a
   switch from another page, the browser's Back) are resolved through the page's declaration
   (`Page.resolve`): one notice per value that cannot be taken. On a rerun of the same page the widgets lead.
2. `widget(...)`: each control is drawn from the declaration (its options, its value); a change the researcher
   makes on this page is what updates the shared context, so a page that cannot show the chosen strategy (the
   Playground has no oracles) says so and shows its own default without replacing the context.
3. `data(PAGE, values)`: the page's own `data`, through the cache: what `explorer view` prints for the same URL.
4. `publish(...)`: the URL is rewritten to the page's values (defaults left out), so a link reopens the view.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ..views.base import Page, Resolved
from . import safe

CONTEXT, REMEMBERED, SEEDED, CURRENT = "_ctx", "_page_values", "_seeded", "_page"


def _store(name: str) -> dict:
    if name not in st.session_state:
        st.session_state[name] = {}
    return st.session_state[name]


def widget_key(page: Page, name: str) -> str:
    return f"w_{page.key}_{name}"


def context() -> dict:
    """The shared context: parameter name -> the value last chosen on any page that reads it."""
    return _store(CONTEXT)


def params(page: Page, ws) -> Resolved:
    """The page's values for this run (see the module's docstring) and the notices to show."""
    entering = st.session_state.get(CURRENT) != page.key
    st.session_state[CURRENT] = page.key
    names = {p.name: p for p in page.all_params(ws)}
    remembered = _store(REMEMBERED).get(page.key, {})
    raw: dict[str, Any] = {k: v for k, v in remembered.items() if k in names}
    raw.update({k: v for k, v in context().items() if k in names and names[k].shared})
    url: dict = {}
    if entering:
        _context_from_url(names)
        url = {k: st.query_params.get_all(k) for k in st.query_params if k in names}
        url = {k: (v if names[k].kind == "multi" else v[-1]) for k, v in url.items() if v}
        raw.update(url)
        raw = page.entering(ws, raw, url) if page.entering else raw
    else:
        for name in names:
            key = widget_key(page, name)
            if key in st.session_state:
                raw[name] = st.session_state[key]
    resolved = page.resolve(ws, raw)
    if not entering:
        resolved.notices = []  # a value made invalid by another control on this page falls back quietly
    _remember(page, ws, resolved, entering, url)
    return resolved


def _context_from_url(names: dict) -> None:
    """A link names the researcher's context even where this page does not read a part of it (a link to the
    Overview with `row=` opens that query when the inspector is next visited); the page that reads it checks it."""
    from ..views.base import shared_names

    for k in shared_names():
        if k not in names and st.query_params.get(k):
            context()[k] = st.query_params.get_all(k)[-1]


def _remember(page: Page, ws, resolved: Resolved, entering: bool, url: dict) -> None:
    """Keep the page's values and seed each widget with its value. The shared context follows a value the
    researcher changed on this page, or one a link named; a context value this page cannot show stays as it is
    (the page shows its own default and says so)."""
    values = resolved.values
    _store(REMEMBERED)[page.key] = dict(values)
    seeded, ctx = _store(SEEDED), context()
    for p in page.all_params(ws):
        key, value = widget_key(page, p.name), values[p.name]
        current = st.session_state.get(key, _NONE)
        if entering or current is _NONE:
            if p.shared and p.name not in resolved.bad and (p.name in url or p.name not in ctx):
                ctx[p.name] = value
        elif current != seeded.get(key, _NONE) or current != value:
            if p.shared:
                ctx[p.name] = value  # changed here, by the researcher or by another control of this page
        else:
            continue
        st.session_state[key] = value
        seeded[key] = value


_NONE = object()


def remembered(page: Page) -> dict:
    """The values `page` was last shown with in this session (empty before it was opened)."""
    return dict(_store(REMEMBERED).get(page.key, {}))


def set_value(page: Page, name: str, value: Any) -> None:
    """Change a parameter from a callback (a button, a click on a chart, a row picked in a table): the page's next
    run takes it as if its control had been changed (a shared one updates the context)."""
    st.session_state[widget_key(page, name)] = value


def open_page(page: Page, ws, **values: Any) -> None:
    """Switch to `page` showing `values` (e.g. the inspector on one query), the rest of its values as remembered;
    the values go in the URL the page opens with, so the switch reads as a link would."""
    params = {k: page.param(ws, k).text(v) for k, v in values.items() if v is not None}
    st.switch_page(page.script, query_params={k: v for k, v in params.items() if v is not None})


def publish(page: Page, ws, values: dict) -> None:
    """Write the page's values to the URL (defaults left out) and drop parameters the page does not read."""
    wanted = page.url(ws, values)
    for k in list(st.query_params):
        if k not in wanted:
            del st.query_params[k]
    for k, v in wanted.items():
        if st.query_params.get_all(k) != (v if isinstance(v, list) else [v]):
            st.query_params[k] = v


def notices(resolved: Resolved) -> None:
    """One warning per URL value that could not be taken."""
    for line in resolved.notices:
        st.warning(safe.md(line))


@st.cache_data(show_spinner=False, max_entries=128)
def _data(key: str, ws_key: str, frozen: tuple, _page: Page, _ws):
    return _page.data(_ws, dict(_thaw(frozen)))


def _freeze(values: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


def _thaw(frozen: tuple):
    return [(k, list(v) if isinstance(v, tuple) else v) for k, v in frozen]


def data(page: Page, ws, values: dict) -> dict:
    """The page's data for `values`, cached by (page, workspace, values): exactly `page.data(ws, values)`."""
    from .state import ws_key

    return _data(page.key, ws_key(ws), _freeze(values), page, ws)


DRAW = {"choice": st.selectbox, "multi": st.multiselect, "bool": st.checkbox, "int": st.number_input,
        "float": st.number_input, "text": st.text_input}


class Controls:
    """One run of a page: its resolved values (`values`), a control per parameter (`__call__`), and its data."""

    def __init__(self, page: Page, ws, resolved: Resolved):
        self.page, self.ws, self.resolved = page, ws, resolved

    @property
    def values(self) -> dict:
        return self.resolved.values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __call__(self, name: str, label: str, draw=None, container=None, **kwargs) -> Any:
        """The control of parameter `name` (a selectbox, multiselect, checkbox, number or text input by its kind;
        `draw` another Streamlit widget such as st.radio, st.toggle or st.slider), its options from the page's
        declaration and its value the resolved one."""
        p = self.page.param(self.ws, name)
        fn = getattr(container or st, (draw or DRAW[p.kind]).__name__)
        key = widget_key(self.page, name)
        if "options" in kwargs:  # options known only to the page (e.g. the documents shown)
            return fn(label, kwargs.pop("options"), key=key, **kwargs)
        if p.kind in ("choice", "multi") and p.choices is not None:
            return fn(label, p.options(self.ws, self.values), key=key, **kwargs)
        if p.kind in ("int", "float") and "min_value" not in kwargs:
            kwargs = {"min_value": p.min, "max_value": p.max, **kwargs}
        return fn(label, key=key, **kwargs)

    def metadata_filters(self, what: str, help_text: str) -> None:
        """One multiselect per query metadata field (kind first), four to a row; `what` names the queries."""
        fields = list(self.ws.metadata_fields)
        for start in range(0, len(fields), 4):
            for col, field in zip(st.columns(4), fields[start:start + 4]):
                label = f"{what} kind" if field == "kind" else f"{what} {field}"
                self("kind" if field == "kind" else f"meta_{field}", safe.md(label), container=col,
                     placeholder="any", help=f"{help_text} (metadata field {safe.md(field)}).")

    def data(self) -> dict:
        return data(self.page, self.ws, self.values)

    def set(self, name: str, value: Any) -> None:
        set_value(self.page, name, value)

    def keep_out_of_url(self, name: str) -> None:
        """A value the page refused (a query too long to route) is not written into the link."""
        if name in st.query_params:
            del st.query_params[name]


def open_page_run(page: Page) -> Controls:
    """The start of a page's run: the workspace, the page's values resolved (notices shown) and put in the URL."""
    from .state import workspace

    ws = workspace()
    resolved = params(page, ws)
    notices(resolved)
    publish(page, ws, resolved.values)
    return Controls(page, resolved.ws or ws, resolved)  # a page that compares reads both workspaces
