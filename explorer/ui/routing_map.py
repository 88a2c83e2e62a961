"""Routing map: a 2-D layout of the pilot centroids, the pilot training queries and the test queries; selecting a
test query opens it in the Query inspector."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import cohort as model
from explorer import views
from explorer.ui import cohort as cohorts
from explorer.ui import safe, session
from explorer.ui.figures import place_labels
from explorer.ui.safe import plot as esc
from explorer.ui.style import CORRECT_COLOURS, OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap
from explorer.views.routing_map import COLOUR_BY, PAGE

HEIGHT = 620
PLOT_PX = (760, 430)  # a lower bound of the plot area (px) at a 1500 px window: labels are placed for it


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
    cohorts.banner(c, data["cohort"], "Its queries are ringed in black on the map.")
    _notes(data)
    tests, train, pilots = data["tests"], data["train"], data["pilots"]
    if tests.empty and train.empty:
        st.info("No queries match these filters: clear the dataset or metadata filters (the axes stay those of "
                "the whole map).")
        return
    fig = _figure(ws, c.values, tests, train, pilots, data["extent"], _arrow_marks(data["arrows"]))
    _overlays(fig, data["queries"], data["cohort"], c["focus"], data["arrows"])
    event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                            key="routing_map")
    _arrow_notes(data, c["focus"], c["arrows"])
    rows = _selected_rows(event)
    _save_cohort(c, data["queries"], rows)
    _selection(c, data["queries"], tests, rows)
    if data["cohort"]:
        cohorts.downloads(c, data["cohort"], c["measure"])


def _controls(c) -> None:
    """The page's controls, each kept in the URL: layout, strategy, measure (what the oracle, correctness and
    regret are taken by), colouring, datasets, the pilot toggle and the metadata filters."""
    c1, c2, c3, c4, c5 = st.columns([1, 2, 1.2, 2, 3])
    c("layout", "Layout", draw=st.radio, container=c1, format_func=lambda m: safe.md(str(m).upper()))
    c("strategy", "Strategy", container=c2)
    c("measure", "Measure", container=c3)
    c("colour", "Colour test queries by", container=c4, format_func=COLOUR_BY.get)
    c("datasets", "Datasets", container=c5, placeholder="all datasets")
    t1, t2 = st.columns([1, 3])
    c("pilots", "Show pilot training queries", draw=st.toggle, container=t1)
    c("arrows", "Expert arrows", draw=st.toggle, container=t2,
      help=f"For the query found below (or a cohort of at most {views.MAX_ARROW_QUERIES} queries): an arrow per "
           "expert from the query to where that expert's own query embedding lands, green where the expert scores "
           "the query above base, red below, grey the same.")
    c.metadata_filters("Test query", "Draw only the test queries that take one of these values")
    _find(c)


def _find(c) -> None:
    """Find a test query by id or text: its matches to pick from; the one picked (`focus`) is ringed on the map
    and gets its expert arrows."""
    ws = c.ws
    f1, f2 = st.columns([2, 3])
    c("find", "Find a test query (id or text)", container=f1, max_chars=views.MAX_SEARCH_CHARS,
      placeholder="a query id, or words of its text")
    found = views.search_queries(ws, c["find"]) if c["find"].strip() else None
    labels = {} if found is None else {int(r.row): f"{r.qid} · {r.dataset} · {r.text[:80]}"
                                       for r in found.itertuples()}
    focus = c["focus"]
    if focus is not None and focus not in labels:  # a link's focus, or one kept from an earlier search
        q = ws.queries.iloc[int(focus)]
        labels[int(focus)] = f"{q['qid']} · {q['dataset']} · {str(q['text'])[:80]}"
    placeholder = ("no test query matches" if found is not None and found.empty else
                   f"{len(found)} match(es): pick one" if found is not None else "find a query first")
    c("focus", "Query to mark and draw arrows for", container=f2, options=[None, *labels],
      format_func=lambda r: placeholder if r is None else labels.get(r, str(r)))


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


def _figure(ws, c: dict, tests, train, pilots, extent: dict, arrows: list[dict]) -> go.Figure:
    """The map: pilot training queries under the test queries, the pilot centroids on top; the axes span the whole
    layout, so they stay put when a filter hides points. The centroid labels and the `arrows` are set in one layout
    update (one add_annotation each revalidates every annotation: seconds for hundreds)."""
    experts = expert_palette(ws.systems)
    fig = go.Figure()
    _pilot_queries(fig, ws, train, experts)
    _test_queries(fig, ws, tests, c["colour"], experts)
    labels = _centroids(fig, pilots, experts, (*extent["x"], *extent["y"]))
    fig.update_layout(annotations=[*labels, *arrows])
    axis = esc(str(c["layout"]).upper())
    fig = finish(fig, f"{axis} 1", f"{axis} 2", height=HEIGHT, legend="")
    fig.update_xaxes(range=extent["x"])
    fig.update_yaxes(range=extent["y"])
    fig.update_layout(dragmode="pan", clickmode="event+select")
    if c["colour"] == "regret":  # the colour bar takes the right edge: the legend goes below, never over it
        fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-0.12, yanchor="top"))
    return fig


EFFECT_COLOURS = {"better": "#2ca02c", "worse": "#d62728", "same": "#9e9e9e"}


def _arrow_marks(arrows) -> list[dict]:
    """The expert arrows as annotations: from the query's point to where the expert moves it."""
    if arrows is None:
        return []
    return [dict(x=r.x1, y=r.y1, ax=r.x0, ay=r.y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                 arrowhead=2, arrowsize=1.2, arrowwidth=1.6, arrowcolor=EFFECT_COLOURS[r.effect], text="")
            for r in arrows.itertuples()]


