"""Issue 27's views on the pages, under AppTest on the sample workspace: the Oracle gap and Complementarity pages, the
Overview's per-cell statistics, saturated columns, waterfall and cohort filter, Error analysis by part of the gap,
and the Routing map's search, arrows, cohort and fixed axes. What a page shows is compared with the views' data
computed directly (tests/test_insight_views.py checks those against independent computations); clicks on charts
and tables are driven in tests/test_browser_insight.py."""

from __future__ import annotations

import pytest

from explorer import analysis, views
from explorer.cohort import encode
from explorer.gap import GAP_PARTS, query_gaps
from explorer.reviewer_stats import cell_statistics

from .test_app_views import app, by_label, charts, drawn, texts, values
from .test_app import ws  # noqa: F401  (ws: the sample workspace fixture, shared)
from .test_insight_views import embedding_experts
from .test_research_views import plotly_array


def test_oracle_gap_page_shows_the_closed_share_and_the_parts(ws):  # noqa: F811
    at = app(ws, "gap")
    strategy = views.default_strategy(ws)
    view = views.gap_view(ws, strategy, None, None, views.layout_methods(ws)[0])
    closed = at.dataframe[0].value
    for s in (strategy, "multi-task"):
        for d in ws.datasets:
            assert closed.loc[s, d] == pytest.approx(round(100 * view["wide"].loc[s, d], 1))
    parts = at.dataframe[1].value
    for d in view["decomposition"].index:
        assert parts.loc[d, "gap"] == pytest.approx(100 * view["decomposition"].loc[d, "gap"])
        assert sum(parts.loc[d, p] for p in GAP_PARTS) == pytest.approx(parts.loc[d, "gap"], abs=1e-9)
    fig = charts(at)[0]
    bars = {y: x for y, x in zip(fig["data"][0]["y"], values(fig["data"][0]["x"]))}
    avg = view["closed"][view["closed"]["dataset"] == analysis.AVERAGE].set_index("strategy")
    assert bars[strategy] == pytest.approx(100 * avg.loc[strategy, "closed"])
    assert f"{view['resamples']:,} resamples" in texts(at) and "seed 0" in texts(at)
    # a region becomes the cohort, kept in the URL; the page then counts its queries only
    region = at.selectbox(key="gap_region").value
    at.button(key="gap_region_cohort").click().run()
    drawn(at)
    assert at.query_params["cohort_name"] == f"map region {region}"
    from explorer.cohort import cohort_rows
    from explorer.gap import query_regions

    rows = cohort_rows(ws, at.query_params["cohort"])
    regions = query_regions(ws, views.layout_methods(ws)[0])
    assert set(rows) == {r for r in ws.eval_rows()["row"] if regions[r] == region}
    assert f"{len(rows)} of {len(ws.eval_rows())} test queries" in texts(at)
    assert at.dataframe[1].value["queries"].loc[analysis.AVERAGE] == len(rows)


def test_complementarity_page_tables_are_the_views(ws):  # noqa: F811
    dataset = ws.datasets[-1]
    at = app(ws, "complementarity", {"dataset": dataset})
    view = views.complementarity_view(ws, dataset)
    per = at.dataframe[0].value.set_index("encoder")
    assert list(per["found"]) == list(view["per_encoder"]["found"])
    assert list(per["only it"]) == list(view["per_encoder"]["only"])
    heat = charts(at)[0]["data"][0]
    assert plotly_array(heat["z"]).tolist() == view["pairs"].to_numpy().tolist()
    assert f"**{view['relevant']}** relevant pairs" in texts(at)


