"""Issue 13's views in a real browser (tests/test_browser.py's server and Debian's chromium through Playwright):
the Query inspector's four rankings fit without scrolling, a clicked ranking row opens its document with the
query's terms marked, a bad URL row says so, legends stay clear of Plotly's toolbar, a click on the A-vs-B
scatter opens that query; the Routing map's centroid labels do not overlap, its pilot toggle goes into the URL
and a box selection lists its test queries (a row click opens one); the Playground's example buttons, every
corpus at once, the out-of-domain line, the readable "your query" label and a rejected query kept out of the URL;
Experts' wide what-if tables scroll inside their frame. Screenshots go to a temporary folder (printed), or to
EXPLORER_VIEW_SHOTS when set."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.test_browser import browser, page, server, settle, workspace_path  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("EXPLORER_VIEW_SHOTS") or tempfile.mkdtemp(prefix="explorer-views-"))

# every ranking table's grid scrolls horizontally? [[index, scrollWidth, clientWidth], ...]
GRIDS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map((d, i) => {
    const s = d.querySelector('.dvn-scroller');
    return s ? [i, s.scrollWidth, s.clientWidth] : [i, 0, 0];
})"""
# a chart's legend and toolbar boxes (the toolbar shows on hover)
LEGEND_AND_TOOLBAR = """(i) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                       return r.width && r.height ? [r.left, r.top, r.right, r.bottom] : null; };
    return {legend: box(gd.querySelector('.legend')), toolbar: box(gd.querySelector('.modebar'))};
}"""
# pixel position and customdata of every point of one chart's traces (name filter), in page coordinates
POINTS = """([i, prefix]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    return gd.calcdata.flatMap((cd, t) => cd.map((p, j) => ({
        x: r.left + xa._offset + xa.c2p(p.x), y: r.top + ya._offset + ya.c2p(p.y), name: gd.data[t].name || '',
        row: gd.data[t].customdata ? gd.data[t].customdata[j] : null})))
        .filter(p => isFinite(p.x) && isFinite(p.y));
}"""
ANNOTATION_BOXES = """(i) => [...document.querySelectorAll('.js-plotly-plot')[i].querySelectorAll('.annotation')]
    .map(a => { const r = (a.querySelector('.bg') || a).getBoundingClientRect();
                return [a.textContent, r.left, r.top, r.right, r.bottom]; })"""


