"""Error analysis: every test query with its routed, oracle and base scores, regret and margin; filter (datasets,
routing outcome, margin, query metadata), sort, download, and open any row in the Query inspector."""

from __future__ import annotations

import streamlit as st

from explorer import views
from explorer.export import safe_name
from explorer.gap import GAP_PARTS
from explorer.ui import cohort as cohorts
from explorer.ui import state

SORTS = {"regret": "regret (largest first)", "delta_base": "routed − base (worst first)",
         "margin": "margin (smallest first)", "dataset": "dataset, query id"}
# the sort keys come first after the query text, so they are visible without scrolling
LEADING = ["text", "regret", "delta_base", "margin", "kind", "gap_part"]
TRAILING = ["routed", "oracle", "routed_score", "oracle_score", "base_score", "correct", "dataset", "qid"]


def _negative(text) -> bool:
    try:
        return float(text) < 0
    except (TypeError, ValueError):
        return False


def render() -> None:
    ws = state.workspace()
    st.title("Error analysis")
    st.caption("Every test query under one strategy: the routed expert's score, the instance oracle's (the best "
               "expert for that query) and the base model's, with regret (oracle − routed) and the router's margin "
               "(top-1 − top-2). Click a row to open it in the Query inspector.")
    state.score_note()
    f = _filters(ws, views)
    cohort = cohorts.current(ws)
    cohorts.banner(ws, cohort, "Only its queries are listed.")
    t = state.cached(views.error_view, f["strategy"], f["measure"], list(f["datasets"]), bool(f["wrong"]),
                     f["margin_below"], bool(f["hurt"]), bool(f["skip"]), f["metadata"],
                     cohort["rows"] if cohort else None, f["gap"] or None)
    ascending = {"regret": False, "margin": True, "delta_base": True, "dataset": True}[f["sort"]]
    t = t.sort_values(["dataset", "qid"] if f["sort"] == "dataset" else f["sort"], ascending=ascending,
                      kind="stable")
    total = len(ws.eval_rows())
    st.markdown(f"**{len(t)}** of {total} test queries · mean regret "
                f"{views.x100(t['regret'].mean()) if len(t) else '—'} · routed worse than base on "
                f"{int((t['delta_base'] < 0).sum())}")
    if t.empty:
        st.info("No query matches these filters: loosen them (untick a box, raise the margin, or clear the "
                "dataset and metadata filters).")
        return
    shown = _table(ws, views, t, f["strategy"])
    _downloads_and_open(ws, t, shown, f["strategy"])


def _filters(ws, views) -> dict:
    """The page's controls, each kept in the URL: strategy, measure, datasets, the outcome and margin filters,
    the metadata filters and the sort. Returns them by name; `margin_below` is the margin filter in force (None
    when it is off or refused)."""
    c1, c2, c3 = st.columns([2, 1, 3])
    strategy = state.synced(st.selectbox, "Strategy", "strategy", ws.strategies, views.default_strategy(ws),
                            container=c1)
    measure = state.synced(st.selectbox, "Measure", "measure", ws.measures, ws.label_measure, container=c2)
    datasets = state.synced(st.multiselect, "Datasets", "datasets", ws.datasets, [], container=c3,
                            placeholder="all datasets")
    f1, f2, f3, f4, f5 = st.columns([1, 1, 1, 1.2, 1.4])
    as_bool = state.as_bool
    wrong = state.synced(st.checkbox, "routed ≠ oracle", "wrong", None, False, container=f1, cast=as_bool,
                         help="The routed expert is not among the tied best experts of the query.")
    hurt = state.synced(st.checkbox, "routing hurt vs base", "hurt", None, False, container=f2, cast=as_bool,
                        help="The routed score is below the base model's score.")
    skip = state.synced(st.checkbox, "hide all-expert ties", "skip_ties", None, False, container=f3, cast=as_bool)
    use_margin = state.synced(st.checkbox, "margin below", "use_margin", None, False, container=f4, cast=as_bool)
    if "qp_margin" not in st.session_state and _negative(st.query_params.get("margin")):
        state.set_params(margin=None)  # a link's negative margin falls back to the default, as any bad URL value
    margin = state.synced(st.number_input, "margin below x", "margin", None, 0.05, container=f5, cast=float,
                          step=0.01, format="%.3f", disabled=not use_margin,
                          help="A margin is top-1 − top-2 router score, never negative: give a value ≥ 0.")
    metadata = tuple((f, tuple(v)) for f, v in state.metadata_filters(
        state.cached(views.slice_options), "Query", "Keep the queries that take one of these values").items())
    s1, s2 = st.columns([1, 2])
    sort = state.synced(st.selectbox, "Sort by", "sort", list(SORTS), "regret", format_func=SORTS.get, container=s1)
    gap_part = state.synced(st.selectbox, "Part of the oracle gap", "gap", ["", *GAP_PARTS], "", container=s2,
                            format_func=lambda p: p or "any",
                            help="The queries of one part of the instance oracle's gap (the Oracle gap page): an "
                                 "expert beats base and the strategy stays below the oracle (routing error), the "
                                 "oracle's expert is no better than base (no expert helps), every expert ties, or "
                                 "the strategy reaches the oracle.")
    margin_below = None
    if use_margin:
        if margin < 0:
            st.error(f"The margin filter is off: {margin:.3f} is negative, and a margin (top-1 − top-2 router "
                     "score) never is. Give a value ≥ 0.")
        else:
            margin_below = float(margin)
    return {"strategy": strategy, "measure": measure, "datasets": datasets, "wrong": wrong, "hurt": hurt,
            "skip": skip, "margin_below": margin_below, "metadata": metadata, "sort": sort, "gap": gap_part}


