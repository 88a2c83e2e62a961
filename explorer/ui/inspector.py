"""Query inspector: one test query, its similarity to every expert's pilots, every strategy's decision, and 2–4
rankings side by side with relevance grades and how each relevant document moved; or two strategies A and B on
this query and on every query (a delta scatter: click a point to open that query). Query terms are marked in
snippets and in the document reader."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from explorer import views
from explorer.terms import shared_terms
from explorer.ui import highlight, safe, session, state, waterfall
from explorer.ui.figures import delta_figure, legend_below, missing_pilots, movement_figure, similarity_figure
from explorer.ui.style import CORRECT_COLOURS, dataset_palette, expert_palette
from explorer.views.inspector import COLOUR_BY, PAGE, VIEWS

GRADE_MARK = {0: "", 1: "●", 2: "●●", 3: "●●●"}
TITLE_WORDS = 8  # a document without a title is named by its first words
OUTCOME_COLOURS = {"B better": CORRECT_COLOURS["correct"], "A better": CORRECT_COLOURS["wrong"], "tie": "#9e9e9e"}
MAIN_WIDTH = 1000  # px of the main area at a 1500 px window with the sidebar open (a little under: no scrolling)
SELECT_W = 34  # the row-selection column of a clickable table
CHAR_W = 6.6  # px per character of a table cell (Streamlit's 14 px font), to know when a document wraps


def _grade(g) -> str:
    if g is None or g != g:
        return ""
    return GRADE_MARK.get(int(g), "●" * int(g))


def _pick_doc(c, key: str, doc_ids: list[str]) -> None:
    """Callback of a ranking table: the clicked row's document opens in the reader."""
    event = st.session_state.get(key)
    rows = list(event["selection"]["rows"]) if event else []
    if rows and 0 <= rows[0] < len(doc_ids):
        c.set("doc", doc_ids[rows[0]])


