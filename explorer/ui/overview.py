"""Overview: the dataset × strategy table, significance against a reference, the oracle gap, a grouped bar chart,
and downloads (CSV of the table, TREC run of any strategy)."""

from __future__ import annotations

from functools import partial

import plotly.express as px
import streamlit as st

from explorer.export import safe_name, trec_run_text
from explorer.ui import safe, state
from explorer.ui.style import finish, strategy_palette


def render() -> None:
    ws = state.workspace()
    st.title("Overview")
    st.caption("Mean per-query score of every routing strategy on every dataset (test queries), with the macro "
               "average over datasets. Bold: the best strategy per dataset that does not read the answers "
               "(oracles excluded). ▲/▼: significantly better/worse than the reference (paired t-test, Holm).")
    state.score_note()
    c1, c2, c3 = st.columns([1, 1, 2])
    measure = state.synced(st.selectbox, "Measure", "measure", ws.measures, ws.measures[0], container=c1)
    ref_default = ws.manifest.get("reference", "base")
    reference = state.synced(st.selectbox, "Reference for significance", "reference", ws.strategies,
                             ref_default if ref_default in ws.strategies else ws.strategies[0], container=c2)
    with c3:
        st.write("")
        show_sig = st.toggle("Significance marks", value=True, key="overview_sig",
                             help="Paired t-test per dataset against the reference, Holm-corrected across "
                                  "strategies (2,000 resamples for the randomization test).")
    marks = {}
    if show_sig:
        sig = state.cached("analysis:significance_table", measure, reference)
        marks = _marks(sig)
    view = state.cached("views:overview", measure, marks)
    st.markdown(view["markdown"])
    gap = view["gap"]
    if "average" in gap.index:
        st.caption(f"Gap to the instance oracle on average: {100 * gap['average']:.1f} points of {safe.md(measure)} "
                   "(what a perfect per-query router would add over the best real strategy).")

    st.subheader("Grouped bars")
    defaults = [s for s in ("base", "multi-task", "dataset-router", "pilot-mean", "pilot-nearest", "prototype-merge",
                            "dataset-oracle", "instance-oracle") if s in ws.strategies]
    chosen = state.synced(st.multiselect, "Strategies in the chart", "cols", ws.strategies, defaults)
    if not chosen:
        st.info("Pick one or more strategies above to draw the chart.")
    else:
        frame = state.cached("views:bar_frame", measure, list(chosen))
        # names and descriptions from the manifest, escaped for Plotly (the palette keyed alike)
        frame = frame.assign(**{c: frame[c].map(safe.plot) for c in ("dataset", "strategy", "description")})
        palette = {safe.plot(k): v for k, v in strategy_palette(ws).items()}
        fig = px.bar(frame, x="dataset", y="score", color="strategy", barmode="group",
                     color_discrete_map=palette, hover_data={"description": True, "score": ":.1f"},
                     category_orders={"strategy": [safe.plot(s) for s in chosen]})
        lo = max(0.0, frame["score"].min() - 5)
        fig.update_yaxes(range=[lo, min(100.0, frame["score"].max() + 2)])
        st.plotly_chart(finish(fig, "dataset", f"{safe.plot(measure)} ×100", height=420, legend="strategy"),
                        width="stretch")

    st.subheader("Downloads")
    d1, d2, d3, d4 = st.columns([1, 1, 1, 1])
    with d1:
        st.download_button("Table (CSV, ×100)", state.cached("views:overview_csv", measure),
                           file_name=f"overview_{safe_name(measure)}.csv", mime="text/csv")
    run_strategy = d2.selectbox("Run of strategy", ws.strategies, key="dl_strategy",
                                index=ws.strategies.index(state.param("strategy", ws.strategies[0]))
                                if state.param("strategy") in ws.strategies else 0)
    run_dataset = d3.selectbox("on dataset", ws.datasets, key="dl_dataset")
    with d4:
        st.write("")
        # generated on click, not on every render (reading the stored runs takes seconds on a large workspace)
        st.download_button("TREC run", partial(trec_run_text, ws, run_strategy, run_dataset),
                           file_name=f"{safe_name(run_dataset)}.{safe_name(run_strategy)}.trec", mime="text/plain")


def _marks(sig):
    from explorer.analysis import marks

    return marks(sig)


if __name__ == "__main__":
    render()