def _overlays(fig: go.Figure, q, cohort, focus: int | None, arrows) -> None:
    """On top of the map: the cohort's queries ringed, the found query marked, and the expert arrows' ends."""
    pos = q.set_index("row")[["x", "y"]]
    if cohort:
        ringed = pos.reindex([r for r in cohort["rows"] if r in pos.index])
        fig.add_trace(go.Scatter(x=ringed["x"], y=ringed["y"], mode="markers", name=f"cohort: {esc(cohort['name'])}",
                                 marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(width=2, color="black")),
                                 hoverinfo="skip"))
    if arrows is not None and len(arrows):
        one = arrows["row"].nunique() == 1  # one query: the experts that change its score are named
        fig.add_trace(go.Scatter(
            x=arrows["x1"], y=arrows["y1"], mode="markers+text" if one else "markers", name="expert arrows",
            text=[esc(e) if f != "same" else "" for e, f in zip(arrows["expert"], arrows["effect"])] if one else None,
            textposition="top center", textfont=dict(size=10, color="#333"),
            marker=dict(size=7, color=[EFFECT_COLOURS[e] for e in arrows["effect"]]),
            hovertext=[f"<b>{esc(r.expert)}</b> on {esc(r.qid)}<br>{100 * r.score:.1f} vs base {100 * r.base_score:.1f}"
                       f" ({100 * r.delta:+.1f})" for r in arrows.itertuples()],
            hovertemplate="%{hovertext}<extra></extra>"))
    if focus is not None and focus in pos.index:
        fig.add_trace(go.Scatter(x=[pos.loc[focus, "x"]], y=[pos.loc[focus, "y"]], mode="markers", name="found query",
                                 customdata=[int(focus)], hoverinfo="skip",
                                 marker=dict(size=24, symbol="circle-open", color="black", line=dict(width=3))))


def _arrow_notes(data: dict, focus, on: bool) -> None:
    """What the arrows show, or why there are none."""
    arrows, asked = data["arrows"], data["arrow_rows"]
    if not on or not asked:
        return
    if arrows is None:
        st.caption(f"Expert arrows are drawn for one found query or a cohort of at most {views.MAX_ARROW_QUERIES} "
                   f"queries; this cohort has {asked}.")
        return
    counts = arrows["effect"].value_counts()
    st.caption(f"Expert arrows ({'the found query' if focus is not None else 'the cohort'}): from each query to where "
               "each expert's own query embedding lands among the other queries' base embeddings (placed by "
               f"their {views.ARROW_NEIGHBOURS} nearest neighbours, as a typed query is). Green: the expert scores the "
               f"query above base ({counts.get('better', 0)}), red below ({counts.get('worse', 0)}), grey the same "
               f"({counts.get('same', 0)}). BM25 and runs read from files embed no query: they have no arrow.")


def _save_cohort(c, q, rows: list[int]) -> None:
    """A box or lasso selection of two or more test queries can be saved as the cohort, under a name."""
    tested = set(q.loc[q["role"] == "eval", "row"].astype(int))  # once, not once per selected point
    evaluated = [r for r in rows if r in tested]
    if len(evaluated) < 2:
        return
    c1, c2 = st.columns([2, 1])
    name = c1.text_input("Cohort name", value=model.DEFAULT_NAME, max_chars=model.MAX_NAME, key="map_cohort_name")
    if c2.button(f"Save these {len(evaluated)} test queries as the cohort", key="map_cohort_save",
                 help="A cohort filters the Overview, Routing decisions, Error analysis, Oracle gap and "
                      "Complementarity pages, and is kept in the link."):
        try:
            text = model.encode(evaluated, len(c.ws.queries))
        except model.CohortError as err:
            st.error(safe.md(err))
            return
        cohorts.save(c, text, name)


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


def _centroids(fig: go.Figure, pilots, experts: dict, span: tuple[float, float, float, float]) -> list[dict]:
    """Pilot centroids: labelled beside the marker where a label fits clear of every other label and marker
    (place_labels); the others keep their colour and hover (expert, dataset). Returns the labels (annotations)."""
    if pilots.empty:
        return []
    fig.add_trace(go.Scatter(
        x=pilots["x"], y=pilots["y"], mode="markers", name="pilot centroids",
        marker=dict(size=22, symbol="diamond", color=[experts.get(e, OTHER_COLOUR) for e in pilots["expert"]],
                    line=dict(width=2, color="white")),
        customdata=[-1 - int(p) for p in pilots["pilot"]],
        hovertext=[f"<b>pilot centroid</b> {esc(r.pilot)}: expert {esc(r.expert)}<br>from {esc(r.size)} "
                   f"{esc(r.dataset)} pilot queries" for r in pilots.itertuples()],
        hovertemplate="%{hovertext}<extra></extra>"))
    big = pilots.sort_values("size", ascending=False)  # the largest centroids get the first places
    spots = place_labels(list(zip(big["x"], big["y"])), [str(e) for e in big["expert"]], span, PLOT_PX)
    labels = []
    for r, spot in zip(big.itertuples(), spots):
        if spot is None:
            continue
        dx, dy, far = spot
        common = dict(x=r.x, y=r.y, text=esc(r.expert), font=dict(size=11, color="#222"),
                      bgcolor="rgba(255,255,255,0.8)", borderpad=1)
        if far:
            labels.append(dict(**common, showarrow=True, ax=dx, ay=dy, arrowhead=0, arrowwidth=0.8,
                               arrowcolor="#666", standoff=11))
        else:
            labels.append(dict(**common, showarrow=False, xshift=dx, yshift=-dy))
    return labels


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
