"""Playground: route any typed query live. It is placed on the routing map, compared with every expert's pilots,
routed by every strategy, and searched under the chosen expert beside the base model and any other expert."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from explorer import views
from explorer.ui import safe, state
from explorer.ui.safe import plot as esc
from explorer.ui.figures import legend_below, missing_pilots, similarity_figure
from explorer.ui.style import OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap

EXAMPLES = ["how long should I rest a steak after grilling", "why do stars twinkle but planets do not",
            "side effects of statins on muscles", "rebalance a portfolio with index funds"]


ALL = "*"  # not a dataset name (names are letters, digits, - and _): every corpus
ALL_LABEL = "every corpus (merged)"


def _fill(example: str) -> None:
    """An example button's callback: the query box takes the example (and the page routes it)."""
    st.session_state["qp_q"] = example


def _out_of_domain(nearest: dict) -> None:
    """How far the query is from every pilot centroid, against the pilot queries' own best similarities."""
    if not nearest:
        return
    ood = state.cached(views.out_of_domain, round(nearest["similarity"], 6))
    if ood["pilots"] == 0:
        return
    line = (f"nearest pilot centroid at similarity {ood['best']:.3f} (expert {safe.md(nearest['expert'])}, "
            f"pilot queries of {safe.md(nearest['dataset'])}): closer than {ood['percentile']:.0f}% of the "
            f"{ood['pilots']} pilot queries' own nearest-centroid similarity (5th percentile {ood['threshold']:.3f}, "
            f"median {ood['median']:.3f}) and than {ood['test_percentile']:.0f}% of the test queries'.")
    if ood["likely_ood"]:
        st.warning(f"**Likely out of domain**: below the {ood['low']:.0f}th percentile of the pilot queries; " + line)
    else:
        st.caption(f"Out-of-domain check: in domain (at or above the {ood['low']:.0f}th percentile of the pilot "
                   "queries); " + line)


def render() -> None:
    ws = state.workspace()
    st.title("Playground")
    st.caption("Type any query. The base encoder embeds it once, every strategy routes it (oracles need judgements "
               "and are left out), and the chosen expert re-encodes it to search the dataset you pick. This is the "
               "only page that runs the model.")
    if ws.external_datasets:
        runs = ", ".join(ws.external_datasets)
        st.caption(f"Runs read from files ({safe.md(runs)}) are not routed here: their files have no line for a typed "
                   "query, so live routing chooses among the experts only (routers that chose such a run for a stored "
                   "query may choose otherwise here).")
    c = _controls(ws, views)
    if not (c["text"] or "").strip():
        state.set_params(q=None)  # nothing to route: nothing in the link either
        st.info("Type a query above (and press Enter) to route it, or click one of the examples.")
        return
    routed = _route(c["text"])
    if routed is None:
        return
    router, text, result, t0 = routed
    decisions = views.live_decisions(ws, result, router.choice)
    decisions = decisions.sort_values("family", key=lambda f: f.eq("fixed"), kind="stable")  # routers first
    searches = _search(views, router, text, result, c)
    elapsed = time.perf_counter() - t0
    st.caption(f"Answered in {1000 * elapsed:.0f} ms (base encode {1000 * result.timings['base_encode']:.0f} ms, "
               f"routing {1000 * result.timings['route']:.0f} ms, {len(searches)} searches).")
    _out_of_domain(result.nearest_pilot)
    _map_and_similarity(ws, views, result, c["method"], text)
    st.markdown("**What each strategy decides**")
    st.dataframe(decisions, hide_index=True, width="stretch",
                 column_config={"margin": st.column_config.NumberColumn("margin", format="%.3f")})
    _results(searches, c["dataset"])


def _controls(ws, views) -> dict:
    """The query box with its examples, and the corpus, strategy, second expert and map to use (all in the URL).
    Returns them by name: text, dataset, strategy, other, method (None without a layout)."""
    text = state.synced(st.text_input, "Query", "q", None, "",
                        placeholder="e.g. " + EXAMPLES[0])
    with st.container(horizontal=True, key="pg_examples", gap="small", vertical_alignment="center"):
        st.caption("Try an example:", width="content")
        for i, example in enumerate(EXAMPLES):
            st.button(example, key=f"pg_example_{i}", on_click=_fill, args=(example,))
    c1, c2, c3, c4 = st.columns([1.2, 1.6, 1.6, 1])
    dataset = state.synced(st.selectbox, "Search the corpus of", "dataset", [ALL, *ws.datasets], ws.datasets[0],
                           container=c1, format_func=lambda d: ALL_LABEL if d == ALL else d)
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
    return {"text": text, "dataset": dataset, "strategy": strategy, "other": other, "method": method}


