"""Overview: the dataset × strategy table, significance against a reference, per-query wins / ties / losses, the
oracle gap, a slice by query metadata, a grouped bar chart, and downloads (CSV, LaTeX and Markdown of the table,
TREC run of any strategy)."""

from __future__ import annotations

from functools import partial

import plotly.express as px
import streamlit as st

from explorer import analysis, export, views
from explorer.export import safe_name, trec_run_text
from explorer.cohort import COHORT_FIELD
from explorer.reviewer_stats import cell_statistics
from explorer.ui import cohort as cohorts
from explorer.ui import safe, state, waterfall
from explorer.ui.state import NO_VALUE  # the slice of the queries without the field ("" does not survive a URL)
from explorer.ui.style import finish, strategy_palette
from explorer.views.overview import REFERENCE_MARK

ALL = ""  # the slice selector's "no slice"


def _slice(ws, options) -> tuple[str, str] | None:
    """The 'slice by' selector: a metadata field and one of its values (both in the URL)."""
    c1, c2 = st.columns([1, 2])
    fields = [ALL, *options]
    field = state.synced(st.selectbox, "Slice by query metadata", "slice", fields, ALL, container=c1,
                         format_func=lambda f: "all test queries" if f == ALL else f,
                         help="Recompute the table, the significance marks, the wins/ties/losses and the chart on "
                              "the test queries whose metadata field has one value (metadata in queries.jsonl).")
    if field == ALL:
        return None
    values = options[field]
    shown = [NO_VALUE if v == "" else v for v in values["value"]]
    counts = dict(zip(shown, values["queries"]))
    value = state.synced(st.selectbox, f"{safe.md(field)} is", "slice_value", shown, shown[0], container=c2,
                         format_func=lambda v: f"{v} · {counts.get(v, 0)} queries")
    return (field, "" if value == NO_VALUE else value)


def render() -> None:
    ws = state.workspace()
    st.title("Overview")
    st.caption("Mean per-query score of every routing strategy on every dataset (test queries), with the macro "
               "average over datasets. Bold: every strategy tied for the best score of its column, at the shown "
               "precision, among those that do not read the answers (oracles excluded). ▲/▼: significantly "
               "better/worse than the reference: a paired t-test and a paired randomization test (2,000 "
               "resamples) both at p < 0.05 after Holm correction across strategies; on the average column, both "
               "tests run over every test query of every dataset, each query's difference weighted by 1 / (number "
               f"of datasets × its dataset's queries) so that they test the macro average. {REFERENCE_MARK}: the "
               "reference row.")
    state.score_note()
    measure, reference, show_sig = _controls(ws)
    cohort = cohorts.current(ws)
    if cohort:
        cohorts.banner(ws, cohort, "The table, its tests, the wins/ties/losses and the charts are computed on its "
                                   "queries (the metadata slice is off while a cohort filters the page).")
        slice_by = (COHORT_FIELD, cohort["text"])
    else:
        slice_by = _slice(ws, state.cached(views.slice_options))
    sig = state.cached(analysis.significance_table, measure, reference, slice_by=slice_by)  # once for both
    view = state.cached(views.overview_table, measure, reference, bool(show_sig), slice_by, sig=sig)
    if slice_by and not cohort:
        n = view["queries"]
        per = ", ".join(f"{safe.md(d)} {n[d]}" for d in ws.datasets)
        st.info(f"Slice **{safe.md(views.slice_label(slice_by))}**: {n['average']} of {len(ws.eval_rows())} test "
                f"queries ({per}). A dataset without any shows —; the average is over the datasets that have some.")
    st.markdown(view["markdown"])
    _table_notes(ws, view, measure)
    _statistics(ws, measure, reference, slice_by, sig)
    _win_tie_loss(measure, reference, slice_by)
    _waterfall(ws, measure, reference, cohort)
    _bars(ws, measure, slice_by)
    _downloads(ws, measure, reference, show_sig, slice_by)
    if cohort:
        cohorts.downloads(ws, cohort, measure, "overview_cohort")


