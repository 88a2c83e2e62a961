"""Routing decisions: expert-selection heatmaps beside the instance oracle, the routed × oracle confusion matrix,
accuracy and regret per dataset, the margin histogram, and the expert pairs confused most."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from explorer.ui import safe, state
from explorer.ui.safe import plot as esc
from explorer.ui.style import CORRECT_COLOURS, dataset_palette, finish, wrap


def _heatmap(frame, title: str) -> go.Figure:
    """Dataset x expert shares; the names (axes, hover) and the title are escaped for Plotly."""
    z = 100 * frame.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=[esc(c) for c in frame.columns], y=[esc(i) for i in frame.index], colorscale="Blues", zmin=0, zmax=100,
        text=[[f"{v:.0f}%" for v in r] for r in z], texttemplate="%{text}",
        hovertemplate="dataset %{y}<br>expert %{x}<br>%{z:.1f}% of its queries<extra></extra>",
        colorbar=dict(title="% of queries")))
    fig.update_layout(title=esc(title))
    fig.update_yaxes(autorange="reversed")
    return finish(fig, "expert chosen", "dataset", height=360)


def render() -> None:
    ws = state.workspace()
    from explorer import views

    st.title("Routing decisions")
    st.caption("Where each strategy sends each dataset's test queries, and how that compares with the instance "
               "oracle (the best expert for each query, by its own score).")
    state.score_note()
    c1, c2 = st.columns([2, 2])
    strategy = state.synced(st.selectbox, "Strategy", "strategy", ws.strategies, views.default_strategy(ws),
                            container=c1)
    skip = state.synced(st.checkbox, "Leave out queries where every expert ties", "skip_ties", None, False,
                        container=c2, cast=lambda v: v in ("1", "true", "True"))
    oracle = views.instance_oracle(ws)

    h1, h2 = st.columns(2)
    with h1:
        st.plotly_chart(_heatmap(state.cached("views:selection_shares", strategy), f"{strategy}: share of queries"),
                        width="stretch")
    with h2:
        if oracle:
            st.plotly_chart(_heatmap(state.cached("views:selection_shares", oracle), f"{oracle}: share of queries"),
                            width="stretch")
        else:
            st.info("This workspace has no instance oracle to compare with.")

    qt = state.cached("analysis:query_table", strategy)
    if skip:
        qt = qt[~qt["all_tie"]]
    report = state.cached("views:routing_summary", strategy)
    st.subheader("Accuracy and regret per dataset")
    st.caption("Accuracy: the routed expert is among the tied best experts of the query (every-expert ties count "
               "as right; their share is shown). Regret: oracle score − routed score, ×100.")
    shown = report.assign(accuracy=(100 * report["accuracy"]).round(1), regret=(100 * report["regret"]).round(1),
                          all_tie=(100 * report["all_tie"]).round(1), queries=report["queries"].round(0))
    shown.columns = ["accuracy %", "regret ×100", "every expert ties %", "queries"]
    a1, a2 = st.columns([1, 1])
    a1.dataframe(shown, width="stretch")
    per = report.drop(index="average").reset_index().rename(columns={"index": "dataset"})
    per = per.assign(dataset=per["dataset"].map(esc))
    fig = px.bar(per, x="dataset", y=100 * per["regret"], color="dataset",
                 color_discrete_map={esc(k): v for k, v in dataset_palette(ws).items()},
                 hover_data={"accuracy": ":.2f", "queries": True})
    fig.update_traces(hovertemplate="dataset %{x}<br>mean regret %{y:.1f}<br>accuracy %{customdata[0]:.2f}"
                                    "<extra></extra>")
    a2.plotly_chart(finish(fig, "dataset", "mean regret ×100", height=300, legend="dataset"), width="stretch")

    st.subheader("Confusion: oracle expert × routed expert")
    conf = state.cached("views:confusion", strategy, skip)
    if conf.empty:
        st.info("No queries left: untick 'Leave out queries where every expert ties'.")
    else:
        fig = go.Figure(go.Heatmap(z=conf.to_numpy(), x=[esc(c) for c in conf.columns], y=[esc(i) for i in conf.index],
                                   colorscale="Oranges",
                                   text=conf.to_numpy(), texttemplate="%{text}",
                                   hovertemplate="oracle %{y}<br>routed %{x}<br>%{z} queries<extra></extra>",
                                   colorbar=dict(title="queries")))
        fig.update_yaxes(autorange="reversed")
        fig = finish(fig, "routed expert (a mixture: its largest weight)", "oracle expert (first of tied best)",
                     height=380)
        st.plotly_chart(fig, width="stretch")

    m1, m2 = st.columns(2)
    with m1:
        st.subheader("Routing margins")
        margins = qt.dropna(subset=["margin"])
        if margins.empty:
            st.info(f"{safe.md(strategy)} has no margin (it does not score experts): pick a router.")
        else:
            margins = margins.assign(outcome=margins["correct"].map({True: "correct", False: "wrong"}),
                                     hover=[wrap(t, 60) for t in margins["text"]], qid=margins["qid"].map(esc))
            fig = px.histogram(margins, x="margin", color="outcome", marginal="rug", nbins=30,
                               color_discrete_map=CORRECT_COLOURS, hover_data={"hover": True, "qid": True})
            fig.update_traces(selector=dict(type="box"), hovertemplate="%{customdata[0]}<extra></extra>")
            st.plotly_chart(finish(fig, "margin (top-1 − top-2 router score)", "queries", height=360,
                                   legend="routing"), width="stretch")
    with m2:
        st.subheader("Most confused expert pairs")
        pairs = state.cached("views:confused_pairs", strategy)
        if pairs.empty:
            st.success("No wrongly routed query: every routed expert is among the tied best.")
        else:
            st.dataframe(pairs.assign(mean_regret=(100 * pairs["mean_regret"]).round(1)), hide_index=True,
                         width="stretch", column_config={
                             "oracle": "oracle expert", "routed": "routed to",
                             "mean_regret": st.column_config.NumberColumn("mean regret ×100", format="%.1f"),
                             "example": st.column_config.TextColumn("example query", width="large")})


if __name__ == "__main__":
    render()
