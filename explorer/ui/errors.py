"""Error analysis: every test query with its routed, oracle and base scores, regret and margin; filter (datasets,
routing outcome, margin, query metadata), sort, download, and open any row in the Query inspector."""

from __future__ import annotations

import streamlit as st

from explorer import views
from explorer.export import safe_name
from explorer.ui import cohort as cohorts
from explorer.ui import session, state
from explorer.views.errors import PAGE, SORTS

# the sort keys come first after the query text, then the scores, so they are visible without scrolling at 1400 px
LEADING = ["text", "regret", "delta_base", "routed_score", "oracle_score", "base_score", "dataset", "routed", "margin"]
TRAILING = ["oracle", "kind", "gap_part", "correct", "qid"]
ROW_PX, HEAD_PX, MAX_HEIGHT = 35, 38, 460


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    st.caption("Every test query under one strategy: the routed expert's score, the instance oracle's (the best "
               "expert for that query) and the base model's, with regret (oracle − routed) and the router's margin "
               "(top-1 − top-2). Click a row to open it in the Query inspector, which then walks these queries in "
               "this order (previous / next).")
    state.score_note()
    _filters(c)
    view = c.data()
    cohorts.banner(c, view["cohort"], "Only its queries are listed.")
    t = view["queries"]
    st.markdown(f"**{len(t)}** of {view['total']} test queries · mean regret "
                f"{views.x100(view['mean_regret'])} · routed worse than base on {view['hurt']}")
    if t.empty:
        st.info("No query matches these filters: loosen them (untick a box, raise the margin, or clear the "
                "dataset and metadata filters).")
        return
    shown = _table(c, t)
    _downloads_and_open(c, view, shown)


def _filters(c) -> None:
    """The page's controls, each kept in the URL: strategy, measure, datasets, the outcome and margin filters,
    the metadata filters and the sort."""
    c1, c2, c3 = st.columns([2, 1, 3])
    c("strategy", "Strategy", container=c1)
    c("measure", "Measure", container=c2)
    c("datasets", "Datasets", container=c3, placeholder="all datasets")
    f1, f2, f3, f4, f5 = st.columns([1, 1, 1, 1.2, 1.4])
    c("wrong", "routed ≠ oracle", container=f1, help="The routed expert is not among the tied best experts of the "
                                                    "query.")
    c("hurt", "routing hurt vs base", container=f2, help="The routed score is below the base model's score.")
    c("skip_ties", "hide all-expert ties", container=f3)
    c("use_margin", "margin below", container=f4)
    c("margin", "margin below x", container=f5, step=0.01, format="%.3f", disabled=not c["use_margin"],
      help="A margin is top-1 − top-2 router score, never negative: give a value ≥ 0.")
    c.metadata_filters("Query", "Keep the queries that take one of these values")
    s1, s2 = st.columns([1, 2])
    c("sort", "Sort by", format_func=SORTS.get, container=s1)
    c("gap", "Part of the oracle gap", container=s2, format_func=lambda p: p or "any",
      help="The queries of one part of the instance oracle's gap (the Oracle gap page): an expert beats base and "
           "the strategy stays below the oracle (routing error), the oracle's expert is no better than base (no "
           "expert helps), every expert ties, or the strategy reaches the oracle.")


def _table(c, t):
    """The filtered queries as a table (scores ×100, the sort keys and the scores first, as tall as its rows); a
    click on a row opens it in the Query inspector. Returns the table as shown."""
    meta = [col for col in views.metadata_columns(c.ws) if col != "kind"]
    shown = t.reset_index()[["row", *LEADING, *meta, *TRAILING]]
    for col in ("routed_score", "oracle_score", "base_score", "regret", "delta_base"):
        shown[col] = views.points(shown[col])
    num = lambda label: st.column_config.NumberColumn(label, format="%.1f", width=64)  # noqa: E731
    event = st.dataframe(shown, hide_index=True, width="stretch", height=min(HEAD_PX + ROW_PX * len(shown) + 2,
                                                                                 MAX_HEIGHT),
                         on_select="rerun", selection_mode="single-row", key="error_table", column_config={
                             "row": None, "text": st.column_config.TextColumn("query", width=330),
                             "regret": num("regret"), "delta_base": num("vs base"),
                             "routed_score": num("routed"), "oracle_score": num("oracle"), "base_score": num("base"),
                             "dataset": st.column_config.TextColumn("dataset", width=80),
                             "routed": st.column_config.TextColumn("routed to", width=110),
                             "margin": st.column_config.NumberColumn("margin", format="%.3f", width=60),
                             "oracle": st.column_config.TextColumn("oracle expert", width=110),
                             "kind": st.column_config.TextColumn("kind"),
                             "gap_part": st.column_config.TextColumn("part of the oracle gap"),
                             **{col: st.column_config.TextColumn(col[len("meta:"):]) for col in meta},
                             "correct": st.column_config.CheckboxColumn("routed among best")})
    st.caption("Scores ×100: regret = oracle − routed; vs base = routed − base.")
    picked = event.selection.rows if event and event.selection else []
    if picked:
        _inspect(c, int(shown.iloc[picked[0]]["row"]))
    return shown


def _inspect(c, row: int) -> None:
    from explorer.views.inspector import PAGE as INSPECTOR

    session.open_page(INSPECTOR, c.ws, row=row, strategy=c["strategy"], measure=c["measure"])


def _downloads_and_open(c, view: dict, shown) -> None:
    """Below the table: its rows as CSV (unrounded), and a picker that opens any of them in the inspector."""
    e1, e2, e3 = st.columns([1.4, 3, 1])
    e1.download_button(f"Download these {len(shown)} queries (CSV)", view["csv"],
                       file_name=f"errors_{safe_name(view['strategy'])}.csv", mime="text/csv",
                       help="The rows of the table under the filters above, every column, unrounded scores (0–1).")
    labels = {int(r.row): f"{r.qid} · {r.text[:80]}" for r in shown.itertuples()}
    pick = e2.selectbox("Open a query", list(labels), format_func=labels.get, key="errors_pick",
                        label_visibility="collapsed")
    if e3.button("Open in inspector", key="errors_open"):
        _inspect(c, int(pick))


if __name__ == "__main__":
    render()
