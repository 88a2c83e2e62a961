"""Playground: route any typed query live. It is placed on the routing map, compared with every expert's pilots,
routed by every strategy, and searched under the chosen expert beside the base model and any other expert."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from explorer.ui import safe, state
from explorer.ui.safe import plot as esc
from explorer.ui.figures import missing_pilots, similarity_figure
from explorer.ui.style import OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap

EXAMPLES = ["how long should I rest a steak after grilling", "why do stars twinkle but planets do not",
            "side effects of statins on muscles", "rebalance a portfolio with index funds"]


def render() -> None:
    ws = state.workspace()
    from explorer import views

    st.title("Playground")
    st.caption("Type any query. The base encoder embeds it once, every strategy routes it (oracles need judgements "
               "and are left out), and the chosen expert re-encodes it to search the dataset you pick. This is the "
               "only page that runs the model.")
    text = state.synced(st.text_input, "Query", "q", None, "",
                        placeholder="e.g. " + EXAMPLES[0])
    c1, c2, c3, c4 = st.columns([1.2, 1.6, 1.6, 1])
    dataset = state.synced(st.selectbox, "Search the corpus of", "dataset", ws.datasets, ws.datasets[0],
                           container=c1)
    live_strats = [s for s in views.real_strategies(ws)]
    strategy = state.synced(st.selectbox, "Chosen expert from strategy", "strategy", live_strats,
                            views.default_strategy(ws) if views.default_strategy(ws) in live_strats
                            else live_strats[0], container=c2)
    experts = [e for e in ws.encoders if e != "base"]
    other = state.synced(st.selectbox, "Also compare with", "other", ["(none)", *experts],
                         ws.own_expert.get(dataset, "(none)"), container=c3)
    methods = views.layout_methods(ws)
    method = state.synced(st.radio, "Map", "layout", methods, methods[0], container=c4,
                          format_func=lambda m: safe.md(str(m).upper())) if methods else None  # options: Markdown
    if not (text or "").strip():
        st.info("Type a query above (and press Enter) to route it. Try: " + " · ".join(f"“{e}”"
                                                                                           for e in EXAMPLES))
        return
    from explorer.live import QueryError, check_query  # imports the model libraries: only once a query is typed

    try:
        text = check_query(text)
    except QueryError as err:
        st.error(safe.md(err))
        return
    with st.spinner("Loading the encoder and the experts (once per server)…"):
        router = state.live_router()
    t0 = time.perf_counter()
    try:
        result = router.route(text)
    except QueryError as err:
        st.error(safe.md(err))
        return
    decisions = views.live_decisions(ws, result, router.choice)
    decisions = decisions.sort_values("family", key=lambda f: f.eq("fixed"), kind="stable")  # routers first
    chosen = router.choice(result.decisions[strategy]) if strategy in result.decisions else None
    columns = {f"chosen by {strategy}: {views.choice_label(chosen)}": chosen, "base": None}
    if other != "(none)" and other != chosen:
        columns[other] = other
    searches = {label: router.search(text, choice, dataset, k=10) for label, choice in columns.items()}
    elapsed = time.perf_counter() - t0
    st.caption(f"Answered in {1000 * elapsed:.0f} ms (base encode {1000 * result.timings['base_encode']:.0f} ms, "
               f"routing {1000 * result.timings['route']:.0f} ms, {len(columns)} searches).")

    palette = expert_palette(ws.encoders)
    left, right = st.columns([1.1, 1])
    with left:
        st.markdown("**On the routing map**")
        if method and method in result.coords:
            data = state.cached("views:map_points", method, views.default_strategy(ws))
            pts = data["queries"]
            pts = pts[pts["role"] == "eval"]
            dcol = dataset_palette(ws)
            fig = go.Figure()
            for ds, part in pts.groupby("dataset", sort=False):
                fig.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=esc(ds), opacity=0.45,
                                         marker=dict(size=7, color=dcol.get(ds, OTHER_COLOUR)),
                                         text=[f"{esc(r.qid)} ({esc(r.dataset)})<br>{wrap(r.text)}"
                                               for r in part.itertuples()],
                                         hovertemplate="%{text}<extra></extra>"))
            pil = data["pilots"]
            fig.add_trace(go.Scatter(x=pil["x"], y=pil["y"], mode="markers", name="pilot centroids",
                                     marker=dict(size=14, symbol="diamond", color=[palette.get(e, OTHER_COLOUR)
                                                                                   for e in pil["expert"]]),
                                     text=[f"pilot centroid: expert {esc(r.expert)} ({esc(r.dataset)})"
                                           for r in pil.itertuples()], hovertemplate="%{text}<extra></extra>"))
            x, y = result.coords[method]
            fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers+text", name="your query", text=["your query"],
                                     textposition="top center",
                                     marker=dict(size=22, symbol="star", color="gold", line=dict(width=2, color="black")),
                                     hovertext=[wrap(text)], hovertemplate="<b>your query</b><br>%{hovertext}"
                                                                           "<extra></extra>"))
            axis = esc(str(method).upper())
            st.plotly_chart(finish(fig, f"{axis} 1", f"{axis} 2", height=400, legend="dataset"),
                            width="stretch", key="pg_map")
        else:
            st.info("This workspace has no 2-D layout to place the query on.")
    with right:
        st.markdown("**Similarity to each expert's pilots**")
        st.plotly_chart(similarity_figure(result.pilot_similarity, palette, text), width="stretch", key="pg_sim")
        none = missing_pilots(result.pilot_similarity, ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))
    st.markdown("**What each strategy decides**")
    st.dataframe(decisions, hide_index=True, width="stretch",
                 column_config={"margin": st.column_config.NumberColumn("margin", format="%.3f")})
    st.markdown(f"**Top documents of {safe.md(dataset)}**")
    cols = st.columns(len(searches))
    for col, (label, frame) in zip(cols, searches.items()):
        with col:
            st.markdown(f"**{safe.md(label)}**")
            st.dataframe(frame[["rank", "title", "score", "doc_id"]], hide_index=True, width="stretch",
                         column_config={"rank": st.column_config.NumberColumn("#", width=30),
                                        "score": st.column_config.NumberColumn("score", format="%.3f", width=60),
                                        "title": st.column_config.TextColumn("title", width="medium")})
            with st.expander("Document texts"):
                for r in frame.itertuples():  # titles and texts are untrusted: escaped, cut before escaping
                    body = safe.text(r.text)
                    st.markdown(f"**{r.rank}\\. {safe.md(r.title)}** — {safe.md(body[:300])}"
                                f"{'…' if len(body) > 300 else ''}")


if __name__ == "__main__":
    render()
