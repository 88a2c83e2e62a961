"""The cohort every page that declares it can filter by: a named set of test queries saved on the Routing map. It is
a shared page parameter (`cohort`, `cohort_name`: views.common), so it stays in the URL and in the researcher's
context across pages; here it is only drawn: a line saying the page is filtered, a button that clears it, and its
exports (qids; the query x strategy metric matrix as CSV and Parquet)."""

from __future__ import annotations

from functools import partial

import streamlit as st

from explorer import cohort as cohorts
from explorer.export import safe_name
from explorer.ui import safe


def save(c, text: str, name: str) -> None:
    """Make (text, name) the cohort of this page, of the URL and of the shared context; the page reruns."""
    c.set("cohort", text)
    c.set("cohort_name", cohorts.clean_name(name))
    st.rerun()


def banner(c, cohort: dict | None, what: str) -> None:
    """One line saying the page is filtered by the cohort (`what` names what it filters), and a button that
    clears it."""
    if not cohort:
        return
    c1, c2 = st.columns([5, 1])
    c1.info(f"Cohort **{safe.md(cohort['name'])}**: {len(cohort['rows'])} of {len(c.ws.eval_rows())} test queries. "
            f"{what} Saved on the Routing map; it stays in the link and on every page until cleared.")
    if c2.button("Clear cohort", key=f"cohort_clear_{c.page.key}"):
        c.set("cohort", "")
        c.set("cohort_name", "")
        st.rerun()


def _matrix(ws, rows, measure: str, fmt: str) -> bytes:
    frame = cohorts.cohort_matrix(ws, rows, measure)
    return cohorts.csv_bytes(frame) if fmt == "csv" else cohorts.parquet_bytes(frame)


def downloads(c, cohort: dict, measure: str) -> None:
    """The cohort's qids (CSV) and its query x strategy matrix of `measure` (CSV, Parquet; fractions), each
    made on click."""
    ws, rows, tag = c.ws, cohort["rows"], safe_name(cohort["name"])
    d1, d2, d3 = st.columns(3)
    d1.download_button("Cohort qids (CSV)", lambda: cohorts.csv_bytes(cohorts.cohort_queries(ws, rows)),
                       file_name=f"cohort_{tag}_qids.csv", mime="text/csv", key=f"{c.page.key}_cohort_qids")
    d2.download_button(f"{safe.md(measure)} per query × strategy (CSV)", partial(_matrix, ws, rows, measure, "csv"),
                       file_name=f"cohort_{tag}_{safe_name(measure)}.csv", mime="text/csv",
                       key=f"{c.page.key}_cohort_csv",
                       help="One row per query of the cohort, one column per strategy: scores as fractions (0–1).")
    d3.download_button(f"{safe.md(measure)} per query × strategy (Parquet)",
                       partial(_matrix, ws, rows, measure, "parquet"),
                       file_name=f"cohort_{tag}_{safe_name(measure)}.parquet",
                       mime="application/vnd.apache.parquet", key=f"{c.page.key}_cohort_parquet")