def _controls(ws) -> tuple[str, str, bool]:
    """The measure, the reference of the significance marks and whether to show them (each kept in the URL)."""
    c1, c2, c3 = st.columns([1, 1, 2])
    measure = state.synced(st.selectbox, "Measure", "measure", ws.measures, ws.label_measure, container=c1)
    ref_default = ws.manifest.get("reference", "base")
    reference = state.synced(st.selectbox, "Reference for significance", "reference", ws.strategies,
                             ref_default if ref_default in ws.strategies else ws.strategies[0], container=c2)
    with c3:
        st.write("")
        show_sig = state.synced(st.toggle, "Significance marks", "sig", None, True, cast=state.as_bool,
                                help="▲/▼ when both a paired t-test and a paired randomization test against the "
                                     "reference are significant at p < 0.05, Holm-corrected across strategies.")
    return measure, reference, show_sig


def _table_notes(ws, view: dict, measure: str) -> None:
    """What the table alone does not say: the gap to the instance oracle, why a gap can be negative, the
    zero-shot average, and notes on judged splits."""
    gap = view["gap"]
    notes = []
    if "average" in gap.index and gap["average"] == gap["average"]:
        notes.append(f"Gap to the instance oracle on average: {100 * gap['average']:.1f} points of "
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
    notes += [safe.md(n) for n in state.cached(analysis.judged_split_notes, measure)]
    if view["saturated"]:
        notes.append(safe.md(views.saturation_note(view, measure)))
    if notes:
        st.caption(" ".join(notes))


def _statistics(ws, measure: str, reference: str, slice_by, sig) -> None:
    """Per cell: the tests' p-values before and after Holm, the mean difference with its 95% interval and d_z."""
    with st.expander("Statistics per cell (p-values, 95% interval, effect size)"):
        st.caption(f"Every strategy against {safe.md(reference)} per dataset and on the average: the mean paired "
                   "difference (×100) with its 95% paired-t confidence interval, Cohen's d_z (mean difference / "
                   "standard deviation of the differences), and the p-values of the paired t-test and the paired "
                   "randomization test before and after Holm's correction across strategies. ▲/▼ in the table "
                   "above: both Holm-corrected p-values below 0.05.")
        stats = state.cached(cell_statistics, measure, reference, slice_by=slice_by, sig=sig)
        columns = [*ws.datasets, analysis.AVERAGE]
        column = st.selectbox("Column", ["every column", *columns], key="overview_stats_column")
        shown = stats if column == "every column" else stats[stats["dataset"] == column]
        table = shown.assign(delta=views.points(shown["delta"], 2), low=views.points(shown["low"], 2),
                             high=views.points(shown["high"], 2))
        p = lambda label: st.column_config.NumberColumn(label, format="%.4f")  # noqa: E731
        st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 460),
                     column_config={"delta": st.column_config.NumberColumn("Δ ×100", format="%+.2f"),
                                    "low": st.column_config.NumberColumn("95% low", format="%+.2f"),
                                    "high": st.column_config.NumberColumn("95% high", format="%+.2f"),
                                    "d_z": st.column_config.NumberColumn("d_z", format="%+.2f"),
                                    "p_t": p("p (t)"), "p_t_holm": p("p (t, Holm)"), "p_rand": p("p (rand.)"),
                                    "p_rand_holm": p("p (rand., Holm)"),
                                    "significant": st.column_config.CheckboxColumn("▲/▼"),
                                    "n": st.column_config.NumberColumn("queries")})


def _waterfall(ws, measure: str, reference: str, cohort) -> None:
    """One strategy against the reference, query by query (the strategy is the page's `strategy`)."""
    st.subheader("Per-query difference against the reference")
    # its own parameter (`vs`): a widget keyed by the pages' shared `strategy` would not carry it over to them
    strategy = state.synced(st.selectbox, "Strategy against the reference", "vs", ws.strategies,
                            views.default_strategy(ws), container=st.columns([1, 2])[0])
    if strategy == reference:
        st.info(f"{safe.md(strategy)} is the reference: pick another strategy to compare with it.")
        return
    picked = waterfall.draw(ws, reference, strategy, measure, cohort["rows"] if cohort else None,
                            "overview_waterfall")
    if len(picked) == 1:
        state.open_query(picked[0], dataset=ws.queries.iloc[picked[0]]["dataset"], strategy=strategy)


