"""Overview: the dataset × strategy table, significance against a reference, per-query wins / ties / losses, the
oracle gap, a slice by query metadata, a grouped bar chart, and downloads (CSV, LaTeX and Markdown of the table,
TREC run of any strategy)."""

from __future__ import annotations

from functools import partial

import plotly.express as px
import streamlit as st

from explorer import views
from explorer.analysis import metadata_values
from explorer.export import safe_name, trec_run_text
from explorer.ui import cohort as cohorts
from explorer.ui import safe, session, state, waterfall
from explorer.ui.style import finish, strategy_palette
from explorer.views.base import NO_VALUE
from explorer.views.overview import NO_SLICE, PAGE, REFERENCE_MARK


def _controls(c) -> None:
    """The measure, the reference of the significance marks, whether to show them, and the slice (each kept in
    the URL)."""
    c1, c2, c3 = st.columns([1, 1, 2])
    c("measure", "Measure", container=c1)
    c("reference", "Reference for significance", container=c2)
    with c3:
        st.write("")
        c("sig", "Significance marks", draw=st.toggle,
          help="▲/▼ when both a paired t-test and a paired randomization test against the reference are "
               "significant at p < 0.05, Holm-corrected across strategies.")
    s1, s2 = st.columns([1, 2])
    c("slice", "Slice by query metadata", container=s1,
      format_func=lambda f: "all test queries" if f == NO_SLICE else f,
      help="Recompute the table, the significance marks, the wins/ties/losses and the chart on the test queries "
           "whose metadata field has one value (metadata in queries.jsonl).")
    if c["slice"]:
        values = metadata_values(c.ws, c["slice"])
        counts = dict(zip(values["value"].replace("", NO_VALUE), values["queries"]))
        c("slice_value", f"{safe.md(c['slice'])} is", container=s2,
          format_func=lambda v: f"{v} · {counts.get(v, 0)} queries")
    with st.expander("Compare with a second workspace", expanded=bool(c["compare"])):
        c("compare", "Compare with workspace (folder)", help="A second workspace built on the same datasets and evaluated queries (another base model, another "
           "recipe): its systems and strategies appear as B:<name>, paired query by query.")
    groups = views.group_counts(c.ws)
    c("groups", "Strategy groups in the table", format_func=lambda g: f"{g} ({groups.get(g, 0)})",
      help="choose: routers that pick one expert; mix: fusion of the experts' runs and soft routing; post-retrieval: "
           "routers that look at every expert's ranking first; lexical: BM25 and its hybrids; fixed: one system "
           "always; oracle: upper bounds. Bold, the gap and the marks stay those of the whole table.")


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption("Mean per-query score of every routing strategy on every dataset (test queries), with the macro "
               "average over datasets. Bold: every strategy tied for the best score of its column, at the shown "
               "precision, among those that do not read the answers (oracles excluded). ▲/▼: significantly "
               "better/worse than the reference: a paired t-test and a paired randomization test (2,000 "
               "resamples) both at p < 0.05 after Holm correction across strategies; on the average column, both "
               "tests run over every test query of every dataset, each query's difference weighted by 1 / (number "
               f"of datasets × its dataset's queries) so that they test the macro average. {REFERENCE_MARK}: the "
               "reference row.")
    state.score_note()
    _controls(c)
    view = c.data()
    cohorts.banner(c, view["cohort"], "The table, its tests, the wins/ties/losses and the charts are computed on its "
                                      "queries (the metadata slice is off while a cohort filters the page).")
    if view["slice"] and not view["cohort"]:
        n = view["queries"]
        per = ", ".join(f"{safe.md(d)} {n[d]}" for d in ws.datasets)
        st.info(f"Slice **{safe.md(views.slice_label(view['slice']))}**: {n['average']} of {len(ws.eval_rows())} "
                f"test queries ({per}). A dataset without any shows —; the average is over the datasets that have "
                "some.")
    st.markdown(view["markdown"])
    _table_notes(ws, view, view["measure"])
    _statistics(ws, view)
    _win_tie_loss(view)
    _waterfall(c, view)
    _bars(c, view)
    _downloads(c, view)
    if view["cohort"]:
        cohorts.downloads(c, view["cohort"], view["measure"])


