"""Routing map: a 2-D layout of the pilot centroids, the pilot training queries and the test queries; selecting a
test query opens it in the Query inspector."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import views
from explorer.ui import safe, session
from explorer.ui.figures import place_labels
from explorer.ui.safe import plot as esc
from explorer.ui.style import CORRECT_COLOURS, OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap
from explorer.views.routing_map import COLOUR_BY, PAGE

HEIGHT = 620
PLOT_PX = (760, 430)  # a lower bound of the plot area (px) at a 1500 px window: labels are placed for it


def _span(frames) -> tuple[float, float, float, float]:
    """The data rectangle Plotly's autorange shows for these points (about 5% padding)."""
    xs = [v for f in frames for v in f["x"]]
    ys = [v for f in frames for v in f["y"]]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    px, py = 0.06 * ((x1 - x0) or 1), 0.06 * ((y1 - y0) or 1)
    return x0 - px, x1 + px, y0 - py, y1 + py


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption("Every query placed by its base-encoder embedding. Diamonds: the pilot centroids (one colour per "
               "expert; labelled where a label fits, every one named on hover). Small faded dots: pilot training "
               "queries, coloured by their best-expert label. Ringed dots: test queries. Click a test query to open "
               "it in the Query inspector; a box or lasso selection lists its test queries below.")
    if not views.layout_methods(ws):
        st.info("This workspace has no 2-D layout. Rebuild it with `[layout]` enabled in the build config.")
        return
    _controls(c)
    _umap_note(ws)
    data = c.data()
    _notes(data)
    tests, train, pilots = data["tests"], data["train"], data["pilots"]
    if tests.empty and train.empty:
        st.info("No queries match these filters: clear the dataset or metadata filters.")
        return
    fig = _figure(ws, c.values, tests, train, pilots)
    event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                            key="routing_map")
    _selection(c, data["queries"], tests, _selected_rows(event))


def _controls(c) -> None:
    """The page's controls, each kept in the URL: layout, strategy, measure (what the oracle, correctness and
    regret are taken by), colouring, datasets, the pilot toggle and the metadata filters."""
    c1, c2, c3, c4, c5 = st.columns([1, 2, 1.2, 2, 3])
    c("layout", "Layout", draw=st.radio, container=c1, format_func=lambda m: safe.md(str(m).upper()))
    c("strategy", "Strategy", container=c2)
    c("measure", "Measure", container=c3)
    c("colour", "Colour test queries by", container=c4, format_func=COLOUR_BY.get)
    c("datasets", "Datasets", container=c5, placeholder="all datasets")
    c("pilots", "Show pilot training queries", draw=st.toggle)
    c.metadata_filters("Test query", "Draw only the test queries that take one of these values")


def _umap_note(ws) -> None:
    """A workspace written before its UMAP layout (the first start opens on PCA): say so, and rerun the app when the
    layout lands so the map offers it."""
    state = views.umap_state(ws)
    if state == "pending":
        st.info("The UMAP layout is still being computed by the build that wrote this workspace (in a new "
                "environment UMAP first compiles itself, about half a minute). The map shows PCA meanwhile and "
                "offers UMAP as soon as it is added.")
        manifest = ws.path / "manifest.json"
        _rerun_when_changed(str(manifest), manifest.stat().st_mtime_ns)
    elif state == "stopped":
        st.info("This workspace has no UMAP layout: the build that wrote it stopped before adding it. Build it again "
                "with `explorer build CONFIG --out DIR` to add it (everything else comes from the cache); the map "
                "shows PCA.")


@st.fragment(run_every=2.0)
def _rerun_when_changed(manifest: str, stamp: int) -> None:
    """Every 2 s while the UMAP layout is pending: rerun the whole page once the manifest has changed."""
    try:
        changed = Path(manifest).stat().st_mtime_ns != stamp
    except OSError:
        changed = True
    if changed:
        st.rerun(scope="app")


def _notes(data: dict) -> None:
    """Says when the map does not show every query as it is: drawn from a sample, or laid out from one."""
    notes = []
    if data["sampled"]:
        notes.append(f"Large workspace: at most {data['max_drawn']:,} test and {data['max_drawn']:,} pilot queries "
                     "are drawn (a fixed random sample).")
    if data["layout_sampled"]:
        notes.append("The layout was fitted on a sample of the queries and the rest placed into it.")
    if notes:
        st.info(" ".join(notes))


