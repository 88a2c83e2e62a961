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
from explorer.ui import highlight, safe, state, waterfall
from explorer.ui.figures import delta_figure, legend_below, missing_pilots, movement_figure, similarity_figure
from explorer.ui.style import CORRECT_COLOURS, dataset_palette, expert_palette

GRADE_MARK = {0: "", 1: "●", 2: "●●", 3: "●●●"}
VIEWS = {"rankings": "Rankings side by side", "compare": "Two strategies (A vs B)"}
COLOUR_BY = {"dataset": "dataset", "a": "expert routed by A", "b": "expert routed by B", "outcome": "who wins"}
OUTCOME_COLOURS = {"B better": CORRECT_COLOURS["correct"], "A better": CORRECT_COLOURS["wrong"], "tie": "#9e9e9e"}
MAIN_WIDTH = 1000  # px of the main area at a 1500 px window with the sidebar open (a little under: no scrolling)
SELECT_W = 34  # the row-selection column of a clickable table
CHAR_W = 6.6  # px per character of a table cell (Streamlit's 14 px font), to know when a document wraps


def _grade(g) -> str:
    if g is None or g != g:
        return ""
    return GRADE_MARK.get(int(g), "●" * int(g))


def _pick_doc(key: str, doc_ids: list[str]) -> None:
    """Callback of a ranking table: the clicked row's document opens in the reader."""
    event = st.session_state.get(key)
    rows = list(event["selection"]["rows"]) if event else []
    if rows and 0 <= rows[0] < len(doc_ids):
        st.session_state["insp_doc"] = doc_ids[rows[0]]


