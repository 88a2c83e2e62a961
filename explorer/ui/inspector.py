"""Query inspector: one test query, its similarity to every expert's pilots, every strategy's decision, and 2–4
rankings side by side with relevance grades and how each relevant document moved."""

from __future__ import annotations

import streamlit as st

from explorer.ui import safe, state
from explorer.ui.figures import missing_pilots, movement_figure, similarity_figure
from explorer.ui.style import expert_palette

GRADE_MARK = {0: "", 1: "●", 2: "●●", 3: "●●●"}


def _grade(g) -> str:
    if g is None or g != g:
        return ""
    return GRADE_MARK.get(int(g), "●" * int(g))


def render() -> None:
    ws = state.workspace()
    from explorer import views

    st.title("Query inspector")
    state.score_note()
    ev = ws.eval_rows()
    if ev.empty:
        st.info("This workspace has no evaluated (test) queries to inspect.")
        return
    # A row given in the URL picks its dataset (the URL is untrusted: only a row of a test query counts).
    url_row = state.param("row")
    if url_row is not None and "qp_dataset" not in st.session_state:
        try:
            hit = ev[ev["row"] == int(url_row)]
        except (ValueError, OverflowError):
            hit = ev.iloc[:0]
        if len(hit):
            st.query_params["dataset"] = str(hit["dataset"].iloc[0])
    c1, c2, c3 = st.columns([1, 3, 1.5])
    dataset = state.synced(st.selectbox, "Dataset", "dataset", ws.datasets, ws.datasets[0], container=c1,
                           keep_in_url=True)
    rows = ev[ev["dataset"] == dataset]
    if rows.empty:
        st.info(f"{safe.md(dataset)} has no test queries: pick another dataset.")
        return
    texts = dict(zip(rows["row"].astype(int), rows["qid"] + " · " + rows["text"].str.slice(0, 100)))
    row = state.synced(st.selectbox, "Query", "row", list(texts), int(rows["row"].iloc[0]), container=c2,
                       cast=int, format_func=texts.get, keep_in_url=True)
    strategy = state.synced(st.selectbox, "Strategy (for the routed column)", "strategy", ws.strategies,
                            views.default_strategy(ws), container=c3)
    info = views.query_info(ws, row)
    # the query text as one HTML block of escaped text: nothing in it is read as Markdown or HTML
    st.markdown(f"<h4>“{safe.html(info['text'], quote=False)}”</h4>", unsafe_allow_html=True)
    st.caption(f"query {safe.md(info['qid'])} · dataset {safe.md(info['dataset'])} · kind {safe.md(info['kind'])} · "
               f"row {row}")

    palette = expert_palette(ws.encoders)
    left, right = st.columns([1, 1])
    with left:
        st.markdown("**Similarity to every expert's pilots** (base-encoder embedding)")
        sims = state.cached("views:query_pilot_similarity", row)
        st.plotly_chart(similarity_figure(sims, palette, info["text"]), width="stretch", key="insp_sim")
        none = missing_pilots(sims, ws.candidates)
        if none:
            st.caption("No pilot centroid (no pilot query had them as best expert): "
                       + ", ".join(safe.md(n) for n in none))
    with right:
        st.markdown("**Every strategy's decision**")
        dec = state.cached("views:query_decisions", row)
        dec = dec.assign(score=(100 * dec["score"]).round(1))
        st.dataframe(dec, hide_index=True, width="stretch", height=330, column_config={
            "score": st.column_config.NumberColumn("nDCG@10 ×100", format="%.1f"),
            "margin": st.column_config.NumberColumn("margin", format="%.3f"),
            "weights": st.column_config.TextColumn("weights over experts")})

    st.subheader("Rankings side by side")
    options = views.column_options(ws, row, strategy)
    default = [k for k in ("routed", "base", "oracle") if k in options]
    cols = state.synced(st.multiselect, "Compare (2–4 rankings)", "cols", list(options), default,
                        format_func=lambda k: options[k][0], max_selections=4)
    if len(cols) < 2:
        st.info("Pick at least two rankings to compare (e.g. routed, base, the oracle expert, any fixed expert).")
        return
    systems = {options[k][0]: options[k][1] for k in cols}
    depth = st.slider("Documents per ranking", 5, 30, 10, key="insp_depth")
    sbs = state.cached("views:side_by_side", row, systems, depth)
    measure_cols = st.columns(len(systems))
    for col, label in zip(measure_cols, systems):
        with col:
            st.markdown(f"**{safe.md(label)}**")
            sc = sbs["scores"][label]
            st.caption(" · ".join(f"{safe.md(m)} {views.x100(v)}" for m, v in sc.items()))
            r = sbs["rankings"][label]
            table = r.assign(rel=[_grade(g) for g in r["grade"]])[["rank", "rel", "title", "score", "doc_id"]]
            styled = table.style.apply(
                lambda row: ["background-color: #d8f0d8" if row["rel"] else "" for _ in row], axis=1
            ).format({"score": "{:.3f}"})
            st.dataframe(styled, hide_index=True, width="stretch", height=38 + 35 * len(table), column_config={
                "rank": st.column_config.NumberColumn("#", width=30),
                "rel": st.column_config.TextColumn("rel", width=45, help="● relevant, ●● highly relevant (qrels)"),
                "title": st.column_config.TextColumn("title", width="large")})
    st.caption("Green rows: judged relevant (● grade 1, ●● grade 2).")
    if not sbs["judged"]:
        st.info("This query has no judged documents, so there is nothing to track across rankings.")
    elif sbs["moves"].empty:
        st.info("No judged-relevant document (grade > 0) for this query.")
    else:
        st.markdown("**How each relevant document moved** (log scale; "
                    f"{sbs['depth'] + 1} = not in the top {sbs['depth']})")
        st.plotly_chart(movement_figure(sbs["moves"], list(systems), sbs["depth"]), width="stretch",
                        key="insp_moves")

    st.markdown("**Read a document**")
    shown = []
    for r in sbs["rankings"].values():
        shown += [d for d in r["doc_id"] if d not in shown]
    shown += [d for d in sbs["judged"] if d not in shown]
    doc_id = st.selectbox("Document", shown, key="insp_doc", index=None,
                          placeholder="pick any document shown above (or a judged one)")
    if doc_id:
        doc = views.document(ws, info["dataset"], doc_id)
        grade = sbs["judged"].get(doc_id)
        with st.container(border=True):
            st.markdown(f"**{safe.md(doc.get('title', ''))}** · {safe.code(doc_id)} · "
                        f"{_grade(grade) or ('judged not relevant' if grade == 0 else 'not judged')}")
            st.text(safe.text(doc.get("text")))  # plain text, never Markdown


if __name__ == "__main__":
    render()
