"""Playground: route any typed query live. It is placed on the routing map, compared with every expert's pilots,
routed by every strategy, and searched under the chosen expert beside the base model and any other expert."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from explorer import views
from explorer.ui import safe, session
from explorer.ui.safe import plot as esc
from explorer.ui.figures import legend_below, missing_pilots, similarity_figure
from explorer.ui.style import OTHER_COLOUR, dataset_palette, expert_palette, finish, wrap
from explorer.views.playground import ALL, CORPUS_LABELS, PAGE

EXAMPLES = ["how long should I rest a steak after grilling", "why do stars twinkle but planets do not",
            "side effects of statins on muscles", "rebalance a portfolio with index funds"]


def _fill(c, example: str) -> None:
    """An example button's callback: the query box takes the example (and the page routes it)."""
    c.set("q", example)


def _out_of_domain(ood: dict | None, nearest: dict) -> None:
    """How far the query is from every pilot centroid, against the pilot queries' own best similarities."""
    if not ood or ood["pilots"] == 0:
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
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption("Type any query. The base encoder embeds it once, every strategy routes it (oracles need judgements "
               "and are left out), and the chosen expert re-encodes it to search its own corpus (or the one you "
               "pick). This is the only page that runs the model.")
    if ws.external_datasets:
        runs = ", ".join(ws.external_datasets)
        st.caption(f"Runs read from files ({safe.md(runs)}) are not routed here: their files have no line for a typed "
                   "query, so live routing chooses among the experts only (routers that chose such a run for a stored "
                   "query may choose otherwise here).")
    _controls(c)
    if not (c["q"] or "").strip():
        c.keep_out_of_url("q")  # nothing to route: nothing in the link either
        st.info("Type a query above (and press Enter) to route it, or click one of the examples.")
        return
    with st.spinner("Routing (the first query loads the encoder and the experts, once per server)…"):
        data = c.data()
    if data.get("error"):
        c.keep_out_of_url("q")
        st.error(safe.md(data["error"]))
        return
    t = data["timings"]
    st.caption(f"Answered in {1000 * t['total']:.0f} ms (base encode {1000 * t['base_encode']:.0f} ms, routing "
               f"{1000 * t['route']:.0f} ms, {len(data['searches'])} searches of "
               f"{safe.md(CORPUS_LABELS.get(data['corpus'], data['corpus']))}: {safe.md(data['corpus_reason'])}).")
    _out_of_domain(data["out_of_domain"], data["nearest"])
    _map_and_similarity(ws, data, c["layout"])
    st.markdown("**What each strategy decides**")
    decisions = data["decisions"].sort_values("family", key=lambda f: f.eq("fixed"), kind="stable")
    st.dataframe(decisions, hide_index=True, width="stretch",
                 column_config={"margin": st.column_config.NumberColumn("margin", format="%.3f")})
    if data["left_out"]:  # they decide from every expert's stored run, which a typed query does not have
        st.caption("Not routed live (they read every expert's stored ranking first): "
                   + ", ".join(safe.md(s) for s in data["left_out"]) + ". A lexical expert (BM25) is searched live "
                   "from the workspace's documents; a fusion searches each of its experts and fuses their rankings.")
    _results(data["searches"], data["corpus"])


def _controls(c) -> None:
    """The query box with its examples, and the corpus, strategy, second expert and map to use (all in the URL)."""
    c("q", "Query", placeholder="e.g. " + EXAMPLES[0])
    with st.container(horizontal=True, key="pg_examples", gap="small", vertical_alignment="center"):
        st.caption("Try an example:", width="content")
        for i, example in enumerate(EXAMPLES):
            st.button(example, key=f"pg_example_{i}", on_click=_fill, args=(c, example))
    c1, c2, c3, c4 = st.columns([1.2, 1.6, 1.6, 1])
    c("dataset", "Search the corpus of", container=c1, format_func=lambda d: CORPUS_LABELS.get(d, d))
    c("strategy", "Chosen expert from strategy", container=c2)
    c("other", "Also compare with", container=c3)
    if views.layout_methods(c.ws):
        c("layout", "Map", draw=st.radio, container=c4, format_func=lambda m: safe.md(str(m).upper()))


def _map_and_similarity(ws, data: dict, method: str | None) -> None:
    """Where the query falls: on the routing map beside the test queries and centroids, and its similarity to
    each expert's pilots."""
    palette = expert_palette(ws.encoders)
    text = data["query"]
    left, right = st.columns([1.1, 1])
    with left:
        st.markdown("**On the routing map**")
        if method and method in data["coords"]:
            st.plotly_chart(_map(ws, data["map"], data["coords"][method], method, text, palette), width="stretch",
                            key="pg_map")
        else:
            st.info("This workspace has no 2-D layout to place the query on.")
    with right:
        st.markdown("**Similarity to each expert's pilots**")
        st.plotly_chart(legend_below(similarity_figure(data["similarity"], palette, text)), width="stretch",
                        key="pg_sim")
        none = missing_pilots(data["similarity"], ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))


def _map(ws, data: dict, xy, method: str, text: str, palette: dict) -> go.Figure:
    """The test queries by dataset and the pilot centroids on the layout, the typed query a star on top."""
    pts = data["queries"]
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