def _ranking_table(frame: pd.DataFrame, key: str, per_row: int) -> None:
    """One ranking as a clickable table: rank, grade, score, and the document (its id, then its title). The
    document column takes the width left by the others, so that `per_row` tables side by side fit the page
    without scrolling; a document too long for it wraps onto taller rows (up to three lines)."""
    # "id: title" (with " · " between them the grid's line breaking drops the end of some titles)
    table = pd.DataFrame({"rank": frame["rank"].astype(int), "rel": [_grade(g) for g in frame["grade"]],
                          "score": frame["score"].astype(float),
                          "document": [f"{safe.text(d)}: {safe.text(t)}" for d, t in zip(frame["doc_id"],
                                                                                        frame["title"])]})
    per_table = (MAIN_WIDTH - 16 * (per_row - 1)) / per_row
    doc_w = max(80, int(per_table) - (SELECT_W + 28 + 32 + 48 + 4))
    longest = max([len(t) for t in table["document"]] + [1])
    lines = min(4, -(-longest * CHAR_W // (doc_w - 16)))
    row_height = None if lines <= 1 else max(68, 14 + 18 * lines)  # Streamlit wraps text only in rows over 4rem
    # judged-relevant rows in green (not the document cell: a styled cell does not wrap)
    styled = table.style.apply(lambda r: ["background-color: #d8f0d8" if r["rel"] else "" for _ in r], axis=1,
                               subset=["rank", "rel", "score"]).format({"score": "{:.3f}"})
    st.dataframe(styled, hide_index=True, width="stretch", height=38 + (row_height or 35) * len(table) + 2,
                 row_height=row_height, key=key, on_select=partial(_pick_doc, key, frame["doc_id"].tolist()),
                 selection_mode="single-row", column_config={
                     "rank": st.column_config.NumberColumn("#", width=28),
                     "rel": st.column_config.TextColumn("rel", width=32, help="● relevant, ●● highly relevant"),
                     "score": st.column_config.NumberColumn("score", width=48, help="retrieval score (inner "
                                                                                    "product)"),
                     "document": st.column_config.TextColumn("doc id: title", width=doc_w)})


def _drew_cols() -> None:
    st.session_state["_insp_cols"] = list(st.session_state.get("qp_cols") or [])


def _snippets(frame: pd.DataFrame, query: str) -> None:
    rows = [{"rank": int(r.rank), "grade": _grade(r.grade), "doc_id": r.doc_id, "title": r.title, "text": r.text}
            for r in frame.itertuples()]
    with st.expander("Snippets (query terms marked)"):
        st.markdown(highlight.snippet_list(rows, lambda r: shared_terms(query, r["title"], r["text"])),
                    unsafe_allow_html=True)  # one HTML block of escaped pieces and <mark>


def _open_point(key: str, datasets: dict[int, str]) -> None:
    """Callback of the delta scatter and the waterfall: one clicked point opens its query (a box or lasso lists
    them instead)."""
    rows = waterfall.picked_rows(st.session_state.get(key))
    if len(rows) == 1 and rows[0] in datasets:
        state.queue_query(rows[0], datasets[rows[0]])


def _open_listed(key: str, rows: list[int], datasets: dict[int, str]) -> None:
    event = st.session_state.get(key)
    picked = list(event["selection"]["rows"]) if event else []
    if picked and 0 <= picked[0] < len(rows):
        state.queue_query(rows[picked[0]], datasets.get(rows[picked[0]]))


def render() -> None:
    ws = state.workspace()
    st.title("Query inspector")
    state.score_note()
    ev = ws.eval_rows()
    if ev.empty:
        st.info("This workspace has no evaluated (test) queries to inspect.")
        return
    picked = _pick_query(ws, views, ev)
    if picked is None:
        return
    row, strategy, notice = picked
    info = views.query_info(ws, row)
    if notice:
        st.warning(f"{safe.md(notice)}; showing {safe.md(info['qid'])} of {safe.md(info['dataset'])} (row {row}), "
                   "instead.")
    # the query text as one HTML block of escaped text: nothing in it is read as Markdown or HTML
    st.markdown(f"<h4>“{safe.html(info['text'], quote=False)}”</h4>", unsafe_allow_html=True)
    st.caption(f"query {safe.md(info['qid'])} · dataset {safe.md(info['dataset'])} · kind {safe.md(info['kind'])} · "
               f"row {row}")
    _similarity_and_decisions(ws, row, info)
    view = state.synced(st.radio, "View", "view", list(VIEWS), "rankings", format_func=VIEWS.get, horizontal=True,
                        label_visibility="collapsed")
    shown: list[str] = []
    judged = {}
    if view == "compare":
        shown, judged = _compare(ws, views, row, info, strategy)
    else:
        shown, judged = _rankings(ws, views, row, info, strategy)
    _reader(ws, views, row, info, shown, judged)


def _pick_query(ws, views, ev) -> tuple[int, str, str | None] | None:
    """The dataset, query and strategy pickers (in the URL). Returns (row, strategy, notice: why the URL's row
    was not shown), or None when the dataset has no test queries (said so on the page)."""
    # A row given in the URL picks its dataset. The URL is untrusted: only a test query's row counts, and a row
    # that is not one is said so (not silently replaced by another query).
    notice = None
    if "qp_dataset" not in st.session_state:
        found, notice = views.inspect_row(ws, state.param("row"))
        if found is not None:
            st.query_params["dataset"] = str(ev.loc[ev["row"] == found, "dataset"].iloc[0])
        elif notice:
            st.query_params.pop("row", None)
    c1, c2, c3 = st.columns([1, 3, 1.5])
    dataset = state.synced(st.selectbox, "Dataset", "dataset", ws.datasets, ws.datasets[0], container=c1,
                           keep_in_url=True)
    rows = ev[ev["dataset"] == dataset]
    if rows.empty:
        st.info(f"{safe.md(dataset)} has no test queries: pick another dataset.")
        return None
    texts = dict(zip(rows["row"].astype(int), rows["qid"] + " · " + rows["text"].str.slice(0, 100)))
    strategy = state.synced(st.selectbox, "Strategy (for the routed column)", "strategy", ws.strategies,
                            views.default_strategy(ws), container=c3)
    row = state.synced(st.selectbox, "Query", "row", list(texts), state.cached(views.showcase_row, dataset, strategy),
                       container=c2, cast=int, format_func=texts.get, keep_in_url=True,
                       help="Opens on the query where the strategy gains most over base.")
    return row, strategy, notice


def _similarity_and_decisions(ws, row: int, info: dict) -> None:
    """Why the routers decided as they did: the query's similarity to every expert's pilots, beside every
    strategy's decision and score."""
    palette = expert_palette(ws.encoders)
    left, right = st.columns([1, 1.25])
    with left:
        st.markdown("**Similarity to every expert's pilots** (base-encoder embedding)")
        sims = state.cached(views.query_pilot_similarity, row)
        st.plotly_chart(legend_below(similarity_figure(sims, palette, info["text"])), width="stretch",
                        key="insp_sim")
        none = missing_pilots(sims, ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))
    with right:
        st.markdown("**Every strategy's decision** (routers first, then oracles and fixed experts)")
        dec = state.cached(views.decision_table, row)  # scored by the label measure (the oracles' own)
        st.dataframe(dec, hide_index=True, width="stretch", height=330, column_config={
            "strategy": st.column_config.TextColumn("strategy", width=150, pinned=True),
            "chosen": st.column_config.TextColumn("chosen", width=110),
            # a grid header is plain text (not Markdown); measure names are checked ir_measures names
            "score": st.column_config.NumberColumn(f"{ws.label_measure} ×100", format="%.1f", width=90),
            "margin": st.column_config.TextColumn("margin", width=60, help="top-1 minus top-2 candidate score; "
                                                  "– for a fixed expert (no choice)"),
            "weights": st.column_config.TextColumn("weights over experts", width=260),
            "family": st.column_config.TextColumn("family", width=110)})


def _rankings(ws, views, row: int, info: dict, strategy: str) -> tuple[list[str], dict]:
    st.subheader("Rankings side by side")
    options = views.column_options(ws, row, strategy)
    default = [k for k in ("routed", "base", "oracle") if k in options]
    # `cols` is also the Overview's chart parameter: a value this page did not draw (left by the Overview in the
    # run that switched pages) is dropped, so the URL or the default seeds the rankings
    if st.session_state.get("qp_cols") != st.session_state.get("_insp_cols"):
        st.session_state.pop("qp_cols", None)
    cols = state.synced(st.multiselect, "Compare (2–4 rankings)", "cols", list(options), default,
                        format_func=lambda k: options[k][0], max_selections=4, on_change=_drew_cols)
    st.session_state["_insp_cols"] = list(cols)
    if len(cols) < 2:
        st.info("Pick at least two rankings to compare (e.g. routed, base, the oracle expert, any fixed expert).")
        return [], {}
    systems = {options[k][0]: options[k][1] for k in cols}
    depth = st.slider("Documents per ranking", 5, 30, 10, key="insp_depth")
    sbs = state.cached(views.side_by_side, row, systems, depth)
    measure_cols = st.columns(len(systems))
    for col, k, (label, system) in zip(measure_cols, cols, systems.items()):
        with col:
            st.markdown(f"**{safe.md(label)}**")
            sc = sbs["scores"][label]
            st.caption(" · ".join(f"{safe.md(m)} {views.x100(v)}" for m, v in sc.items()))
            _ranking_table(sbs["rankings"][label], f"insp_rank_{row}_{k}_{system}", len(systems))
            _snippets(sbs["rankings"][label], info["text"])
    st.caption("Green rows: judged relevant (● grade 1, ●● grade 2). Click a row to read its document below.")
    if not sbs["judged"]:
        st.info("This query has no judged documents, so there is nothing to track across rankings.")
    elif sbs["moves"].empty:
        st.info("No judged-relevant document (grade > 0) for this query.")
    else:
        st.markdown("**How each relevant document moved** (log scale; "
                    f"{sbs['depth'] + 1} = not in the top {sbs['depth']})")
        st.plotly_chart(legend_below(movement_figure(sbs["moves"], list(systems), sbs["depth"]), -0.22),
                        width="stretch", key="insp_moves")
    shown = []
    for r in sbs["rankings"].values():
        shown += [d for d in r["doc_id"] if d not in shown]
    return shown, sbs["judged"]


def _compare(ws, views, row: int, info: dict, strategy: str) -> tuple[list[str], dict]:
    """The 'Two strategies' view: A and B on this query, then on every query. Returns the documents shown and
    this query's judgements (for the reader)."""
    st.subheader("Two strategies")
    a, b, colour, measure = _compare_controls(ws, views, strategy)
    sbs = _compare_rankings(views, row, info, a, b, measure)
    _delta(ws, views, row, a, b, colour, measure)
    st.markdown("**Every test query: B − A, sorted** (a waterfall; click a bar to open its query)")
    key = "insp_waterfall"
    datasets = dict(zip(ws.eval_rows()["row"].astype(int), ws.eval_rows()["dataset"]))
    waterfall.draw(ws, a, b, measure, None, key, on_select=partial(_open_point, key, datasets))
    shown = []
    for r in (sbs["rankings"].values() if sbs else []):
        shown += [d for d in r["doc_id"] if d not in shown]
    return shown, (sbs["judged"] if sbs else {})


def _compare_controls(ws, views, strategy: str) -> tuple[str, str, str, str]:
    """Strategies A and B (A defaults to the reference, B to the page's strategy), the colouring of the delta
    scatter and the measure, each in the URL."""
    reference = ws.manifest.get("reference", "base")
    default_a = reference if reference in ws.strategies else ws.strategies[0]
    default_b = strategy if strategy != default_a else views.default_strategy(ws)
    k1, k2, k3, k4 = st.columns([1.3, 1.3, 1.2, 1])
    a = state.synced(st.selectbox, "Strategy A (x axis)", "a", ws.strategies, default_a, container=k1)
    b = state.synced(st.selectbox, "Strategy B (y axis)", "b", ws.strategies, default_b, container=k2)
    colour = state.synced(st.selectbox, "Colour points by", "by", list(COLOUR_BY), "dataset", container=k3,
                          format_func=COLOUR_BY.get)
    measure = state.synced(st.selectbox, "Measure", "measure", ws.measures, ws.label_measure, container=k4)
    return a, b, colour, measure


def _compare_rankings(views, row: int, info: dict, a: str, b: str, measure: str) -> dict | None:
    """This query under A and under B: decision, score, ranking. Returns their side_by_side (None when neither
    decided on it)."""
    depth = 10
    sides = {}
    for side, s in (("A", a), ("B", b)):
        sides[side] = state.cached(views.query_strategy, s, row, measure)
    systems = {f"{side} · {s}": sides[side]["system"] for side, s in (("A", a), ("B", b)) if sides[side]}
    sbs = state.cached(views.side_by_side, row, systems, depth, measure) if systems else None
    cols = st.columns(2)
    for col, (side, s) in zip(cols, (("A", a), ("B", b))):
        with col:
            d = sides[side]
            st.markdown(f"**{side} · {safe.md(s)}**")
            if not d:
                st.info(f"{safe.md(s)} made no decision on this query.")
                continue
            label = f"{side} · {s}"
            sc = sbs["scores"][label]
            weights = f" · weights {safe.md(d['weights'])}" if d["chosen"] == views.MIXTURE else ""
            st.caption(f"chose {safe.md(d['chosen'])} · margin {safe.md(d['margin'])}{weights} · "
                       + " · ".join(f"{safe.md(m)} {views.x100(v)}" for m, v in sc.items()))
            _ranking_table(sbs["rankings"][label], f"cmp_rank_{row}_{side}_{s}_{d['system']}", 2)
            _snippets(sbs["rankings"][label], info["text"])
    return sbs


def _delta(ws, views, row: int, a: str, b: str, colour: str, measure: str) -> None:
    """Every evaluated query, A against B: the delta scatter beside the list of the queries it selects (or of
    the largest differences)."""
    pair = state.cached(views.strategy_pair, a, b, measure)
    counts = views.pair_counts(pair)
    st.markdown(f"**Every test query: {safe.md(measure)} under A against B** (click a point to open its query; "
                "box or lasso to list several)")
    st.caption(f"B better on {counts['B better']} queries, A better on {counts['A better']}, tied on "
               f"{counts['tie']} (tied queries sit on the diagonal, often on one spot). Ringed: this query.")
    if colour == "dataset":
        keys, pal = pair["dataset"], dataset_palette(ws)
    elif colour in ("a", "b"):
        keys, pal = pair[f"chosen_{colour}"], expert_palette(ws.encoders)
    else:
        keys, pal = pair["outcome"], OUTCOME_COLOURS
    datasets = dict(zip(pair["row"].astype(int), pair["dataset"]))
    fig = delta_figure(pair, keys, pal, row, a, b, measure)
    plot_col, list_col = st.columns([1.35, 1])
    key = "insp_delta"
    with plot_col:
        event = st.plotly_chart(fig, width="stretch", key=key, on_select=partial(_open_point, key, datasets),
                                selection_mode=("points", "box", "lasso"))
    picked = [r for r in waterfall.picked_rows(event) if r in datasets]
    with list_col:
        _delta_list(pair, picked, datasets, f"insp_delta_top_{a}_{b}_{measure}")


def _delta_list(pair, picked: list[int], datasets: dict[int, str], top_key: str) -> None:
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
                 on_select=partial(_open_listed, lkey, listed["row"].astype(int).tolist(), datasets),
                 column_config={"qid": st.column_config.TextColumn(width=80),
                                "dataset": st.column_config.TextColumn(width=90),
                                "B − A": st.column_config.NumberColumn(format="%+.1f", width=60),
                                "text": st.column_config.TextColumn(width="large")})