def shoot(pg, name: str) -> Path:
    """The whole page (the viewport grows to the main area's height), then back to 1500 x 1000."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = pg.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    pg.set_viewport_size({"width": 1500, "height": max(800, min(int(height) + 40, 6000))})
    time.sleep(1.0)
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": 1500, "height": 1000})
    time.sleep(0.5)
    return path


def overlap(a, b, slack: float = 0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def chart_index(pg, trace_name: str) -> int:
    """The index of the first Plotly chart with a trace of that name."""
    i = pg.evaluate("""(name) => [...document.querySelectorAll('.js-plotly-plot')]
        .findIndex(gd => gd.data.some(t => (t.name || '') === name || (t.name || '').startsWith(name)))""",
                    trace_name)
    assert i >= 0, f"no chart has a trace {trace_name!r}"
    return i


def apart(points: list[dict], gap: float = 9) -> list[dict]:
    """The points with no other point within `gap` px (a click there hits that one)."""
    return [p for p in points if all(q is p or abs(q["x"] - p["x"]) + abs(q["y"] - p["y"]) > gap for q in points)]


def params(pg) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(pg.url).query).items()}


def test_inspector_rankings_reader_urls_and_scatter(server, page, workspace_path):  # noqa: F811
    from explorer import views
    from explorer.terms import shared_terms
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    print(f"screenshots: {SHOTS}")
    pg = page
    row = int(ws.eval_rows(ws.datasets[1])["row"].iloc[1])
    cols = ["routed", "base", "oracle", ws.candidates[-1]]
    pg.goto(server + f"/inspector?row={row}&" + "&".join(f"cols={c}" for c in cols))
    settle(pg, "Query inspector")
    pg.wait_for_selector(".js-plotly-plot .legend", timeout=30_000)
    # four rankings side by side: no grid scrolls sideways (the decision table, grid 0, may)
    try:
        pg.wait_for_function("document.querySelectorAll('[data-testid=\"stDataFrame\"] .dvn-scroller').length >= 5",
                             timeout=30_000)
    finally:
        pg.screenshot(path=str(SHOTS / "inspector_four_rankings.png"), full_page=True)
    grids = pg.evaluate(GRIDS)
    assert len(grids) >= 5
    for i, width, client in grids[1:5]:
        assert client and width <= client + 1, (i, width, client)
    # each chart's legend is clear of the toolbar, which shows on hover
    for i in range(pg.locator(".js-plotly-plot").count()):
        pg.locator(".js-plotly-plot").nth(i).scroll_into_view_if_needed()
        pg.locator(".js-plotly-plot").nth(i).hover()
        time.sleep(0.4)
        boxes = pg.evaluate(LEGEND_AND_TOOLBAR, i)
        if boxes["legend"] and boxes["toolbar"]:
            assert not overlap(boxes["legend"], boxes["toolbar"]), (i, boxes)
    shoot(pg, "inspector_four_rankings")
    # snippets: the terms each document shares with the query, marked
    from explorer.terms import query_terms

    expander = pg.get_by_text("Snippets (query terms marked)").first
    expander.scroll_into_view_if_needed()
    expander.click()
    snippets = pg.locator('[data-testid="stExpander"]', has_text="Snippets (query terms marked)").first \
        .locator('[data-testid="stExpanderDetails"]')
    snippets.wait_for(timeout=10_000)
    marked = {m.lower() for m in snippets.locator("mark").all_inner_texts()}
    assert marked and marked <= set(query_terms(ws.queries.iloc[row]["text"]))
    snippets.screenshot(path=str(SHOTS / "inspector_snippets.png"))

    # a click on a ranking row (its selection box) opens that document in the reader, terms marked
    options = views.column_options(ws, row, views.default_strategy(ws))
    ranking = ws.ranking(options["routed"][1], row)
    grid = pg.locator('[data-testid="stDataFrame"]').nth(1)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    row_h = (box["height"] - 40) / len(ranking)
    hits = [i for i, d in enumerate(ranking.itertuples()) if shared_terms(ws.queries.iloc[row]["text"], d.title,
                                                                          d.text)]
    pick = hits[0] if hits else 2  # a document that shares terms with the query, to see them marked
    pg.mouse.click(box["x"] + 17, box["y"] + 37 + row_h * pick + row_h / 2)
    doc = ranking.iloc[pick]
    pg.wait_for_url(f"**doc={doc['doc_id']}**", timeout=30_000)
    settle(pg, "Query inspector")
    reader = pg.locator(".st-key-insp_reader")
    assert doc["title"] in reader.inner_text()
    terms = shared_terms(ws.queries.iloc[row]["text"], doc["title"], doc["text"])
    marks = {m.lower() for m in reader.locator("mark").all_inner_texts()}
    assert marks == set(terms) and (marks or not hits)
    reader.scroll_into_view_if_needed()
    shoot(pg, "inspector_reader")

    # a row that is not a test query says so and names the query shown instead
    bad = len(ws.queries) + 1000
    pg.goto(server + f"/inspector?row={bad}")
    settle(pg, "Query inspector")
    first = ws.queries.iloc[views.showcase_row(ws, ws.datasets[0], views.default_strategy(ws))]
    warning = pg.locator('[data-testid="stAlert"]').first.inner_text()
    assert f"row {bad} is not a test query" in warning and f"showing {first['qid']}" in warning
    assert params(pg)["row"] == str(int(first["row"]))

    # two strategies: a click on a point of the delta scatter opens that query
    a, b = "base", views.default_strategy(ws)
    pg.goto(server + f"/inspector?row={row}&view=compare&a={a}&b={b}")
    settle(pg, "Query inspector")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    i = chart_index(pg, "this query")
    pg.locator(".js-plotly-plot").nth(i).scroll_into_view_if_needed()
    time.sleep(0.5)
    points = [p for p in pg.evaluate(POINTS, [i, ""]) if p["name"] != "this query"]
    pair = views.strategy_pair(ws, a, b)
    assert sorted(p["row"] for p in points) == sorted(pair["row"].astype(int))
    shoot(pg, "inspector_compare")
    pg.locator(".js-plotly-plot").nth(i).scroll_into_view_if_needed()
    time.sleep(0.5)
    points = [p for p in pg.evaluate(POINTS, [i, ""]) if p["name"] != "this query"]
    target = next(p for p in apart(points) if p["row"] != row)
    pg.mouse.move(target["x"], target["y"])
    time.sleep(0.4)
    pg.mouse.click(target["x"], target["y"])
    pg.wait_for_url(f"**row={target['row']}**", timeout=30_000)
    settle(pg, "Query inspector")
    assert ws.queries.iloc[target["row"]]["text"] in pg.locator("h4").first.inner_text()
    assert params(pg)["view"] == "compare" and params(pg).get("b", b) == b  # B kept (a default stays out)
    assert pg.get_by_text(f"B · {b}", exact=True).count() == 1
    shoot(pg, "inspector_compare_opened")
    # the largest differences beside the plot: a click on one opens it too
    moved = pair[pair["outcome"] != "tie"]
    top = moved.reindex(moved["delta"].abs().sort_values(ascending=False, kind="stable").index)
    first = int(top["row"].iloc[0]) if int(top["row"].iloc[0]) != target["row"] else int(top["row"].iloc[1])
    listed = pg.locator('[data-testid="stDataFrame"]').nth(3)
    listed.scroll_into_view_if_needed()
    box = listed.bounding_box()
    at = top["row"].astype(int).tolist().index(first)
    pg.mouse.click(box["x"] + 17, box["y"] + 36 + 35 * at + 17)
    pg.wait_for_url(f"**row={first}**", timeout=30_000)
    settle(pg, "Query inspector")
    assert ws.queries.iloc[first]["text"] in pg.locator("h4").first.inner_text()


def test_routing_map_labels_toggle_and_box_selection(server, page, workspace_path):  # noqa: F811
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    pg = page
    pg.goto(server + "/map")
    settle(pg, "Routing map")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    labels = pg.evaluate(ANNOTATION_BOXES, 0)
    assert labels and {t for t, *_ in labels} <= set(ws.pilots["expert"])
    for k, (ta, *pa) in enumerate(labels):
        for tb, *pb in labels[k + 1:]:
            assert not overlap(pa, pb), (ta, pa, tb, pb)
    # the pilot-queries toggle is in the URL
    pg.get_by_text("Show pilot training queries").click()
    pg.wait_for_url("**pilots=0**", timeout=30_000)
    settle(pg, "Routing map")
    assert pg.evaluate("() => document.querySelector('.js-plotly-plot').data"
                       ".filter(t => (t.name || '').startsWith('pilot queries')).length") == 0
    # a box selection lists its test queries; a click on a listed row opens it in the inspector
    pg.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    time.sleep(0.5)
    tests = [p for p in pg.evaluate(POINTS, [0, ""]) if p["name"].startswith("test")]
    centre = sorted(tests, key=lambda p: sum(abs(p["x"] - q["x"]) + abs(p["y"] - q["y"]) < 120 for q in tests))[-1]
    x0, y0, x1, y1 = centre["x"] - 60, centre["y"] - 60, centre["x"] + 60, centre["y"] + 60
    # points well inside the box, and those within a few px of its edge (Plotly may count them either way)
    sure = {p["row"] for p in tests if x0 + 4 < p["x"] < x1 - 4 and y0 + 4 < p["y"] < y1 - 4}
    inside = {p["row"] for p in tests if x0 - 4 < p["x"] < x1 + 4 and y0 - 4 < p["y"] < y1 + 4}
    assert len(sure) >= 2
    pg.locator(".js-plotly-plot").first.hover()
    pg.locator('.modebar-btn[data-attr="dragmode"][data-val="select"]').first.click()
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    pg.mouse.move(x1, y1, steps=5)
    pg.mouse.up()
    pg.wait_for_selector("text=test queries selected", timeout=30_000)
    settle(pg, "Routing map")
    shown = pg.get_by_text("test queries selected").first.inner_text()
    assert len(sure) <= int(shown.split()[0]) <= len(inside), (shown, len(sure), len(inside))
    table = pg.locator('[data-testid="stDataFrame"]').first
    table.scroll_into_view_if_needed()
    shoot(pg, "routing_map_selection")
    assert pg.evaluate(ANNOTATION_BOXES, 0)  # labels still drawn
    table.scroll_into_view_if_needed()
    time.sleep(0.5)
    box = table.bounding_box()
    pg.mouse.click(box["x"] + 17, box["y"] + 36 + 17)
    pg.wait_for_url("**/inspector?*", timeout=30_000)
    settle(pg, "Query inspector")
    assert int(params(pg)["row"]) in inside


def test_playground_examples_every_corpus_and_ood(server, page, workspace_path):  # noqa: F811
    from explorer.ui.playground import EXAMPLES

    pg = page
    pg.goto(server + "/playground")
    settle(pg, "Playground")
    pg.get_by_role("button", name=EXAMPLES[2]).click()
    pg.wait_for_selector("text=Answered in", timeout=120_000)
    settle(pg, "Playground")
    assert params(pg)["q"] == EXAMPLES[2]
    assert pg.get_by_label("Query").input_value() == EXAMPLES[2]
    assert pg.get_by_text("nearest pilot centroid at similarity").count() == 1
    # every corpus at once: the results show each row's dataset
    pg.get_by_label("Search the corpus of").click()
    pg.get_by_role("option", name="every corpus (merged)").click()
    pg.wait_for_url("**dataset=**", timeout=30_000)
    pg.wait_for_selector("text=Top documents of every corpus", timeout=60_000)
    settle(pg, "Playground")
    # "your query": a boxed label on a white background above the traces
    i = chart_index(pg, "your query")
    label = pg.evaluate("""(i) => { const gd = document.querySelectorAll('.js-plotly-plot')[i];
        const a = [...gd.querySelectorAll('.annotation')].find(a => a.textContent === 'your query');
        if (!a) return null; const bg = a.querySelector('.bg');
        return {fill: bg.style.fill, stroke: bg.style.stroke, size: a.querySelector('text').style.fontSize}; }""", i)
    assert label and label["fill"].startswith("rgb(255, 255, 255)") and float(label["size"][:-2]) >= 13
    shoot(pg, "playground_every_corpus")
    # a rejected query is not written into the URL
    box = pg.get_by_label("Query")
    box.fill("x" * 5000)
    box.press("Enter")
    pg.wait_for_selector("text=the limit is", timeout=30_000)
    settle(pg, "Playground")
    assert "q" not in params(pg)


def test_experts_whatif_tables_scroll_inside_their_frame(server, page, workspace_path):  # noqa: F811
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    pg = page
    pg.goto(server + f"/experts?off={ws.candidates[0]}")
    settle(pg, "Experts")
    assert "−0.0" not in pg.locator('[data-testid="stMain"]').inner_text()
    assert pg.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                       " return m.scrollWidth <= m.clientWidth + 1; }")  # the page itself never scrolls sideways
    pg.wait_for_function(f"() => ({GRIDS})().some(g => g[1] > g[2] + 1)", timeout=30_000)  # grids drawn
    grids = pg.evaluate(GRIDS)
    wide = [g for g in grids if g[1] > g[2] + 1]
    assert wide  # the what-if tables scroll inside their own frame
    grid = pg.locator('[data-testid="stDataFrame"]').nth(wide[0][0])
    grid.scroll_into_view_if_needed()
    pg.evaluate("(i) => { const s = document.querySelectorAll('[data-testid=\"stDataFrame\"]')[i]"
                ".querySelector('.dvn-scroller'); s.scrollLeft = s.scrollWidth; }", wide[0][0])
    time.sleep(0.8)
    SHOTS.mkdir(parents=True, exist_ok=True)
    grid.screenshot(path=str(SHOTS / "experts_whatif_scrolled.png"))  # the dataset column stays (pinned)
    shoot(pg, "experts")