def _ranking_table(c, frame: pd.DataFrame, key: str, per_row: int) -> None:
    """One ranking as a clickable table: rank, grade, score, and the document (its id, then its title). The
    document column takes the width left by the others, so that `per_row` tables side by side fit the page
    without scrolling; a document too long for it wraps onto taller rows (up to three lines)."""
    # "id: title" (with " · " between them the grid's line breaking drops the end of some titles)
    table = pd.DataFrame({"rank": frame["rank"].astype(int), "rel": [_grade(g) for g in frame["grade"]],
                          "score": frame["score"].astype(float),
                          "document": [f"{safe.text(d)}: {_name(t, x)}" for d, t, x in zip(
                              frame["doc_id"], frame["title"], frame["text"])]})
    per_table = (MAIN_WIDTH - 16 * (per_row - 1)) / per_row
    doc_w = max(80, int(per_table) - (SELECT_W + 28 + 44 + 48 + 4))
    longest = max([len(t) for t in table["document"]] + [1])
    lines = min(4, -(-longest * CHAR_W // (doc_w - 16)))
    row_height = None if lines <= 1 else max(68, 14 + 18 * lines)  # Streamlit wraps text only in rows over 4rem
    # judged-relevant rows in green (not the document cell: a styled cell does not wrap)
    styled = table.style.apply(lambda r: ["background-color: #d8f0d8" if r["rel"] else "" for _ in r], axis=1,
                               subset=["rank", "rel", "score"]).format({"score": "{:.3f}"})
    st.dataframe(styled, hide_index=True, width="stretch", height=38 + (row_height or 35) * len(table) + 2,
                 row_height=row_height, key=key, on_select=partial(_pick_doc, c, key, frame["doc_id"].tolist()),
                 selection_mode="single-row", column_config={
                     "rank": st.column_config.NumberColumn("#", width=28),
                     "rel": st.column_config.TextColumn("rel", width=44, help="● relevant, ●● highly relevant"),
                     "score": st.column_config.NumberColumn("score", width=48, help="retrieval score (inner "
                                                                                    "product)"),
                     "document": st.column_config.TextColumn("doc id: title", width=doc_w)})


def _name(title, text) -> str:
    """A document as a ranking names it: its title, or (none) its first words."""
    title = safe.text(title).strip()
    if title:
        return title
    words = safe.text(text).split()
    return " ".join(words[:TITLE_WORDS]) + (" …" if len(words) > TITLE_WORDS else "") if words else "(empty)"


def _snippets(frame: pd.DataFrame, query: str) -> None:
    rows = [{"rank": int(r.rank), "grade": _grade(r.grade), "doc_id": r.doc_id, "title": r.title, "text": r.text}
            for r in frame.itertuples()]
    with st.expander("Snippets (query terms marked)"):
        st.markdown(highlight.snippet_list(rows, lambda r: shared_terms(query, r["title"], r["text"])),
                    unsafe_allow_html=True)  # one HTML block of escaped pieces and <mark>


def _open_point(c, key: str) -> None:
    """Callback of the delta scatter and the waterfall: one clicked point opens its query (a box or lasso lists
    them instead)."""
    rows = waterfall.picked_rows(st.session_state.get(key))
    if len(rows) == 1:
        _go(c, rows[0])


def _open_listed(c, key: str, rows: list[int]) -> None:
    event = st.session_state.get(key)
    picked = list(event["selection"]["rows"]) if event else []
    if picked and 0 <= picked[0] < len(rows):
        _go(c, rows[picked[0]])


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    state.score_note()
    if ws.eval_rows().empty:
        st.info("This workspace has no evaluated (test) queries to inspect.")
        return
    _pick_query(c)
    data = c.data()
    info = data["query"]
    if info is None:
        st.info(f"{safe.md(c['dataset'])} has no test queries: pick another dataset.")
        return
    _triage(c, info["row"])
    # the query text as one HTML block of escaped text: nothing in it is read as Markdown or HTML
    st.markdown(f"<h4>“{safe.html(info['text'], quote=False)}”</h4>", unsafe_allow_html=True)
    st.caption(f"query {safe.md(info['qid'])} · dataset {safe.md(info['dataset'])} · kind {safe.md(info['kind'])} · "
               f"row {info['row']}")
    _similarity_and_decisions(c, data)
    c("view", "View", draw=st.radio, format_func=VIEWS.get, horizontal=True, label_visibility="collapsed")
    if c["view"] == "compare":
        _compare(c, data)
    else:
        _rankings(c, data)
    _reader(c, data)


def _pick_query(c) -> None:
    """The dataset, strategy, query and measure pickers (in the URL; a query opened from another page or a link
    picks its dataset)."""
    ev = c.ws.eval_rows()
    texts = dict(zip(ev["row"].astype(int), ev["qid"] + " · " + ev["text"].str.slice(0, 100)))
    c1, c2, c3, c4 = st.columns([1, 3, 1.5, 1])
    c("dataset", "Dataset", container=c1)
    c("row", "Query", container=c2, format_func=texts.get, help="Opens on the query where the strategy gains most "
                                                                 "over base.")
    c("strategy", "Strategy (for the routed column)", container=c3)
    c("measure", "Measure", container=c4, help="Every score on this page: the decisions, the rankings, A and B.")
    with st.expander("Compare with a second workspace", expanded=bool(c["compare"])):
        c("compare", "Compare with workspace (folder)", help="A second workspace built on the same datasets and evaluated queries (another base model, another "
           "recipe): its systems and strategies appear as B:<name>, paired query by query.")


def _triage(c, row: int) -> None:
    """Previous / next through the Error-analysis selection (its filters and sort, as last set there)."""
    from explorer.views.errors import PAGE as ERRORS, SORTS

    values = ERRORS.resolve(c.ws, {**session.remembered(ERRORS), **{k: c[k] for k in ("strategy", "measure")}})
    rows = [int(r) for r in session.data(ERRORS, c.ws, values.values)["queries"].index]
    t1, t2, t3, t4 = st.columns([1, 1, 3, 1.2])
    if row not in rows:
        t3.caption(f"Not among the {len(rows)} queries of Error analysis' selection.")
        if rows:
            t4.button("Walk them", key="triage_first", on_click=_go, args=(c, rows[0]))
        return
    at = rows.index(row)
    t1.button("◀ previous", key="triage_prev", disabled=at == 0, on_click=_go, args=(c, rows[max(at - 1, 0)]))
    t2.button("next ▶", key="triage_next", disabled=at == len(rows) - 1,
              on_click=_go, args=(c, rows[min(at + 1, len(rows) - 1)]))
    order = SORTS[values.values["sort"]]
    t3.markdown(f"**{at + 1} of {len(rows)}** in Error analysis' selection, by {safe.md(order)}")


def _go(c, row: int) -> None:
    """Show another test query: its dataset follows, the reader closes."""
    c.set("dataset", str(c.ws.queries.iloc[row]["dataset"]))
    c.set("row", row)
    c.set("doc", None)


def _similarity_and_decisions(c, data: dict) -> None:
    """Why the routers decided as they did: the query's similarity to every expert's pilots, beside every
    strategy's decision and score."""
    ws, info = c.ws, data["query"]
    palette = expert_palette(ws.systems)
    left, right = st.columns([1, 1.25])
    with left:
        st.markdown("**Similarity to every expert's pilots** (base-encoder embedding)")
        sims = data["similarity"]
        st.plotly_chart(legend_below(similarity_figure(sims, palette, info["text"])), width="stretch",
                        key="insp_sim")
        none = missing_pilots(sims, ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))
    with right:
        st.markdown("**Every strategy's decision** (routers first, then oracles and fixed experts)")
        st.dataframe(data["decisions"], hide_index=True, width="stretch", height=330, column_config={
            "strategy": st.column_config.TextColumn("strategy", width=150, pinned=True),
            "chosen": st.column_config.TextColumn("chosen", width=110),
            # a grid header is plain text (not Markdown); measure names are checked ir_measures names
            "score": st.column_config.NumberColumn(f"{c['measure']} ×100", format="%.1f", width=100),
            "margin": st.column_config.TextColumn("margin", width=60, help="top-1 minus top-2 candidate score; "
                                                  "– for a fixed expert (no choice)"),
            "weights": st.column_config.TextColumn("weights over experts", width=260),
            "family": st.column_config.TextColumn("family", width=110)})


def _rankings(c, data: dict) -> None:
    st.subheader("Rankings side by side")
    options = views.column_options(c.ws, data["query"]["row"], c["strategy"])
    r1, r2 = st.columns([4, 1])
    c("cols", "Compare (2–4 rankings)", container=r1, format_func=lambda k: options[k][0], max_selections=4)
    c("depth", "Documents per ranking", container=r2, step=1)
    sbs = data["rankings"]
    if sbs is None:
        st.info("Pick at least two rankings to compare (e.g. routed, base, the oracle expert, any fixed expert).")
        return
    systems = list(sbs["rankings"])
    for col, label in zip(st.columns(len(systems)), systems):
        with col:
            st.markdown(f"**{safe.md(label)}**")
            st.caption(" · ".join(f"{safe.md(m)} {views.x100(v)}" for m, v in sbs["scores"][label].items()))
            _ranking_table(c, sbs["rankings"][label], f"insp_rank_{sbs['columns'][label]}", len(systems))
            _snippets(sbs["rankings"][label], data["query"]["text"])
    st.caption("Green rows: judged relevant (● grade 1, ●● grade 2). Click a row to read its document below.")
    _contributions(c["strategy"], data["contributions"])
    if not sbs["judged"]:
        st.info("This query has no judged documents, so there is nothing to track across rankings.")
    elif sbs["moves"].empty:
        st.info("No judged-relevant document (grade > 0) for this query.")
    else:
        st.markdown("**How each relevant document moved** (log scale; "
                    f"{sbs['depth'] + 1} = not in the top {sbs['depth']})")
        st.plotly_chart(legend_below(movement_figure(sbs["moves"], systems, sbs["depth"]), -0.22),
                        width="stretch", key="insp_moves")


def _contributions(strategy: str, contrib) -> None:
    """For a strategy that mixed this query: where each document of its fused ranking stood in each expert's run."""
    if contrib.empty:
        return
    st.markdown(f"**Which experts contributed each document of {safe.md(strategy)}'s ranking** (the document's "
                "rank in each weighted expert's own run; empty: not in its run)")
    st.dataframe(contrib, hide_index=True, width="stretch")


def _compare(c, data: dict) -> None:
    """The 'Two strategies' view: A and B on this query, then on every query."""
    st.subheader("Two strategies")
    k1, k2, k3 = st.columns([1.3, 1.3, 1.2])
    c("a", "Strategy A (x axis)", container=k1)
    c("b", "Strategy B (y axis)", container=k2)
    c("by", "Colour points by", container=k3, format_func=COLOUR_BY.get)
    cmp = data["compare"]
    for col, side in zip(st.columns(2), ("A", "B")):
        with col:
            _side(c, cmp, side, data["query"]["text"])
    _delta(c, cmp, data["query"]["row"])
    st.markdown("**Every test query: B − A, sorted** (a waterfall; click a bar to open its query)")
    waterfall.draw(c.ws, cmp["waterfall"], c["measure"], "insp_waterfall",
                   on_select=partial(_open_point, c, "insp_waterfall"))


def _side(c, cmp: dict, side: str, text: str) -> None:
    """One strategy of A and B on this query: what it chose, its scores, its ranking."""
    strategy, d = c[side.lower()], cmp["sides"][side]
    st.markdown(f"**{side} · {safe.md(strategy)}**")
    if not d:
        st.info(f"{safe.md(strategy)} made no decision on this query.")
        return
    label = f"{side} · {strategy}"
    sc = cmp["rankings"]["scores"][label]
    st.caption(f"chose {safe.md(d['decision'])} · margin {safe.md(d['margin'])} · "
               + " · ".join(f"{safe.md(m)} {views.x100(v)}" for m, v in sc.items()))
    _ranking_table(c, cmp["rankings"]["rankings"][label], f"cmp_rank_{side}", 2)
    _snippets(cmp["rankings"]["rankings"][label], text)


def _delta(c, cmp: dict, row: int) -> None:
    """Every evaluated query, A against B: the delta scatter beside the list of the queries it selects (or of
    the largest differences)."""
    ws, pair, counts, a, b, measure = c.ws, cmp["pair"], cmp["counts"], c["a"], c["b"], c["measure"]
    st.markdown(f"**Every test query: {safe.md(measure)} under A against B** (click a point to open its query; "
                "box or lasso to list several)")
    st.caption(f"B better on {counts['B better']} queries, A better on {counts['A better']}, tied on "
               f"{counts['tie']} (tied queries sit on the diagonal, often on one spot). Ringed: this query.")
    colour = c["by"]
    if colour == "dataset":
        keys, pal = pair["dataset"], dataset_palette(ws)
    elif colour in ("a", "b"):
        keys, pal = pair[f"chosen_{colour}"], expert_palette(ws.systems)
    else:
        keys, pal = pair["outcome"], OUTCOME_COLOURS
    fig = delta_figure(pair, keys, pal, row, a, b, measure)
    plot_col, list_col = st.columns([1.35, 1])
    key = "insp_delta"
    with plot_col:
        event = st.plotly_chart(fig, width="stretch", key=key, on_select=partial(_open_point, c, key),
                                selection_mode=("points", "box", "lasso"))
    rows = set(pair["row"].astype(int))
    picked = [r for r in waterfall.picked_rows(event) if r in rows]
    with list_col:
        _delta_list(c, pair, picked, f"insp_delta_top_{a}_{b}_{measure}")


def _delta_list(c, pair, picked: list[int], top_key: str) -> None:
    """The queries selected on the delta scatter (two or more), else the largest differences; a click on one
    opens it. `top_key` keys the list of largest differences (by A, B and the measure)."""
    if len(picked) > 1:
        listed = pair.set_index("row").loc[picked].reset_index()
        st.markdown(f"**{len(listed)} queries selected** (click one to open it)")
        lkey = f"insp_delta_list_{len(listed)}_{int(listed['row'].sum())}"
    else:
        moved = pair[pair["outcome"] != "tie"]
        listed = moved.reindex(moved["delta"].abs().sort_values(ascending=False, kind="stable").index).head(12)
        st.markdown("**Largest differences** (click one to open it; box or lasso on the plot to list others)")
        lkey = top_key
    if listed.empty:
        st.info("A and B score every query the same.")
        return
    table = pd.DataFrame({"qid": listed["qid"], "dataset": listed["dataset"],
                          "B − A": views.points(listed["delta"]), "text": listed["text"]})
    st.dataframe(table, hide_index=True, width="stretch", key=lkey, selection_mode="single-row",
                 height=min(38 + 35 * len(table) + 2, 460),
                 on_select=partial(_open_listed, c, lkey, listed["row"].astype(int).tolist()),
                 column_config={"qid": st.column_config.TextColumn(width=80),
                                "dataset": st.column_config.TextColumn(width=90),
                                "B − A": st.column_config.NumberColumn(format="%+.1f", width=60),
                                "text": st.column_config.TextColumn(width="large")})


def _reader(c, data: dict) -> None:
    """The document being read (the page's `doc`: one shown above or judged for this query), its query terms
    marked."""
    st.markdown("**Read a document**")
    readable = data["readable"]
    if c["doc"] not in readable:
        c.set("doc", None)  # a document this query's lists do not hold closes the reader
    c("doc", "Document", draw=st.selectbox, options=[None, *readable],
      format_func=lambda d: "pick any document shown above (or a judged one), or click a ranking row" if d is None
      else d)
    doc, info, judged = data["doc"], data["query"], data["judged"]
    if doc:
        grade = judged.get(doc["doc_id"])
        terms = shared_terms(info["text"], doc.get("title", ""), doc.get("text", ""))
        with st.container(border=True, key="insp_reader"):
            st.caption(f"{safe.code(doc['doc_id'])} · "
                       f"{_grade(grade) or ('judged not relevant' if grade == 0 else 'not judged')} · query terms "
                       f"in it: {', '.join(safe.md(t) for t in terms) if terms else 'none'}")
            # title and text as one HTML block of escaped pieces, the query's terms in <mark>
            st.markdown(highlight.reader(doc.get("title", ""), doc.get("text", ""), terms), unsafe_allow_html=True)


if __name__ == "__main__":
    render()