def _figure(ws, c: dict, tests, train, pilots) -> go.Figure:
    """The map: pilot training queries under the test queries, the pilot centroids on top."""
    experts = expert_palette(ws.systems)
    fig = go.Figure()
    _pilot_queries(fig, ws, train, experts)
    _test_queries(fig, ws, tests, c["colour"], experts)
    _centroids(fig, pilots, experts, [tests, train, pilots])
    axis = esc(str(c["layout"]).upper())
    fig = finish(fig, f"{axis} 1", f"{axis} 2", height=HEIGHT, legend="")
    fig.update_layout(dragmode="pan", clickmode="event+select")
    if c["colour"] == "regret":  # the colour bar takes the right edge: the legend goes below, never over it
        fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-0.12, yanchor="top"))
    return fig


def _pilot_queries(fig: go.Figure, ws, train, experts: dict) -> None:
    """Pilot training queries, one trace per best-expert label (in the experts' order), faded under the rest."""
    if train.empty:
        return
    labels = train["label"].fillna("unlabelled")
    rank = {e: i for i, e in enumerate(ws.systems)}
    for label, part in sorted(train.groupby(labels, sort=False), key=lambda kv: rank.get(kv[0], 99)):
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["y"], mode="markers", name=f"pilot queries → {esc(label)}", legendgroup="pilotq",
            marker=dict(size=5, color=experts.get(label, OTHER_COLOUR), opacity=0.35),
            customdata=[int(r) for r in part["row"]],
            text=[f"<b>pilot query</b> {esc(r.qid)} ({esc(r.dataset)})<br>best expert: {esc(r.label)}<br>"
                  f"{wrap(r.text)}" for r in part.itertuples()], hovertemplate="%{text}<extra></extra>"))


def _test_queries(fig: go.Figure, ws, tests, colour: str, experts: dict) -> None:
    """Test queries, ringed: one trace of regret shades, or one trace per colour key (expert, dataset, outcome)."""
    # every workspace text in a hover is escaped for Plotly (wrap escapes the query text)
    hover = [f"<b>{esc(r.qid)}</b> ({esc(r.dataset)}, {esc(r.kind)})<br>{wrap(r.text)}<br>routed: {esc(r.routed)} · "
             f"oracle: {esc(r.oracle)}<br>regret {100 * r.regret:.1f} · margin {r.margin:.3f}"
             for r in tests.itertuples()]
    tests = tests.assign(hover=hover)
    if colour == "regret":
        fig.add_trace(go.Scatter(
            x=tests["x"], y=tests["y"], mode="markers", name="test queries", customdata=[int(r) for r in tests["row"]],
            marker=dict(size=9, color=100 * tests["regret"], colorscale="Reds", line=dict(width=1, color="#333"),
                        colorbar=dict(title="regret ×100")),
            text=tests["hover"], hovertemplate="%{text}<extra></extra>"))
        return
    if colour == "correct":
        keys = tests["correct"].map({True: "correct", False: "wrong"})
        palette = CORRECT_COLOURS
    elif colour == "dataset":
        keys, palette = tests["dataset"], dataset_palette(ws)
    else:
        keys, palette = tests[colour].fillna("none"), experts
    order = {k: i for i, k in enumerate(list(palette) + sorted(set(keys) - set(palette)))}
    for key, part in sorted(tests.groupby(keys, sort=False), key=lambda kv: order.get(kv[0], 99)):
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["y"], mode="markers", name=f"test: {esc(key)}",
            customdata=[int(r) for r in part["row"]],
            marker=dict(size=9, color=palette.get(key, OTHER_COLOUR), line=dict(width=1, color="#333")),
            text=part["hover"], hovertemplate="%{text}<extra></extra>"))