def _route(text: str):
    """The query checked and routed live. Returns (router, the checked text, the routing result, when routing
    began), or None when the query is refused (said so on the page; a refused query stays out of the URL)."""
    from explorer.live import QueryError, check_query  # imports the model libraries: only once a query is typed

    try:
        text = check_query(text)
    except QueryError as err:
        state.set_params(q=None)  # a rejected query is not written into the link
        st.error(safe.md(err))
        return None
    with st.spinner("Loading the encoder and the experts (once per server)…"):
        router = state.live_router()
    t0 = time.perf_counter()
    try:
        result = router.route(text)
    except QueryError as err:
        st.error(safe.md(err))
        return None
    return router, text, result, t0


def _search(views, router, text: str, result, c: dict) -> dict:
    """Top 10 under the strategy's chosen expert, the base model and the other expert asked for: label -> frame."""
    strategy, other, dataset = c["strategy"], c["other"], c["dataset"]
    chosen = router.choice(result.decisions[strategy]) if strategy in result.decisions else None
    columns = {f"chosen by {strategy}: {views.choice_label(chosen)}": chosen, "base": None}
    if other != "(none)" and other != chosen:
        columns[other] = other
    if dataset == ALL:
        return {label: router.search_all(text, choice, k=10) for label, choice in columns.items()}
    return {label: router.search(text, choice, dataset, k=10) for label, choice in columns.items()}


def _map_and_similarity(ws, views, result, method: str | None, text: str) -> None:
    """Where the query falls: on the routing map beside the test queries and centroids, and its similarity to
    each expert's pilots."""
    palette = expert_palette(ws.encoders)
    left, right = st.columns([1.1, 1])
    with left:
        st.markdown("**On the routing map**")
        if method and method in result.coords:
            st.plotly_chart(_map(ws, views, method, result.coords[method], text, palette), width="stretch",
                            key="pg_map")
        else:
            st.info("This workspace has no 2-D layout to place the query on.")
    with right:
        st.markdown("**Similarity to each expert's pilots**")
        st.plotly_chart(legend_below(similarity_figure(result.pilot_similarity, palette, text)), width="stretch",
                        key="pg_sim")
        none = missing_pilots(result.pilot_similarity, ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))


def _map(ws, views, method: str, xy, text: str, palette: dict) -> go.Figure:
    """The test queries by dataset and the pilot centroids on the layout, the typed query a star on top."""
    data = state.cached(views.map_points, method, views.default_strategy(ws))
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
    x, y = xy
    # the query: a star drawn last (on top), its label a boxed annotation (above every trace)
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name="your query",
                             marker=dict(size=24, symbol="star", color="gold",
                                         line=dict(width=2, color="black")),
                             hovertext=[wrap(text)], hovertemplate="<b>your query</b><br>%{hovertext}"
                                                                   "<extra></extra>"))
    fig.add_annotation(x=x, y=y, text="<b>your query</b>", showarrow=True, arrowhead=0, arrowwidth=1.5,
                       arrowcolor="#111", ax=0, ay=-34, standoff=12, font=dict(size=13, color="#111"),
                       bgcolor="rgba(255,255,255,0.92)", bordercolor="#111", borderwidth=1, borderpad=3)
    axis = esc(str(method).upper())
    return finish(fig, f"{axis} 1", f"{axis} 2", height=400, legend="dataset")


def _results(searches: dict, dataset: str) -> None:
    """The top documents of each search side by side, sized to fit the page, with their texts below each."""
    every = dataset == ALL
    st.markdown("**Top documents of every corpus** (merged by score)" if every
                else f"**Top documents of {safe.md(dataset)}**")
    cols = st.columns(len(searches))
    # every corpus: the dataset in place of the doc id (the id is in "Document texts"), so three tables fit
    shown = ["rank", "dataset", "title", "score"] if every else ["rank", "title", "score", "doc_id"]
    # the title takes what the other columns leave of a table's share of the page (1000 px at a 1500 px window)
    per_table = (1000 - 16 * (len(searches) - 1)) / len(searches)
    title_w = max(90, int(per_table) - 30 - 56 - 80 - 6)
    for col, (label, frame) in zip(cols, searches.items()):
        with col:
            st.markdown(f"**{safe.md(label)}**")
            st.dataframe(frame[shown], hide_index=True, width="stretch",
                         column_config={"rank": st.column_config.NumberColumn("#", width=30),
                                        "dataset": st.column_config.TextColumn("dataset", width=80),
                                        "score": st.column_config.NumberColumn("score", format="%.3f", width=56),
                                        "doc_id": st.column_config.TextColumn("doc_id", width=80),
                                        "title": st.column_config.TextColumn("title", width=title_w)})
            with st.expander("Document texts"):
                for r in frame.itertuples():  # titles and texts are untrusted: escaped, cut before escaping
                    body = safe.text(r.text)
                    where = f" ({safe.md(r.dataset)}, {safe.code(r.doc_id)})" if every else ""
                    st.markdown(f"**{r.rank}\\. {safe.md(r.title)}**{where} — {safe.md(body[:300])}"
                                f"{'…' if len(body) > 300 else ''}")


if __name__ == "__main__":
    render()