def _table(ws, views, t, strategy: str):
    """The filtered queries as a table (scores ×100, the sort keys first); a click on a row opens it in the
    Query inspector. Returns the table as shown."""
    meta = [c for c in views.metadata_columns(ws) if c != "kind"]
    shown = t.reset_index()[["row", *LEADING, *meta, *TRAILING]]
    for c in ("routed_score", "oracle_score", "base_score", "regret", "delta_base"):
        shown[c] = views.points(shown[c])
    num = lambda label: st.column_config.NumberColumn(label, format="%.1f")  # noqa: E731
    event = st.dataframe(shown, hide_index=True, width="stretch", height=460, on_select="rerun",
                         selection_mode="single-row", key="error_table", column_config={
                             "row": None, "text": st.column_config.TextColumn("query", width="large"),
                             "regret": num("regret ×100"), "delta_base": num("routed − base ×100"),
                             "margin": st.column_config.NumberColumn("margin", format="%.3f"),
                             "kind": st.column_config.TextColumn("kind"),
                             "gap_part": st.column_config.TextColumn("part of the oracle gap"),
                             **{c: st.column_config.TextColumn(c[len("meta:"):]) for c in meta},
                             "routed_score": num("routed ×100"), "oracle_score": num("oracle ×100"),
                             "base_score": num("base ×100"),
                             "correct": st.column_config.CheckboxColumn("routed among best")})
    picked = event.selection.rows if event and event.selection else []
    if picked:
        r = shown.iloc[picked[0]]
        state.open_query(int(r["row"]), dataset=r["dataset"], strategy=strategy)
    return shown


def _downloads_and_open(ws, t, shown, strategy: str) -> None:
    """Below the table: its rows as CSV (unrounded), and a picker that opens any of them in the inspector."""
    e1, e2, e3 = st.columns([1.4, 3, 1])
    e1.download_button(f"Download these {len(t)} queries (CSV)", t.to_csv(index_label="row"),
                       file_name=f"errors_{safe_name(strategy)}.csv", mime="text/csv",
                       help="The rows of the table under the filters above, every column, unrounded scores (0–1).")
    labels = {int(r.row): f"{r.qid} · {r.text[:80]}" for r in shown.itertuples()}
    pick = e2.selectbox("Open a query", list(labels), format_func=labels.get, key="errors_pick",
                        label_visibility="collapsed")
    if e3.button("Open in inspector", key="errors_open"):
        state.open_query(int(pick), dataset=ws.queries.iloc[int(pick)]["dataset"], strategy=strategy)


if __name__ == "__main__":
    render()