def _table_notes(ws, view: dict, measure: str) -> None:
    """What the table alone does not say: the gap to the instance oracle, why a gap can be negative, the
    zero-shot average, and notes on judged splits."""
    gap = view["oracle_gap"]
    notes = []
    if "average" in gap.index and gap["average"] == gap["average"]:
        notes.append(f"Gap to the instance oracle on average: {gap['average']:.1f} points of "
                     f"{safe.md(measure)} (what a perfect per-query router would add over the best real strategy).")
    if view["negative_gap"]:
        notes.append(f"† A negative gap is shown as it is: the instance oracle picks each query's expert among the "
                     f"routing candidates by its {safe.md(ws.label_measure)}, so under {safe.md(measure)}, or "
                     f"against a strategy outside its choice (the base model, the multi-task expert, a merged "
                     f"adapter), a real strategy can score higher "
                     f"({', '.join(safe.md(c) for c in view['negative_gap'])}).")
    if ws.zero_shot_datasets:
        notes.append("Zero-shot average: over " + ", ".join(safe.md(d) for d in ws.zero_shot_datasets)
                     + ", the datasets without an expert or pilot queries (role = \"evaluate\").")
    notes += [safe.md(n) for n in view["judged_notes"]]
    if view["saturated"]:
        notes.append(safe.md(view["saturation_note"]))
    if notes:
        st.caption(" ".join(notes))


def _statistics(ws, view: dict) -> None:
    """Per cell: the tests' p-values before and after Holm, the mean difference with its 95% interval and d_z."""
    with st.expander("Statistics per cell (p-values, 95% interval, effect size)"):
        st.caption(f"Every strategy against {safe.md(view['reference'])} per dataset and on the average: the mean "
                   "paired difference (×100) with its 95% paired-t confidence interval, Cohen's d_z (mean difference "
                   "/ standard deviation of the differences), and the p-values of the paired t-test and the paired "
                   "randomization test before and after Holm's correction across strategies. ▲/▼ in the table "
                   "above: both Holm-corrected p-values below 0.05. A run read from a file is tested on the datasets "
                   "it ranks only.")
        stats = view["statistics"]
        column = st.selectbox("Column", ["every column", *ws.datasets, "average"], key="overview_stats_column")
        shown = stats if column == "every column" else stats[stats["dataset"] == column]
        shown = shown.assign(**{k: shown[k].round(2) for k in ("delta", "low", "high")})
        p = lambda label: st.column_config.NumberColumn(label, format="%.4f")  # noqa: E731
        st.dataframe(shown, hide_index=True, width="stretch", height=min(38 + 35 * len(shown), 460),
                     column_config={"delta": st.column_config.NumberColumn("Δ ×100", format="%+.2f"),
                                    "low": st.column_config.NumberColumn("95% low", format="%+.2f"),
                                    "high": st.column_config.NumberColumn("95% high", format="%+.2f"),
                                    "d_z": st.column_config.NumberColumn("d_z", format="%+.2f"),
                                    "p_t": p("p (t)"), "p_t_holm": p("p (t, Holm)"), "p_rand": p("p (rand.)"),
                                    "p_rand_holm": p("p (rand., Holm)"),
                                    "significant": st.column_config.CheckboxColumn("▲/▼"),
                                    "n": st.column_config.NumberColumn("queries")})


