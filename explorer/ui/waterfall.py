"""The per-query difference plot that the Overview (a strategy against the reference) and the Query inspector (A
against B) share: every test query's B − A, sorted, coloured by dataset; a click on a bar opens that query."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from explorer import views
from explorer.ui import safe
from explorer.ui.figures import waterfall_figure
from explorer.ui.style import dataset_palette


def draw(ws, wf: dict, measure: str, key: str, on_select: Callable | str = "rerun") -> list[int]:
    """The waterfall `wf` (views.difference_waterfall, its deltas ×100) under `measure`, with a line on what it
    shows. Returns the rows of the bars selected (`on_select` as st.plotly_chart takes it)."""
    counts = wf["counts"]
    sampled = (f" {len(wf['bars']):,} of the {wf['queries']:,} queries are drawn, evenly spaced along the sorted "
               "order (every bar stands for its neighbours)." if wf["sampled"] else "")
    st.caption(f"B = {safe.md(wf['b'])} against A = {safe.md(wf['a'])}: each bar is one test query's difference "
               f"({safe.md(measure)} ×100), sorted from the largest loss to the largest gain. B better on "
               f"{counts['B better']}, A better on {counts['A better']}, tied on {counts['tie']}; mean "
               f"{views.signed(wf['mean'])}.{sampled} Click a bar to open its query.")
    if not wf["queries"]:
        st.info("No test query to compare.")
        return []
    event = st.plotly_chart(waterfall_figure(wf, dataset_palette(ws), measure), width="stretch", key=key,
                            on_select=on_select, selection_mode=("points", "box"))
    return picked_rows(event)


def picked_rows(event) -> list[int]:
    """The query rows (customdata) of the points a chart's selection holds (the chart's return value or its state
    in st.session_state), in order, once each."""
    rows = []
    for p in ((event.get("selection") or {}).get("points", []) if event else []):
        cd = p.get("customdata")
        cd = cd[0] if isinstance(cd, (list, tuple)) and cd else cd
        try:
            rows.append(int(cd))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(rows))
