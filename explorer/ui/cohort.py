"""The cohort every page can filter by: a named set of test queries saved on the Routing map, kept in the URL
(`cohort`, `cohort_name`) and in this session (so moving between pages keeps it), shown with a button that clears
it, and exported (qids; the query x strategy metric matrix as CSV and Parquet)."""

from __future__ import annotations

import streamlit as st

from explorer import cohort as cohorts
from explorer.export import safe_name
from explorer.ui import safe, state

SESSION = "_cohort"  # (text, name) of the session's cohort


def save(text: str, name: str) -> None:
    """Make (text, name) the cohort of this session and of the URL."""
    st.session_state[SESSION] = (text, cohorts.clean_name(name))
    state.set_params(cohort=text, cohort_name=cohorts.clean_name(name))


def clear() -> None:
    st.session_state.pop(SESSION, None)
    state.set_params(cohort=None, cohort_name=None)


def current(ws) -> dict | None:
    """The cohort in force: {text, name, rows} from the URL, else from this session (written back to the URL);
    None when there is none. A link's cohort that cannot be read on this workspace is said so and dropped."""
    text = state.param("cohort")
    name = state.param("cohort_name")
    if text is None and SESSION in st.session_state:
        text, name = st.session_state[SESSION]
    if text is None:
        return None
    try:
        rows = state.cached(_rows, str(text))
    except cohorts.CohortError as err:
        st.warning(f"The cohort in this link is left out: {safe.md(err)}")
        clear()
        return None
    save(str(text), name)
    return {"text": str(text), "name": cohorts.clean_name(name), "rows": rows}


def _rows(ws, text: str) -> tuple[int, ...]:
    return tuple(int(r) for r in cohorts.cohort_rows(ws, text))


def banner(ws, cohort: dict | None, what: str) -> None:
    """One line saying the page is filtered by the cohort (`what` names what it filters), and a button that
    clears it."""
    if not cohort:
        return
    c1, c2 = st.columns([5, 1])
    c1.info(f"Cohort **{safe.md(cohort['name'])}**: {len(cohort['rows'])} of {len(ws.eval_rows())} test queries. "
            f"{what} Saved on the Routing map; it stays in the link and on every page until cleared.")
    if c2.button("Clear cohort", key="cohort_clear"):
        clear()
        st.rerun()


def downloads(ws, cohort: dict, measure: str, key: str) -> None:
    """The cohort's qids (CSV) and its query x strategy matrix of `measure` (CSV, Parquet; fractions)."""
    tag = safe_name(cohort["name"])
    rows = cohort["rows"]
    d1, d2, d3 = st.columns(3)
    d1.download_button("Cohort qids (CSV)", cohorts.csv_bytes(state.cached(cohorts.cohort_queries, rows)),
                       file_name=f"cohort_{tag}_qids.csv", mime="text/csv", key=f"{key}_qids")
    matrix = state.cached(cohorts.cohort_matrix, rows, measure)
    d2.download_button(f"{safe.md(measure)} per query × strategy (CSV)", cohorts.csv_bytes(matrix),
                       file_name=f"cohort_{tag}_{safe_name(measure)}.csv", mime="text/csv", key=f"{key}_csv",
                       help="One row per query of the cohort, one column per strategy: scores as fractions (0–1).")
    d3.download_button(f"{safe.md(measure)} per query × strategy (Parquet)", cohorts.parquet_bytes(matrix),
                       file_name=f"cohort_{tag}_{safe_name(measure)}.parquet",
                       mime="application/vnd.apache.parquet", key=f"{key}_parquet")