def _centroids(fig: go.Figure, pilots, experts: dict, frames: list) -> None:
    """Pilot centroids: labelled beside the marker where a label fits clear of every other label and marker
    (place_labels); the others keep their colour and hover (expert, dataset)."""
    if pilots.empty:
        return
    fig.add_trace(go.Scatter(
        x=pilots["x"], y=pilots["y"], mode="markers", name="pilot centroids",
        marker=dict(size=22, symbol="diamond", color=[experts.get(e, OTHER_COLOUR) for e in pilots["expert"]],
                    line=dict(width=2, color="white")),
        customdata=[-1 - int(p) for p in pilots["pilot"]],
        hovertext=[f"<b>pilot centroid</b> {esc(r.pilot)}: expert {esc(r.expert)}<br>from {esc(r.size)} "
                   f"{esc(r.dataset)} pilot queries" for r in pilots.itertuples()],
        hovertemplate="%{hovertext}<extra></extra>"))
    big = pilots.sort_values("size", ascending=False)  # the largest centroids get the first places
    spots = place_labels(list(zip(big["x"], big["y"])), [str(e) for e in big["expert"]], _span(frames), PLOT_PX)
    for r, spot in zip(big.itertuples(), spots):
        if spot is None:
            continue
        dx, dy, far = spot
        common = dict(x=r.x, y=r.y, text=esc(r.expert), font=dict(size=11, color="#222"),
                      bgcolor="rgba(255,255,255,0.8)", borderpad=1)
        if far:
            fig.add_annotation(**common, showarrow=True, ax=dx, ay=dy, arrowhead=0, arrowwidth=0.8,
                               arrowcolor="#666", standoff=11)
        else:
            fig.add_annotation(**common, showarrow=False, xshift=dx, yshift=-dy)


def _selected_rows(event) -> list[int]:
    """The query rows of the points selected on the map, in order, once each (centroids, negative, left out)."""
    rows = []
    for p in (event.selection.points if event and event.selection else []):
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        try:
            row = int(cd)
        except (TypeError, ValueError):
            continue
        if row >= 0 and row not in rows:
            rows.append(row)
    return rows


def _selection(c, q, tests, rows: list[int]) -> None:
    """What a selection does: one test query opens in the inspector, several are listed; below, a picker opens
    any test query (those selected, or every one drawn)."""
    selected = q[q["row"].isin(rows)]
    evaluated = selected[selected["role"] == "eval"]
    if len(evaluated) == 1 and len(rows) == 1:
        _inspect(c, int(evaluated["row"].iloc[0]))
    if len(rows) and evaluated.empty:
        st.info("Pilot training queries are not evaluated: select a test query (ringed dot) to inspect it.")
    if len(evaluated) > 1:
        _selection_table(c, list(evaluated["row"]))
    st.markdown("**Open a test query in the Query inspector**")
    pool = evaluated if len(evaluated) > 1 else tests
    labels = {int(r.row): f"{r.qid} · {r.dataset} · {r.text[:90]}" for r in pool.itertuples()}
    o1, o2 = st.columns([4, 1])
    pick = o1.selectbox("Test query", list(labels), format_func=labels.get, key="map_pick",
                        label_visibility="collapsed")
    if o2.button("Open in inspector", key="map_open", disabled=pick is None):
        _inspect(c, int(pick))


def _inspect(c, row: int) -> None:
    """Open one test query in the Query inspector, with this page's strategy and measure."""
    from explorer.views.inspector import PAGE as INSPECTOR

    session.open_page(INSPECTOR, c.ws, row=row, strategy=c["strategy"], measure=c["measure"])


def _selection_table(c, rows: list[int]) -> None:
    """The test queries of a box or lasso selection: text, dataset, routed, oracle, regret, and a link to each in
    the Query inspector (a click on a row opens it here)."""
    from urllib.parse import urlencode

    ws, strategy, measure = c.ws, c["strategy"], c["measure"]
    sel = views.selected_queries(ws, rows, strategy, measure)
    st.markdown(f"**{len(sel)} test queries selected** (click a row to open it in the Query inspector, or its "
                "link in a new tab)")
    carried = {"measure": measure} if measure != ws.label_measure else {}  # defaults stay out of a link
    table = pd.DataFrame({
        "open": ["inspector?" + urlencode({"row": int(r.row), "dataset": r.dataset, "strategy": strategy, **carried})
                 for r in sel.itertuples()],
        "qid": sel["qid"], "dataset": sel["dataset"], "text": sel["text"], "routed": sel["routed"],
        "oracle": sel["oracle"], "regret": views.points(sel["regret"])})
    event = st.dataframe(table, hide_index=True, width="stretch", key=f"map_sel_{len(sel)}_{int(sel['row'].sum())}",
                         on_select="rerun", selection_mode="single-row", height=min(38 + 35 * len(table), 400),
                         column_config={
                             "open": st.column_config.LinkColumn("inspector", display_text="open ↗", width=80),
                             "text": st.column_config.TextColumn("text", width="large"),
                             "regret": st.column_config.NumberColumn("regret ×100", format="%.1f", width=90)})
    picked = list(event.selection.rows) if event and event.selection else []
    if picked and 0 <= picked[0] < len(sel):
        _inspect(c, int(sel.iloc[picked[0]]["row"]))


if __name__ == "__main__":
    render()
