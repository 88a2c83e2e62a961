"""Routing decisions: expert-selection heatmaps beside the instance oracle over the same choice set, the routed ×
oracle confusion matrix, accuracy and regret per dataset, the margin histogram, and the expert pairs confused most.
One query set for the whole page: every test query, or those where not every expert ties."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from explorer.ui import cohort as cohorts
from explorer.ui import safe, session, state
from explorer.ui.safe import plot as esc
from explorer.ui.style import CORRECT_COLOURS, dataset_palette, finish, wrap
from explorer.views.decisions import PAGE


def _axes(fig: go.Figure, labels: list[str], width: float = 480) -> go.Figure:
    """Long axis labels never overlap: turned when the longest (about 8 px a character, with a gap) is wider than
    the room each label has in a plot area about `width` px wide, of which the colour bar and margins take about a
    third; margins then grow to fit (automargin)."""
    longest = max((len(str(s)) for s in labels), default=0)
    turned = labels and 8 * longest + 8 > 0.65 * width / len(labels)
    fig.update_xaxes(tickangle=-40 if turned else 0, automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _heatmap(frame, title: str) -> go.Figure:
    """Dataset x expert shares; the names (axes, hover) and the title are escaped for Plotly."""
    z = 100 * frame.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=[esc(c) for c in frame.columns], y=[esc(i) for i in frame.index], colorscale="Blues", zmin=0, zmax=100,
        text=[[f"{v:.0f}%" for v in r] for r in z], texttemplate="%{text}",
        hovertemplate="dataset %{y}<br>expert %{x}<br>%{z:.1f}% of its queries<extra></extra>",
        colorbar=dict(title="% of queries")))
    fig.update_layout(title=dict(text=esc(title), font=dict(size=14)))
    fig.update_yaxes(autorange="reversed")
    return _axes(finish(fig, "expert chosen", "dataset", height=400), list(frame.columns), width=400)


def render() -> None:
    c = session.open_page_run(PAGE)
    st.title(PAGE.title)
    st.caption("Where each strategy sends each dataset's test queries, and how that compares with the instance "
               "oracle over the same experts (the best expert for each query, by its own score).")
    state.score_note()
    _controls(c)
    view = c.data()
    cohorts.banner(c, view["cohort"], "Every table and chart is computed on its queries.")
    strategy, measure, skip = view["strategy"], view["measure"], c["skip_ties"]
    counted = f"{len(view['queries'])} test queries" + (
        f" ({view['left_out']} where every expert ties left out)" if skip else "")
    st.markdown(f"Every table and chart below counts the same **{counted}**.")
    _heatmaps(view, strategy, measure)
    _accuracy(c.ws, view["report"], skip)
    _confusion(view["confusion"])
    m1, m2 = st.columns(2)
    with m1:
        _margins(view["queries"], strategy)
    with m2:
        _pairs(view["pairs"])


def _controls(c) -> None:
    """The page's controls (strategy, measure, the ties filter), each kept in the URL: one query set and one
    measure (what the oracle, accuracy and regret are taken by) for every table and chart below."""
    c1, c2, c3 = st.columns([2, 1, 2])
    c("strategy", "Strategy", container=c1)
    c("measure", "Measure", container=c2)
    c("skip_ties", "Leave out queries where every expert ties", container=c3,
      help="Every table and chart of this page then counts only the queries where the experts differ (where "
           "every expert ties, any choice is right).")


def _heatmaps(view: dict, strategy: str, measure: str) -> None:
    """The strategy's selection beside the instance oracle's over the same choice set, so the two read alike."""
    experts = view["experts"]
    h1, h2 = st.columns(2)
    with h1:
        st.plotly_chart(_heatmap(view["shares"], f"{strategy}: share of queries"), width="stretch")
    with h2:
        st.plotly_chart(_heatmap(view["oracle_shares"], f"instance oracle over the same {len(experts)} experts"),
                        width="stretch")
    st.caption(f"Right: the best of {safe.md(strategy)}'s own choice set ({', '.join(safe.md(e) for e in experts)}) "
               f"for each query, by its {safe.md(measure)}; a query where several experts tie counts for each "
               "equally. A mixture (left) counts by its weights.")


def _accuracy(ws, report, skip: bool) -> None:
    """Accuracy and regret per dataset: the table and its regret bars side by side."""
    st.subheader("Accuracy and regret per dataset")
    ties = "left out here" if skip else "count as right; their share is shown"
    st.caption("Accuracy: the routed expert (a mixture: its largest weight) is among the tied best experts of the "
               f"query (every-expert ties {ties}). Regret: oracle score − routed score, ×100. The average row is the "
               "mean over datasets; its queries are the total.")
    shown = report.assign(accuracy=100 * report["accuracy"], regret=100 * report["regret"],
                          all_tie=100 * report["all_tie"])
    shown.columns = ["accuracy %", "regret ×100", "every expert ties %", "queries"]
    if skip:
        shown = shown.drop(columns="every expert ties %")
    a1, a2 = st.columns([1, 1])
    one = st.column_config.NumberColumn(format="%.1f")
    a1.dataframe(shown, width="stretch", column_config={
        "accuracy %": one, "regret ×100": one, "every expert ties %": one,
        "queries": st.column_config.NumberColumn(format="%d")})
    a2.plotly_chart(_regret_bars(ws, report), width="stretch")


def _regret_bars(ws, report) -> go.Figure:
    """Mean regret per dataset (the average row left out: the bars are the datasets it averages)."""
    per = report.drop(index="average").reset_index().rename(columns={"index": "dataset"}).dropna(subset=["regret"])
    per = per.assign(dataset=per["dataset"].map(esc), regret100=100 * per["regret"])
    fig = px.bar(per, x="dataset", y="regret100", color="dataset",
                 color_discrete_map={esc(k): v for k, v in dataset_palette(ws).items()},
                 custom_data=["accuracy", "queries"])
    fig.update_traces(hovertemplate="dataset %{x}<br>mean regret %{y:.1f}<br>accuracy %{customdata[0]:.3f}"
                                    "<br>%{customdata[1]} queries<extra></extra>")
    fig.update_layout(showlegend=False)  # the axis names the datasets
    return _axes(finish(fig, "dataset", "mean regret ×100", height=320), list(per["dataset"]))


def _confusion(conf) -> None:
    """Oracle expert × routed expert counts: which experts the router mistakes for which."""
    st.subheader("Confusion: oracle expert × routed expert")
    if conf.empty:
        st.info("No queries left: untick 'Leave out queries where every expert ties'.")
        return
    fig = go.Figure(go.Heatmap(z=conf.to_numpy(), x=[esc(c) for c in conf.columns], y=[esc(i) for i in conf.index],
                               colorscale="Oranges",
                               text=conf.to_numpy(), texttemplate="%{text}",
                               hovertemplate="oracle %{y}<br>routed %{x}<br>%{z} queries<extra></extra>",
                               colorbar=dict(title="queries")))
    fig.update_yaxes(autorange="reversed")
    fig = finish(fig, "routed expert (a mixture: its largest weight)",
                 "oracle expert (first of tied best; last row: every expert ties)", height=420)
    st.plotly_chart(_axes(fig, list(conf.columns), width=700), width="stretch")


def _margins(qt, strategy: str) -> None:
    """The margin histogram by routing outcome: whether a wrong route comes with a small margin."""
    st.subheader("Routing margins")
    margins = qt.dropna(subset=["margin"])
    if margins.empty:
        st.info(f"{safe.md(strategy)} has no margin (it does not score experts): pick a router.")
        return
    margins = margins.assign(outcome=margins["correct"].map({True: "correct", False: "wrong"}),
                             hover=[wrap(t, 60) for t in margins["text"]], qid=margins["qid"].map(esc))
    fig = px.histogram(margins, x="margin", color="outcome", marginal="rug", nbins=30,
                       color_discrete_map=CORRECT_COLOURS, hover_data={"hover": True, "qid": True})
    fig.update_traces(selector=dict(type="box"), hovertemplate="%{customdata[0]}<extra></extra>")
    st.plotly_chart(finish(fig, "margin (top-1 − top-2 router score)", "queries", height=360,
                           legend="routing"), width="stretch")


def _pairs(pairs) -> None:
    """The (oracle, routed) pairs of wrongly routed queries, most frequent first, each with an example query."""
    st.subheader("Most confused expert pairs")
    if pairs.empty:
        st.success("No wrongly routed query: every routed expert is among the tied best.")
        return
    st.caption(f"{int(pairs['queries'].sum())} wrongly routed queries in {len(pairs)} (oracle, routed) "
               "pairs, most frequent first.")
    st.dataframe(pairs.assign(mean_regret=100 * pairs["mean_regret"]), hide_index=True,
                 width="stretch", height=min(36 + 35 * len(pairs), 420), column_config={
                     "oracle": "oracle expert", "routed": "routed to",
                     "queries": st.column_config.NumberColumn("queries", format="%d"),
                     "mean_regret": st.column_config.NumberColumn("mean regret ×100", format="%.1f"),
                     "example": st.column_config.TextColumn("example query", width="large")})


if __name__ == "__main__":
    render()
