"""Issue 27's views in a real browser (tests/test_browser.py's server and Debian's chromium through Playwright): the
Oracle gap page (a part's link opens Error analysis on it, a map region becomes the cohort, which the other pages
keep), Complementarity (a click on a document opens it in the inspector's reader), the Routing map (search, expert
arrows, a box selection saved as the cohort, axes that stay put), and the per-query waterfall (a click on a bar
opens its query). Screenshots go to a temporary folder (printed); those of the new views go to docs/screenshots with
`make screenshots`."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from tests.test_browser import SHOTS as DOC_SHOTS
from tests.test_browser import OVERLAPPING_TICKS, browser, page, server, settle, workspace_path  # noqa: F401
from tests.test_browser import shoot as doc_shot
from tests.test_browser_views import SHOTS, chart_index, params, shoot
from tests.test_insight_views import embedding_experts

pytestmark = pytest.mark.browser

# bars of one chart, in page coordinates: the middle of each bar and its customdata
BARS = """(i) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    return gd._fullData.flatMap((t, k) => Array.from(t.x || [], (x, j) => ({
        x: r.left + xa._offset + xa.l2p(x), y: r.top + ya._offset + ya.l2p(t.y[j] / 2), value: t.y[j],
        row: t.customdata ? t.customdata[j] : null})));
}"""
ARROWS = """(i) => (document.querySelectorAll('.js-plotly-plot')[i].layout.annotations || [])
    .filter(a => a.axref === 'x').length"""
AXES = """(i) => { const l = document.querySelectorAll('.js-plotly-plot')[i]._fullLayout;
                  return [l.xaxis.range, l.yaxis.range]; }"""


def doc_element(locator, name: str) -> None:
    """A screenshot of one element, beside the page screenshots (docs/screenshots with `make screenshots`)."""
    DOC_SHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    time.sleep(0.8)
    locator.screenshot(path=str(DOC_SHOTS / f"{name}.png"))


def nav(pg, title: str) -> None:
    """Move to another page through the sidebar (as a person does: the URL's parameters are not carried)."""
    pg.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    settle(pg, title)


def test_oracle_gap_part_link_region_cohort_kept_across_pages(server, page, workspace_path):  # noqa: F811
    from explorer import views
    from explorer.gap import query_gaps, query_regions
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    print(f"screenshots: {SHOTS} and {DOC_SHOTS}")
    pg = page
    pg.goto(server + "/gap")
    settle(pg, "Oracle gap")
    pg.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
    assert pg.evaluate(OVERLAPPING_TICKS) == []
    doc_shot(pg, "oracle_gap")
    # a part's link opens Error analysis on its queries
    strategy = views.default_strategy(ws)
    pg.get_by_role("link", name="routing error").click()
    pg.wait_for_url("**/errors?*gap=routing*", timeout=30_000)
    settle(pg, "Error analysis")
    q = query_gaps(ws, strategy)
    n = int((q["part"] == "routing error").sum())
    assert pg.get_by_role("button", name=f"Download these {n} queries (CSV)").count() == 1
    # a region of the map becomes the cohort; moving through the sidebar keeps it on every page
    pg.goto(server + "/gap")
    settle(pg, "Oracle gap")
    pg.get_by_role("button", name="Make it the cohort").click()
    pg.wait_for_url("**cohort=*", timeout=30_000)
    settle(pg, "Oracle gap")
    region = params(pg)["cohort_name"].split()[-1]  # 'map region r<i>c<j>'
    regions = query_regions(ws, views.layout_methods(ws)[0])
    rows = [r for r in ws.eval_rows()["row"] if regions[r] == region]
    assert rows
    banner = f"{len(rows)} of {len(ws.eval_rows())} test queries. "  # the banner's, not a page's own count
    assert pg.get_by_text(banner).count() == 1
    for title in ("Error analysis", "Routing decisions", "Overview", "Complementarity"):
        nav(pg, title)
        assert pg.get_by_text(banner).count() == 1, title
        assert "cohort=" in pg.url
    shoot(pg, "complementarity_on_a_cohort")
    pg.get_by_role("button", name="Clear cohort").click()
    settle(pg, "Complementarity")
    assert pg.get_by_text(banner).count() == 0 and "cohort=" not in pg.url


def test_complementarity_opens_a_missed_document_in_the_reader(server, page, workspace_path):  # noqa: F811
    from explorer import views
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    dataset = next(d for d in ws.datasets if len(views.complementarity_view(ws, d)["missed"]))
    missed = views.complementarity_view(ws, dataset)["missed"].iloc[0]
    pg = page
    pg.goto(server + f"/complementarity?dataset={quote(dataset)}")
    settle(pg, "Complementarity")
    pg.wait_for_selector(".js-plotly-plot .heatmaplayer", state="attached", timeout=30_000)
    assert pg.evaluate(OVERLAPPING_TICKS) == []
    doc_shot(pg, "complementarity")
    grid = pg.locator('[data-testid="stDataFrame"]').nth(1)  # per encoder, then "found by no encoder"
    grid.scroll_into_view_if_needed()
    time.sleep(0.5)
    box = grid.bounding_box()
    pg.mouse.click(box["x"] + 17, box["y"] + 36 + 17)
    pg.wait_for_url(f"**/inspector?*doc={quote(missed['doc_id'])}*", timeout=30_000)
    settle(pg, "Query inspector")
    assert int(params(pg)["row"]) == int(missed["row"])
    assert missed["doc_id"] in pg.locator(".st-key-insp_reader").inner_text()


def test_map_search_arrows_and_a_box_saved_as_the_cohort(server, page, workspace_path):  # noqa: F811
    from explorer import views
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    pg = page
    q = ws.eval_rows().iloc[5]
    pg.goto(server + "/map")
    settle(pg, "Routing map")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    axes = pg.evaluate(AXES, 0)
    # find a query by its id: pick it, and its expert arrows are drawn
    box = pg.get_by_label("Find a test query (id or text)")
    box.fill(q["qid"])
    box.press("Enter")
    settle(pg, "Routing map")
    pg.locator(".st-key-w_map_focus").click()
    pg.get_by_role("option", name=f"{q['qid']} · {q['dataset']}").first.click()
    pg.wait_for_url(f"**focus={int(q['row'])}**", timeout=30_000)
    settle(pg, "Routing map")
    i = chart_index(pg, "expert arrows")
    assert pg.evaluate(ARROWS, i) == len(embedding_experts(ws))
    assert sum(pg.evaluate(AXES, i), []) == pytest.approx(sum(axes, []))
    # a dataset filter hides points; the axes stay
    pg.goto(server + f"/map?datasets={quote(ws.datasets[0])}")
    settle(pg, "Routing map")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    assert sum(pg.evaluate(AXES, 0), []) == pytest.approx(sum(axes, []))
    # a box selection saved as the cohort: ringed on the map, its arrows drawn, kept in the link
    from tests.test_browser_views import POINTS

    pg.goto(server + "/map")
    settle(pg, "Routing map")
    pg.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    time.sleep(0.5)
    tests = [p for p in pg.evaluate(POINTS, [0, ""]) if p["name"].startswith("test")]
    first = min(tests, key=lambda p: p["x"] + p["y"])
    x0, y0, x1, y1 = first["x"] - 40, first["y"] - 40, first["x"] + 40, first["y"] + 40
    pg.locator(".js-plotly-plot").first.hover()
    pg.locator('.modebar-btn[data-attr="dragmode"][data-val="select"]').first.click()
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move(x1, y1, steps=8)
    pg.mouse.up()
    save = pg.get_by_role("button", name="as the cohort")
    save.wait_for(timeout=30_000)
    n = int(save.inner_text().split()[2])
    pg.get_by_label("Cohort name").fill("corner")
    save.click()
    pg.wait_for_url("**cohort=*", timeout=30_000)
    settle(pg, "Routing map")
    assert params(pg)["cohort_name"] == "corner"
    ringed = pg.evaluate("""() => document.querySelector('.js-plotly-plot')._fullData
        .filter(t => (t.name || '').startsWith('cohort: corner'))[0].x.length""")
    assert ringed == n
    if n <= views.MAX_ARROW_QUERIES:
        assert pg.evaluate(ARROWS, 0) == n * len(embedding_experts(ws))
    doc_shot(pg, "routing_map_cohort")
    pg.goto(server + f"/map?focus={int(q['row'])}")  # the arrows of one query, for the documentation
    settle(pg, "Routing map")
    doc_shot(pg, "routing_map_arrows")


def test_waterfall_bar_opens_its_query(server, page, workspace_path):  # noqa: F811
    from explorer import views
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    b = views.default_strategy(ws)
    pg = page
    pg.goto(server + f"/?vs={quote(b)}")
    settle(pg, "Overview")
    pg.get_by_text("Statistics per cell").click()
    settle(pg, "Overview")
    doc_element(pg.locator('[data-testid="stExpander"]', has_text="Statistics per cell").first, "overview_statistics")
    i = pg.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].findIndex(
        gd => (gd._fullLayout.xaxis.title.text || '').startsWith('test queries'))""")
    assert i >= 0
    pg.locator(".js-plotly-plot").nth(i).scroll_into_view_if_needed()
    time.sleep(0.5)
    doc_element(pg.locator(".js-plotly-plot").nth(i), "overview_waterfall")
    bars = pg.evaluate(BARS, i)
    assert len(bars) == len(ws.eval_rows())
    top = max(bars, key=lambda p: p["value"])
    pg.mouse.move(top["x"], top["y"])
    time.sleep(0.4)
    pg.mouse.click(top["x"], top["y"])
    pg.wait_for_url(f"**/inspector?*row={top['row']}*", timeout=30_000)
    settle(pg, "Query inspector")
    # the inspector's A vs B view has the same waterfall
    pg.goto(server + f"/inspector?view=compare&row={top['row']}")
    settle(pg, "Query inspector")
    pg.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(
        gd => (gd._fullLayout.xaxis.title.text || '').startsWith('test queries'))""", timeout=30_000)
    shoot(pg, "inspector_waterfall")