def test_overview_statistics_saturation_waterfall_and_cohort(ws):  # noqa: F811
    at = app(ws, "overview", {"measure": "nDCG@10"})
    stats = at.dataframe[0].value
    want = cell_statistics(ws, "nDCG@10", "base")
    assert len(stats) == len(want)
    assert list(stats["p_t_holm"]) == pytest.approx(list(want["p_t_holm"]))
    assert list(stats["delta"]) == pytest.approx(list((100 * want["delta"]).round(2)))
    wf = next(c for c in charts(at) if c["layout"]["xaxis"]["title"]["text"].startswith("test queries"))
    assert sum(len(values(t["x"])) for t in wf["data"]) == len(ws.eval_rows())
    # R@100 on the sample: when every strategy scores the same, the page says why
    r100 = app(ws, "overview", {"measure": "R@100"})
    table = analysis.summary(ws, "R@100")
    if ((100 * table).round(1).nunique(axis=1) == 1).any():
        assert "cannot tell the strategies apart" in texts(r100).replace("\\", "")
    # a cohort from a link filters the table; a broken one is said so and dropped
    rows = ws.eval_rows()["row"].to_numpy()[:40]
    text = encode(rows, len(ws.queries))
    c = app(ws, "overview", {"cohort": text, "cohort_name": "first forty"})
    assert "first forty" in texts(c) and f"40 of {len(ws.eval_rows())} test queries" in texts(c)
    sliced = analysis.summary(ws, "nDCG@10", slice_by=("@cohort", text))
    md = next(m.value for m in c.markdown if m.value.startswith("| strategy"))
    base = next(line for line in md.splitlines() if line.startswith("| `base` "))
    cells = [x.replace("**", "").strip().rstrip("▲▼") for x in base.strip().strip("|").split(" | ")[1:]]
    assert cells == [("—" if v != v else f"{100 * v:.1f}") for v in sliced["base"]]
    labels = [b.proto.label for b in c.get("download_button")]
    assert "Cohort qids (CSV)" in labels
    bad = app(ws, "overview", {"cohort": "r.0-99999999"})
    assert "cohort" in "\n".join(w.value for w in bad.warning) and "cohort" not in bad.query_params


def test_errors_by_part_of_the_gap_and_cohort(ws):  # noqa: F811
    strategy = views.default_strategy(ws)
    at = app(ws, "errors", {"strategy": strategy, "gap": "routing error"})
    q = query_gaps(ws, strategy)
    shown = at.dataframe[0].value
    assert set(shown["row"]) == set(q.index[q["part"] == "routing error"])
    assert set(shown["gap_part"]) <= {"routing error"}
    rows = ws.eval_rows()["row"].to_numpy()[5:25]
    c = app(ws, "errors", {"strategy": strategy, "cohort": encode(rows, len(ws.queries))})
    assert set(c.dataframe[0].value["row"]) == set(rows)
    d = app(ws, "decisions", {"cohort": encode(rows, len(ws.queries))})
    assert f"{len(rows)} test queries" in texts(d)


def test_map_search_arrows_cohort_and_fixed_axes(ws):  # noqa: F811
    q = ws.eval_rows().iloc[3]
    at = app(ws, "map", {"find": q["qid"]})
    assert at.selectbox(key="w_map_focus").options[1].startswith(q["qid"])
    at.selectbox(key="w_map_focus").set_value(int(q["row"])).run()
    drawn(at)
    assert at.query_params["focus"] == str(q["row"])
    fig = charts(at)[0]
    arrows = [a for a in fig["layout"]["annotations"] if a.get("axref") == "x"]
    assert len(arrows) == len(embedding_experts(ws))
    want = views.expert_arrows(ws, [int(q["row"])], "umap")
    assert sorted(a["x"] for a in arrows) == pytest.approx(sorted(want["x1"]))
    ext = views.map_extent(ws, "umap")
    assert fig["layout"]["xaxis"]["range"] == pytest.approx(ext["x"])
    # a dataset filter hides points; the axes stay those of the whole map
    narrow = app(ws, "map", {"datasets": ws.datasets[0]})
    assert charts(narrow)[0]["layout"]["yaxis"]["range"] == pytest.approx(ext["y"])
    # a cohort of a few queries is ringed, with arrows for each
    rows = ws.eval_rows()["row"].to_numpy()[:3]
    c = app(ws, "map", {"cohort": encode(rows, len(ws.queries)), "cohort_name": "three"})
    fig = charts(c)[0]
    ringed = next(t for t in fig["data"] if str(t.get("name", "")).startswith("cohort: three"))
    assert len(values(ringed["x"])) == 3
    assert len([a for a in fig["layout"]["annotations"] if a.get("axref") == "x"]) == 3 * len(embedding_experts(ws))
    off = app(ws, "map", {"cohort": encode(rows, len(ws.queries)), "arrows": "0"})
    assert not [a for a in charts(off)[0]["layout"].get("annotations", []) if a.get("axref") == "x"]
    assert by_label(off.toggle, "Expert arrows").value is False
