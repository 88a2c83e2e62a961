"""Complementarity: on one dataset, the judged-relevant documents each encoder puts in its top 10 that another does
not, those only one finds, those every encoder misses, and the documents each expert gains or loses against base;
any of them opens in the Query inspector."""

from __future__ import annotations

from functools import partial

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer.complementarity import TOP_K
from explorer.ui import cohort as cohorts
from explorer.ui import safe, session
from explorer.ui.safe import plot as esc
from explorer.ui.style import finish
from explorer.views.complementarity import PAGE


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption(f"What only one expert finds. For one dataset's test queries, every judged-relevant (query, "
               f"document) pair is found by an encoder when the document is in its top {TOP_K} (its stored run, in "
               "trec_eval's order, as the TREC exports write it). Runs read from files are left out (they are "
               "systems, not encoders). Click a row of a table to open that query in the Query inspector with the "
               "document in the reader.")
    c("dataset", "Dataset", container=st.columns([1, 3])[0])
    view = c.data()
    cohorts.banner(c, view["cohort"], "Only its queries of this dataset are counted.")
    st.markdown(f"**{view['relevant']}** relevant pairs on **{view['queries']}** test queries · found by no encoder: "
                f"**{len(view['missed'])}**")
    if not view["relevant"]:
        st.info("No judged-relevant document on these queries: nothing to compare.")
        return
    _pairs(view)
    _per_encoder(view)
    _missed(ws, view)
    _documents(ws, view)


def _pairs(view: dict) -> None:
    st.subheader("Found by one and not the other")
    st.caption(f"Row A, column B: the relevant pairs in A's top {TOP_K} and not in B's. A row of large numbers is "
               "an encoder that finds what others miss; a column of large numbers, one that misses what others find.")
    pairs = view["pairs"]
    names = [esc(n) for n in pairs.index]
    fig = go.Figure(go.Heatmap(
        z=pairs.to_numpy(), x=names, y=names, colorscale="Blues", texttemplate="%{z}", xgap=1, ygap=1,
        hovertext=[[f"{a}: {pairs.iat[i, j]} relevant pairs in its top {TOP_K} that {b} misses" for j, b in
                    enumerate(names)] for i, a in enumerate(names)], hovertemplate="%{hovertext}<extra></extra>",
        colorbar=dict(title="pairs")))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(tickangle=-40, automargin=True)  # one label per encoder: turned, so that they never overlap
    size = max(380, 30 * len(names) + 200)
    st.plotly_chart(finish(fig, "B (misses them)", "A (finds them)", height=size), width="stretch",
                    key="comp_pairs")


def _per_encoder(view: dict) -> None:
    per = view["per_encoder"].reset_index()
    table = pd.DataFrame({"encoder": per["encoder"], "found": per["found"], "only it": per["only"],
                          "share": 100 * per["share"]})
    st.markdown(f"**Per encoder**: relevant pairs in its top {TOP_K}, and those no other encoder finds")
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 460), column_config={
        "share": st.column_config.NumberColumn(f"share of the {view['relevant']} pairs", format="%.1f%%")})


def _open(key: str, rows: list[int], docs: list[str], dataset: str) -> None:
    """Callback of a clickable table: its query opens in the inspector, its document in the reader."""
    event = st.session_state.get(key)
    picked = list(event["selection"]["rows"]) if event else []
    if picked and 0 <= picked[0] < len(rows) and rows[picked[0]] >= 0:
        st.session_state["_comp_open"] = (rows[picked[0]], dataset, docs[picked[0]])


def _clickable(table: pd.DataFrame, rows: list[int], docs: list[str], dataset: str, key: str, **config) -> None:
    st.dataframe(table, hide_index=True, width="stretch", key=key, selection_mode="single-row",
                 height=min(38 + 35 * max(len(table), 1), 420),
                 on_select=partial(_open, key, rows, docs, dataset), column_config=config)


def _section(title: str, frame: pd.DataFrame, empty: str, caption: str) -> bool:
    """A section's heading and what it shows, or why it is empty (then False)."""
    st.subheader(title)
    st.caption(empty if frame.empty else caption)
    return not frame.empty


def _missed(ws, view: dict) -> None:
    missed = view["missed"]
    if not _section("Found by no encoder", missed, f"Every relevant pair is in some encoder's top {TOP_K}.",
                    f"Relevant documents that no encoder, the base model included, puts in its top {TOP_K} for the "
                    "query that judges them: what no routing among these experts can recover."):
        return
    text = ws.queries.set_index("row").loc[missed["row"], "text"].to_numpy()
    table = pd.DataFrame({"qid": missed["qid"], "doc": missed["doc_id"], "grade": missed["grade"],
                          "title": missed["title"].map(safe.text), "query": text})
    _clickable(table, missed["row"].astype(int).tolist(), missed["doc_id"].tolist(), view["dataset"], "comp_missed",
               query=st.column_config.TextColumn("query", width="large"))


def _documents(ws, view: dict) -> None:
    docs = view["documents"]
    if not _section("Documents each expert gains or loses against base", docs,
                    f"No expert moves a relevant document into or out of base's top {TOP_K} on these queries.",
                    f"Per expert, the relevant documents it most often brings into its top {TOP_K} when base misses "
                    "them (gains), and most often drops when base finds them (losses), over the queries that judge "
                    f"them relevant (net = gained − lost; up to {view['listed']} each way). A click opens one query "
                    "where the document moved."):
        return
    experts = list(dict.fromkeys(docs["expert"]))
    expert = st.selectbox("Expert", experts, key="comp_expert")
    part = docs[docs["expert"] == expert]
    for direction, label in (("gains", "gains"), ("loses", "losses")):
        rows = part[part["direction"] == direction]
        st.markdown(f"**{safe.md(expert)}: {label}** ({len(rows)})")
        if rows.empty:
            st.caption("none")
            continue
        table = pd.DataFrame({"doc": rows["doc_id"], "title": rows["title"].map(safe.text), "gained": rows["gained"],
                              "lost": rows["lost"], "net": rows["net"], "judged in": rows["judged"]})
        _clickable(table, rows["row"].astype(int).tolist(), rows["doc_id"].tolist(), view["dataset"],
                   f"comp_docs_{expert}_{direction}",
                   net=st.column_config.NumberColumn("net", format="%+d"))


def _follow() -> None:
    """A table click (its callback ran before this run): open that query and document in the inspector."""
    from explorer.ui.state import workspace
    from explorer.views.inspector import PAGE as INSPECTOR

    picked = st.session_state.pop("_comp_open", None)
    if picked:
        row, _dataset, doc = picked
        session.open_page(INSPECTOR, workspace(), row=int(row), doc=doc)


if __name__ == "__main__":
    _follow()
    render()
