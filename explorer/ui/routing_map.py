"""Routing map: a 2-D layout of the pilot centroids, the pilot training queries and the test queries; selecting a
test query opens it in the Query inspector."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from explorer.ui import safe, state
from explorer.ui.safe import plot as esc
from explorer.ui.style import CORRECT_COLOURS, OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap

MAX_DRAWN = 3000
COLOUR_BY = {"routed": "routed expert", "oracle": "oracle expert", "dataset": "source dataset",
             "correct": "correct / incorrect routing", "regret": "regret"}


def render() -> None:
    ws = state.workspace()
    from explorer import views

    st.title("Routing map")
    st.caption("Every query placed by its base-encoder embedding. Large labelled markers: the pilot centroids "
               "(one colour per expert). Small faded dots: pilot training queries, coloured by their best-expert "
               "label. Ringed dots: test queries. Click a test query (or box-select one) to open it in the Query "
               "inspector.")
    methods = views.layout_methods(ws)
    if not methods:
        st.info("This workspace has no 2-D layout. Rebuild it with `[layout]` enabled in the build config.")
        return
    c1, c2, c3, c4 = st.columns([1, 2, 2, 3])
    method = state.synced(st.radio, "Layout", "layout", methods, methods[0], container=c1,
                          format_func=lambda m: safe.md(str(m).upper()))  # radio options are Markdown
    strategy = state.synced(st.selectbox, "Strategy", "strategy", ws.strategies, views.default_strategy(ws),
                            container=c2)
    colour = state.synced(st.selectbox, "Colour test queries by", "colour", list(COLOUR_BY), "routed",
                          container=c3, format_func=COLOUR_BY.get)
    datasets = state.synced(st.multiselect, "Datasets", "datasets", ws.datasets, [], container=c4,
                            placeholder="all datasets")
    show_pilots = st.toggle("Show pilot training queries", value=True, key="map_pilot_queries")

    data = state.cached("views:map_points", method, strategy)
    q, pilots = data["queries"], data["pilots"]
    if datasets:
        q = q[q["dataset"].isin(datasets)]
        pilots = pilots[pilots["dataset"].isin(datasets)]
    tests = q[q["role"] == "eval"]
    train = q[q["role"] != "eval"] if show_pilots else q.iloc[:0]
    tests, sampled_t = views.sample_points(tests, MAX_DRAWN)
    train, sampled_p = views.sample_points(train, MAX_DRAWN)
    notes = []
    if sampled_t or sampled_p:
        notes.append(f"Large workspace: at most {MAX_DRAWN:,} test and {MAX_DRAWN:,} pilot queries are drawn "
                     f"(a fixed random sample).")
    if ws.manifest.get("layout", {}).get("sampled"):
        notes.append("The layout was fitted on a sample of the queries and the rest placed into it.")
    if notes:
        st.info(" ".join(notes))
    if tests.empty and train.empty:
        st.info("No queries match these filters: clear the dataset filter.")
        return

    experts = expert_palette(ws.encoders)
    dcol = dataset_palette(ws)
    fig = go.Figure()
    if not train.empty:
        labels = train["label"].fillna("unlabelled")
        rank = {e: i for i, e in enumerate(ws.encoders)}
        for label, part in sorted(train.groupby(labels, sort=False), key=lambda kv: rank.get(kv[0], 99)):
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers", name=f"pilot queries → {esc(label)}", legendgroup="pilotq",
                marker=dict(size=5, color=experts.get(label, OTHER_COLOUR), opacity=0.35),
                customdata=[int(r) for r in part["row"]],
                text=[f"<b>pilot query</b> {esc(r.qid)} ({esc(r.dataset)})<br>best expert: {esc(r.label)}<br>"
                      f"{wrap(r.text)}" for r in part.itertuples()], hovertemplate="%{text}<extra></extra>"))
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
    else:
        if colour == "correct":
            keys = tests["correct"].map({True: "correct", False: "wrong"})
            palette = CORRECT_COLOURS
        elif colour == "dataset":
            keys, palette = tests["dataset"], dcol
        else:
            keys, palette = tests[colour].fillna("none"), experts
        order = {k: i for i, k in enumerate(list(palette) + sorted(set(keys) - set(palette)))}
        for key, part in sorted(tests.groupby(keys, sort=False), key=lambda kv: order.get(kv[0], 99)):
            fig.add_trace(go.Scatter(
                x=part["x"], y=part["y"], mode="markers", name=f"test: {esc(key)}",
                customdata=[int(r) for r in part["row"]],
                marker=dict(size=9, color=palette.get(key, OTHER_COLOUR), line=dict(width=1, color="#333")),
                text=part["hover"], hovertemplate="%{text}<extra></extra>"))
    if not pilots.empty:
        fig.add_trace(go.Scatter(
            x=pilots["x"], y=pilots["y"], mode="markers+text", name="pilot centroids",
            marker=dict(size=22, symbol="diamond", color=[experts.get(e, OTHER_COLOUR) for e in pilots["expert"]],
                        line=dict(width=2, color="white")),
            text=[esc(e) for e in pilots["expert"]], textposition="top center",
            customdata=[-1 - int(p) for p in pilots["pilot"]],
            hovertext=[f"<b>pilot centroid</b> {esc(r.pilot)}: expert {esc(r.expert)}<br>from {esc(r.size)} "
                       f"{esc(r.dataset)} pilot queries" for r in pilots.itertuples()],
            hovertemplate="%{hovertext}<extra></extra>"))
    axis = esc(str(method).upper())
    fig = finish(fig, f"{axis} 1", f"{axis} 2", height=620, legend="")
    fig.update_layout(dragmode="pan", clickmode="event+select")
    event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                            key="routing_map")
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
    selected = q[q["row"].isin(rows)]
    evaluated = selected[selected["role"] == "eval"]
    if len(evaluated) == 1 and len(rows) == 1:
        state.open_query(int(evaluated["row"].iloc[0]), dataset=evaluated["dataset"].iloc[0], strategy=strategy)
    if len(rows) and evaluated.empty:
        st.info("Pilot training queries are not evaluated: select a test query (ringed dot) to inspect it.")
    st.markdown("**Open a test query in the Query inspector**")
    pool = evaluated if len(evaluated) > 1 else tests
    if len(evaluated) > 1:
        st.caption(f"{len(evaluated)} test queries selected.")
    labels = {int(r.row): f"{r.qid} · {r.dataset} · {r.text[:90]}" for r in pool.itertuples()}
    o1, o2 = st.columns([4, 1])
    pick = o1.selectbox("Test query", list(labels), format_func=labels.get, key="map_pick",
                        label_visibility="collapsed")
    if o2.button("Open in inspector", key="map_open", disabled=pick is None):
        state.open_query(int(pick), dataset=q.set_index("row").loc[int(pick), "dataset"], strategy=strategy)


if __name__ == "__main__":
    render()
