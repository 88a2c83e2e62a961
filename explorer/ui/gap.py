"""Oracle gap: how much of the gap between the reference and the instance oracle each strategy closes (with a
seeded bootstrap interval), and where one strategy's gap goes: per dataset, by part, and per region of the map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import gap, views
from explorer.analysis import AVERAGE
from explorer.ui import cohort as cohorts
from explorer.ui import safe, session, state
from explorer.ui.safe import plot as esc
from explorer.ui.style import finish
from explorer.views.errors import PAGE as ERRORS
from explorer.views.gap import PAGE

PART_COLOURS = {gap.ROUTING_ERROR: "#d62728", gap.NO_EXPERT_HELPS: "#ff7f0e", gap.TIES: "#9e9e9e",
                gap.AT_ORACLE: "#2ca02c"}
PART_HELP = {gap.ROUTING_ERROR: "an expert beats base on the query and the strategy stays below the oracle",
             gap.NO_EXPERT_HELPS: "the oracle's expert is no better than base on the query",
             gap.TIES: "every expert scores the same on the query: no choice could matter",
             gap.AT_ORACLE: "the strategy reaches the oracle (0; below 0 where a mixture beats it)"}


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption("The instance oracle (the best expert of each test query) bounds what routing can reach. How much of "
               "the gap between the reference and the oracle does each strategy close, and where does the rest go?")
    state.score_note()
    if views.instance_oracle(ws) is None:
        st.info("This workspace has no oracle strategy, so there is no oracle gap to show. Rebuild it with the "
                "instance oracle among its strategies.")
        return
    _controls(c)
    view = c.data()
    cohorts.banner(c, view["cohort"], "Every table and chart below is computed on its queries only.")
    _closed(ws, view)
    _decomposition(ws, view)
    if view["layout"]:
        _regions(c, view)


def _controls(c) -> None:
    c1, c2, c3, c4 = st.columns([2, 1, 1.4, 1])
    c("strategy", "Strategy (where its gap goes)", container=c1)
    c("measure", "Measure", container=c2)
    c("reference", "Reference (0% closed)", container=c3)
    if views.layout_methods(c.ws):
        c("layout", "Map regions on", draw=st.radio, container=c4, format_func=lambda m: safe.md(str(m).upper()))


def _closed(ws, view: dict) -> None:
    """% of the gap closed: the average with its interval for every strategy (chart), and per dataset (table)."""
    st.subheader("% of the gap closed")
    st.caption(f"(strategy − {safe.md(view['reference'])}) / ({safe.md(view['oracle'])} − "
               f"{safe.md(view['reference'])}) on {safe.md(view['measure'])}: 0% is the reference, 100% the oracle. "
               f"Bars: the average over datasets; whiskers: its {view['confidence']:.0%} percentile bootstrap "
               f"interval ({view['resamples']:,} resamples of the test queries within each dataset, seed "
               f"{view['seed']}). — where the oracle is no better than the reference, and for a run read from a file "
               "on the datasets it does not rank (so it has no average).")
    avg = view["closed"][view["closed"]["dataset"] == AVERAGE].set_index("strategy").reindex(ws.strategies)
    oracles = set(views.oracle_strategies(ws))
    avg = avg[avg["closed"].notna()]
    fig = go.Figure(go.Bar(
        y=[esc(s) for s in avg.index], x=100 * avg["closed"], orientation="h",
        marker_color=["#9e9e9e" if s in oracles else "#4c78a8" for s in avg.index],
        error_x=dict(type="data", symmetric=False, array=100 * (avg["high"] - avg["closed"]),
                     arrayminus=100 * (avg["closed"] - avg["low"]), color="#333", thickness=1.2),
        hovertext=[f"<b>{esc(s)}</b><br>{100 * r.closed:.1f}% closed ({100 * r.low:.1f} – {100 * r.high:.1f})<br>"
                   f"score {100 * r.score:.1f} · reference {100 * r.reference_score:.1f} · oracle "
                   f"{100 * r.oracle_score:.1f}" for s, r in avg.iterrows()],
        hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.add_vline(x=0, line_color="#666")
    fig.add_vline(x=100, line_dash="dot", line_color="#666")
    st.plotly_chart(finish(fig, "% of the gap closed (average; grey: oracles)", "", height=max(300, 22 * len(avg))),
                    width="stretch", key="gap_closed_chart")
    wide = (100 * view["wide"]).round(1)
    wide[f"{AVERAGE} interval"] = [f"{100 * r.low:.1f} – {100 * r.high:.1f}" if r.low == r.low else "—"
                                   for r in view["closed"][view["closed"]["dataset"] == AVERAGE].set_index(
                                       "strategy").reindex(wide.index).itertuples()]
    st.dataframe(wide, width="stretch", height=min(38 + 35 * len(wide), 420), column_config={
        c: st.column_config.NumberColumn(c, format="%.1f%%") for c in view["wide"].columns})


def _decomposition(ws, view: dict) -> None:
    """Where the strategy's gap goes, per dataset: one stacked bar per dataset, the table, and links to each part's
    queries in Error analysis."""
    strategy = view["strategy"]
    st.subheader(f"Where the gap of {safe.md(strategy)} goes")
    d = view["decomposition"]
    st.caption(f"Per dataset, the gap {safe.md(view['oracle'])} − {safe.md(strategy)} "
               f"({safe.md(view['measure'])} ×100) split by the queries it comes from; the parts add up to the gap. "
               + " ".join(f"{safe.md(p)}: {PART_HELP[p]}." for p in view["parts"]))
    if d.empty:
        st.info("No test query to decompose.")
        return
    fig = go.Figure()
    for p in view["parts"]:
        fig.add_trace(go.Bar(x=[esc(i) for i in d.index], y=100 * d[p].astype(float), name=esc(p),
                             marker_color=PART_COLOURS[p],
                             hovertext=[f"{esc(i)}: {esc(p)} {100 * float(d.loc[i, p]):+.1f} points from "
                                        f"{int(d.loc[i, f'{p} queries'])} queries" for i in d.index],
                             hovertemplate="%{hovertext}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[esc(i) for i in d.index], y=100 * d["gap"].astype(float), mode="markers",
                             name="the gap", marker=dict(symbol="line-ew-open", size=26, color="black",
                                                         line=dict(width=3))))
    fig.update_layout(barmode="relative")
    st.plotly_chart(finish(fig, "dataset", "points ×100", height=380, legend="part"), width="stretch",
                    key="gap_parts_chart")
    table = pd.DataFrame({"queries": d["queries"].astype(int), "gap": 100 * d["gap"].astype(float)})
    for p in view["parts"]:
        table[p] = 100 * d[p].astype(float)
        table[f"{p} (queries)"] = d[f"{p} queries"].astype(int)
    st.dataframe(table, width="stretch", column_config={c: st.column_config.NumberColumn(c, format="%.1f")
                                                        for c in ["gap", *view["parts"]]})
    st.markdown("**Open a part's queries in Error analysis:**")
    links = st.columns(len(view["parts"]))
    for col, p in zip(links, view["parts"]):
        params = {"strategy": strategy, "gap": p, **({"measure": view["measure"]}
                                                     if view["measure"] != ws.label_measure else {})}
        col.page_link(ERRORS.script, label=p, icon=":material/bug_report:", query_params=params)


def _regions(c, view: dict) -> None:
    """The gap per region of the map: a grid over the layout, each cell coloured by its routing-error share; a
    region can become the cohort."""
    r, cohort = view["regions"], view["cohort"]
    st.subheader("Per region of the routing map")
    st.caption(f"The {safe.md(str(view['layout']).upper())} map cut into a {view['grid']} × {view['grid']} grid "
               f"(row 0 at the top): each cell's colour is the routing-error part of {safe.md(view['strategy'])}'s "
               "gap on its test queries (×100); hover for every part. Empty cells hold no test query.")
    if r.empty:
        st.info("No test query on the map.")
        return
    grid = view["grid"]
    z = np.full((grid, grid), np.nan)
    text = np.full((grid, grid), "", dtype=object)
    for cell in r.to_dict("records"):
        z[cell["i"], cell["j"]] = 100 * cell[gap.ROUTING_ERROR]
        text[cell["i"], cell["j"]] = (f"<b>{cell['region']}</b>: {cell['queries']} queries<br>gap "
                                      f"{100 * cell['gap']:.1f}<br>" + "<br>".join(
                                          f"{esc(p)} {100 * cell[p]:+.1f} ({cell[f'{p} queries']})"
                                          for p in view["parts"]))
    fig = go.Figure(go.Heatmap(z=z, x=[f"c{j}" for j in range(grid)], y=[f"r{i}" for i in range(grid)],
                               colorscale="Reds", zmin=0, hovertext=text, hovertemplate="%{hovertext}<extra></extra>",
                               colorbar=dict(title="routing error ×100"),
                               texttemplate="%{z:.1f}", xgap=2, ygap=2))
    fig.update_yaxes(autorange="reversed")
    st.plotly_chart(finish(fig, "map columns (left → right)", "map rows (top → bottom)", height=420),
                    width="stretch", key="gap_regions_chart")
    c1, c2 = st.columns([2, 1])
    pick = c1.selectbox("Region", list(r["region"]), key="gap_region",
                        format_func=lambda g: f"{g} · {int(r.set_index('region').loc[g, 'queries'])} test queries")
    if c2.button("Make it the cohort", key="gap_region_cohort",
                 help="Filter every page by this region's test queries (kept in the link)."):
        text = views.region_cohort(c.ws, view["layout"], pick, cohort["rows"] if cohort else None)
        cohorts.save(c, text, f"map region {pick}")


if __name__ == "__main__":
    render()