def _win_tie_loss(measure: str, reference: str, slice_by) -> None:
    """Per-query wins / ties / losses against the reference: how often, beside how much."""
    st.subheader("Wins / ties / losses per query")
    st.caption(f"On how many test queries each strategy scores above / level with / below the reference "
               f"{safe.md(reference)} under {safe.md(measure)} (PyTerrier's improved/degraded counts, ranx's "
               "win-tie-loss); the last column sums the datasets. The marks above say which differences are "
               "significant.")
    wtl = state.cached(views.win_tie_loss_table, measure, reference, slice_by)
    with st.container(height=420):
        st.markdown(wtl["markdown"])


def _bars(ws, measure: str, slice_by) -> None:
    """The grouped bar chart of the strategies picked (a few by default: the table has them all)."""
    st.subheader("Grouped bars")
    defaults = [s for s in ("base", "multi-task", "dataset-router", "pilot-mean", "pilot-nearest", "prototype-merge",
                            "dataset-oracle", "instance-oracle") if s in ws.strategies]
    chosen = state.synced(st.multiselect, "Strategies in the chart", "cols", ws.strategies, defaults)
    if not chosen:
        st.info("Pick one or more strategies above to draw the chart.")
        return
    frame = state.cached(views.sliced_bar_frame, measure, list(chosen), slice_by).dropna(subset=["score"])
    # names and descriptions from the manifest, escaped for Plotly (the palette keyed alike)
    frame = frame.assign(**{c: frame[c].map(safe.plot) for c in ("dataset", "strategy", "description")})
    palette = {safe.plot(k): v for k, v in strategy_palette(ws).items()}
    fig = px.bar(frame, x="dataset", y="score", color="strategy", barmode="group",
                 color_discrete_map=palette, hover_data={"description": True, "score": ":.1f"},
                 category_orders={"strategy": [safe.plot(s) for s in chosen]})
    if len(frame):
        lo = max(0.0, frame["score"].min() - 5)
        fig.update_yaxes(range=[lo, min(100.0, frame["score"].max() + 2)])
    st.plotly_chart(finish(fig, "dataset", f"{safe.plot(measure)} ×100", height=420, legend="strategy"),
                    width="stretch")


def _downloads(ws, measure: str, reference: str, show_sig: bool, slice_by) -> None:
    """The table as CSV, LaTeX and Markdown (as shown: measure, reference, marks, slice), and any strategy's TREC
    run on any dataset."""
    st.subheader("Downloads")
    tag = safe_name(measure) + (f"_{safe_name(slice_by[0])}-{safe_name(slice_by[1])}" if slice_by else "")
    d1, d2, d3 = st.columns([1, 1, 1])
    d1.download_button("Table (CSV, ×100)", state.cached(views.sliced_overview_csv, measure, slice_by),
                       file_name=f"overview_{tag}.csv", mime="text/csv")
    paper = partial(state.cached, export.paper_table, measure, reference, with_marks=bool(show_sig),
                    slice_by=slice_by)
    d2.download_button("Table for a paper (LaTeX)", paper(fmt="latex"), file_name=f"overview_{tag}.tex",
                       mime="text/x-tex", help="booktabs and amssymb; best in bold, ▲/▼ as superscript triangles.")
    d3.download_button("Table for a paper (Markdown)", paper(fmt="markdown"), file_name=f"overview_{tag}.md",
                       mime="text/markdown", help="The table above with its caption, names escaped.")
    d4, d5, d6 = st.columns([1, 1, 1])
    run_strategy = d4.selectbox("Run of strategy", ws.strategies, key="dl_strategy",
                                index=ws.strategies.index(state.param("strategy", ws.strategies[0]))
                                if state.param("strategy") in ws.strategies else 0)
    run_dataset = d5.selectbox("on dataset", ws.datasets, key="dl_dataset")
    with d6:
        st.write("")
        # generated on click, not on every render (reading the stored runs takes seconds on a large workspace)
        st.download_button("TREC run", partial(trec_run_text, ws, run_strategy, run_dataset),
                           file_name=f"{safe_name(run_dataset)}.{safe_name(run_strategy)}.trec", mime="text/plain")


if __name__ == "__main__":
    render()