def _waterfall(c, view: dict) -> None:
    """One strategy (`vs`) against the reference, query by query; a click on a bar opens its query."""
    from explorer.views.inspector import PAGE as INSPECTOR

    st.subheader("Per-query difference against the reference")
    c("vs", "Strategy against the reference", container=st.columns([1, 2])[0])
    if view["waterfall"] is None:
        st.info(f"{safe.md(view['reference'])} is the reference: pick another strategy to compare with it.")
        return
    picked = waterfall.draw(c.ws, view["waterfall"], view["measure"], "overview_waterfall")
    if len(picked) == 1:
        session.open_page(INSPECTOR, c.ws, row=picked[0], strategy=c["vs"])


def _win_tie_loss(view: dict) -> None:
    """Per-query wins / ties / losses against the reference: how often, beside how much."""
    st.subheader("Wins / ties / losses per query")
    st.caption(f"On how many test queries each strategy scores above / level with / below the reference "
               f"{safe.md(view['reference'])} under {safe.md(view['measure'])} (PyTerrier's improved/degraded counts, "
               "ranx's win-tie-loss); the last column sums the datasets. The marks above say which differences are "
               "significant.")
    with st.container(height=420):
        st.markdown(view["win_tie_loss"]["markdown"])


def _bars(c, view: dict) -> None:
    """The grouped bar chart of the strategies picked (a few by default: the table has them all), from zero."""
    st.subheader("Grouped bars")
    chosen = c("cols", "Strategies in the chart")
    if not chosen:
        st.info("Pick one or more strategies above to draw the chart.")
        return
    frame = view["bars"]
    # names and descriptions from the manifest, escaped for Plotly (the palette keyed alike)
    frame = frame.assign(**{k: frame[k].map(safe.plot) for k in ("dataset", "strategy", "description")})
    palette = {safe.plot(k): v for k, v in strategy_palette(c.ws, chosen).items()}
    fig = px.bar(frame, x="dataset", y="score", color="strategy", barmode="group",
                 color_discrete_map=palette, hover_data={"description": True, "score": ":.1f"},
                 category_orders={"strategy": [safe.plot(s) for s in chosen]})
    fig.update_yaxes(range=[0, min(100.0, frame["score"].max() + 2) if len(frame) else 100], rangemode="tozero")
    st.plotly_chart(finish(fig, "dataset", f"{safe.plot(view['measure'])} ×100 (axis from 0)", height=420,
                           legend="strategy"), width="stretch")


def _downloads(c, view: dict) -> None:
    """The table as CSV, LaTeX and Markdown (as shown: measure, reference, marks, slice), and any strategy's TREC
    run on any dataset."""
    ws = c.ws
    st.subheader("Downloads")
    cut = view["slice"]
    tag = safe_name(view["measure"]) + (f"_{safe_name(cut[0])}-{safe_name(cut[1])}" if cut else "")
    d1, d2, d3 = st.columns([1, 1, 1])
    d1.download_button("Table (CSV, ×100)", view["csv"], file_name=f"overview_{tag}.csv", mime="text/csv")
    d2.download_button("Table for a paper (LaTeX)", view["paper_latex"], file_name=f"overview_{tag}.tex",
                       mime="text/x-tex", help="booktabs and amssymb; best in bold, ▲/▼ as superscript triangles.")
    d3.download_button("Table for a paper (Markdown)", view["paper_markdown"], file_name=f"overview_{tag}.md",
                       mime="text/markdown", help="The table above with its caption, names escaped.")
    d4, d5, d6 = st.columns([1, 1, 1])
    run_strategy = c("strategy", "Run of strategy", container=d4)
    run_dataset = d5.selectbox("on dataset", ws.datasets, key="dl_dataset")
    with d6:
        st.write("")
        # generated on click, not on every render (reading the stored runs takes seconds on a large workspace)
        st.download_button("TREC run", partial(trec_run_text, ws, run_strategy, run_dataset),
                           file_name=f"{safe_name(run_dataset)}.{safe_name(run_strategy)}.trec", mime="text/plain")


if __name__ == "__main__":
    render()