def _reader(ws, views, row: int, info: dict, shown: list[str], judged: dict) -> None:
    st.markdown("**Read a document**")
    shown = list(shown) + [d for d in judged if d not in shown]
    # the document read is in the URL (`doc`, read when the reader is first drawn); one that this query's lists
    # do not hold closes the reader
    if "insp_doc" not in st.session_state:
        wanted = state.param("doc")
        st.session_state["insp_doc"] = wanted if wanted in shown else None
    elif st.session_state["insp_doc"] not in shown:
        st.session_state["insp_doc"] = None
    doc_id = st.selectbox("Document", shown, key="insp_doc", index=None,
                          placeholder="pick any document shown above (or a judged one), or click a ranking row")
    state.set_params(doc=doc_id)
    if doc_id:
        doc = views.document(ws, info["dataset"], doc_id)
        grade = judged.get(doc_id)
        terms = shared_terms(info["text"], doc.get("title", ""), doc.get("text", ""))
        with st.container(border=True, key="insp_reader"):
            st.caption(f"{safe.code(doc_id)} · "
                       f"{_grade(grade) or ('judged not relevant' if grade == 0 else 'not judged')} · query terms "
                       f"in it: {', '.join(safe.md(t) for t in terms) if terms else 'none'}")
            # title and text as one HTML block of escaped pieces, the query's terms in <mark>
            st.markdown(highlight.reader(doc.get("title", ""), doc.get("text", ""), terms), unsafe_allow_html=True)


if __name__ == "__main__":
    render()
