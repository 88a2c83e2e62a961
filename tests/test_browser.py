"""End to end in a real browser: `streamlit run app.py` on loopback, driven by Playwright with Debian's chromium.

Visits every page, selects a query on the routing map and in the error table (each opens the Query inspector),
runs a Playground query, and saves screenshots of each page to a temporary folder (to docs/screenshots/<page>.png
with `make screenshots`). Missing chromium fails the test.
Setup once: `apt-get install -y chromium` and `pip install playwright==1.65.2` (never `playwright install`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Screenshots go to a temporary folder; `make screenshots` (EXPLORER_REFRESH_SCREENSHOTS=1) refreshes docs/screenshots.
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("EXPLORER_REFRESH_SCREENSHOTS") else Path(
    tempfile.mkdtemp(prefix="explorer-screenshots-"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace_path(request, trains) -> Path:
    given = os.environ.get("EXPLORER_TEST_WORKSPACE")
    return Path(given) if given else request.getfixturevalue("sample_workspace").path


def healthy(url: str) -> bool:
    """Whether the server at `url` answers its health check."""
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).status == 200
    except OSError:
        return False


@contextmanager
def serving(workspace_path: Path, log: Path):
    """`streamlit run app.py` on a free loopback port, opened on `workspace_path`: yields (its url, its process),
    stopped afterwards; its output goes to `log`."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false", "--", "--workspace", str(workspace_path)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while not healthy(url):
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(workspace_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with serving(workspace_path, log) as (url, _):
        yield url
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def browser(trains):
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium (the test needs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def settle(pg, title: str | None = None, timeout: float = 90_000) -> None:
    """Wait until the app has drawn `title` and the script is no longer running."""
    pg.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    if title:
        pg.wait_for_selector(f'h1:has-text("{title}")', timeout=timeout)
    for _ in range(3):  # the status widget can flicker between reruns
        time.sleep(0.6)
        pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    assert pg.locator('[data-testid="stException"]').count() == 0, pg.locator(
        '[data-testid="stException"]').first.inner_text()


def shoot(pg, name: str, folder: Path = SHOTS) -> None:
    """A screenshot of the whole page: the viewport grows to the height of Streamlit's scrolling main area."""
    folder.mkdir(parents=True, exist_ok=True)
    height = pg.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                         " return m ? m.scrollHeight : document.body.scrollHeight; }")
    width = pg.viewport_size["width"]
    pg.set_viewport_size({"width": width, "height": max(800, min(int(height) + 40, 6000))})
    time.sleep(1.0)  # charts re-layout to the new size
    pg.screenshot(path=str(folder / f"{name}.png"))
    pg.set_viewport_size({"width": width, "height": 1000})


def test_every_page_and_selection_to_inspector(server, page):
    pg = page
    pg.goto(server + "/")
    settle(pg, "Overview")
    assert pg.locator("table").first.inner_text().count("\n") > 5
    shoot(pg, "overview")

    pg.goto(server + "/decisions")
    settle(pg, "Routing decisions")
    shoot(pg, "decisions")

    pg.goto(server + "/experts")
    settle(pg, "Experts")
    shoot(pg, "experts")

    # Routing map: click a test query; it opens in the Query inspector.
    pg.goto(server + "/map")
    settle(pg, "Routing map")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    shoot(pg, "routing_map")
    # the first test query with no other point within 6 px: a click there opens it (identical texts share a spot)
    point = pg.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
        const all = gd.calcdata.flatMap((cd, i) => cd.map((p, j) => (
            {x: r.left + xa._offset + xa.c2p(p.x), y: r.top + ya._offset + ya.c2p(p.y), i: i, j: j})));
        const p = all.find(p => (gd.data[p.i].name || '').startsWith('test:') && all.every(
            q => q === p || Math.hypot(q.x - p.x, q.y - p.y) > 6));
        return p && {x: p.x, y: p.y, row: gd.data[p.i].customdata[p.j]};
    }""")
    assert point, "no test query on the routing map stands apart from the other points"
    pg.mouse.move(point["x"], point["y"])
    time.sleep(0.5)
    pg.mouse.click(point["x"], point["y"])
    pg.wait_for_url(f"**/inspector?*row={point['row']}*", timeout=30_000)
    settle(pg, "Query inspector")
    assert pg.locator("h4").first.inner_text().strip().startswith("“")
    assert f"row {point['row']}" in " ".join(pg.locator('[data-testid="stCaptionContainer"]').all_inner_texts())
    shoot(pg, "inspector")

    # Error analysis: select the first row of the table; it opens in the Query inspector.
    pg.goto(server + "/errors")
    settle(pg, "Error analysis")
    shoot(pg, "errors")
    grid = pg.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    pg.mouse.click(box["x"] + 16, box["y"] + 35 + 17)
    pg.wait_for_url("**/inspector?*row=*", timeout=30_000)
    settle(pg, "Query inspector")

    # Playground: a typed query, routed live.
    pg.goto(server + "/playground?dataset=homefix")
    settle(pg, "Playground")
    box = pg.get_by_label("Query")
    box.fill("my kitchen tap keeps dripping after I turn it off")
    box.press("Enter")
    pg.wait_for_selector("text=Answered in", timeout=120_000)
    settle(pg, "Playground")
    assert pg.locator("text=What each strategy decides").count() == 1
    shoot(pg, "playground")

    # bad input gets a message, not a traceback
    box = pg.get_by_label("Query")
    box.fill("x" * 10_000)
    box.press("Enter")
    pg.wait_for_selector("text=the limit is", timeout=30_000)
    settle(pg)


def test_link_reopens_view(server, page, workspace_path):
    pg = page
    pg.goto(server + "/errors?strategy=prototype&wrong=1")
    settle(pg, "Error analysis")
    assert "prototype" in pg.locator('[data-testid="stSelectbox"]').first.inner_html()
    assert pg.get_by_role("checkbox", name="routed ≠ oracle").is_checked()
    pg.goto(server + "/?page=inspector&row=50")
    settle(pg, "Query inspector")
    assert "row 50" in pg.locator('[data-testid="stCaptionContainer"]').all_inner_texts().__str__()


# x tick labels of every Plotly chart on the page that overlap a neighbour: [[chart, label a, label b], ...].
# Level labels overlap when their boxes do; labels turned by an angle θ when two neighbours' parallel baselines lie
# closer than the font size (their x distance times sin θ).
OVERLAPPING_TICKS = """() => {
    const out = [];
    document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
        const ticks = [...gd.querySelectorAll('.xaxislayer-above .xtick text')].map(t => {
            const r = t.getBoundingClientRect();
            const m = /rotate\\((-?[0-9.]+)/.exec(t.getAttribute('transform') || '');
            return {text: t.textContent, r: r, x: r.left + r.width / 2, angle: m ? Math.abs(+m[1]) : 0,
                    size: parseFloat(getComputedStyle(t).fontSize) || 12};
        }).filter(t => t.r.width > 0).sort((a, b) => a.x - b.x);
        for (let k = 1; k < ticks.length; k++) {
            const [p, q] = [ticks[k - 1], ticks[k]];
            const clash = p.angle ? (q.x - p.x) * Math.sin(p.angle * Math.PI / 180) < 0.9 * p.size
                                  : p.r.right > q.r.left + 1;
            if (clash) out.push([i, p.text, q.text]);
        }
    });
    return out;
}"""


def test_research_views_overview_decisions_errors(server, page, workspace_path, tmp_path):
    """Issue 13: the Overview on a metadata slice with the significance toggle in the URL and a LaTeX download
    equal to `explorer eval --format latex`; Routing decisions with the ties filter on and no overlapping axis
    labels; Error analysis filtered by query kind, its download named for what it holds, a negative margin refused.
    Screenshots go to a temporary folder (printed)."""
    from urllib.parse import quote

    from explorer import analysis, export, views
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    shots = tmp_path / "shots"
    print(f"screenshots: {shots}")
    pg = page
    kinds = analysis.metadata_values(ws, "kind")
    kind = kinds["value"].iloc[-1]  # the rarest kind
    n = int(kinds["queries"].iloc[-1])

    # Overview on a slice; the significance toggle goes into the URL; the LaTeX table is the CLI's
    pg.goto(server + f"/?measure=RR%4010&slice=kind&slice_value={quote(kind)}")
    settle(pg, "Overview")
    assert pg.get_by_text(f"of {len(ws.eval_rows())} test queries").count() >= 1
    assert pg.get_by_text("Wins / ties / losses per query").count() == 1
    shoot(pg, "overview_slice", shots)
    pg.get_by_text("Significance marks").click()
    pg.wait_for_url("**sig=0**", timeout=30_000)
    settle(pg, "Overview")
    table = pg.locator("table").first.inner_text()
    assert "▲" not in table and "▼" not in table and table.count("\n") > 5
    with pg.expect_download(timeout=60_000) as download:
        pg.get_by_role("button", name="Table for a paper (LaTeX)").click()
    latex = Path(download.value.path()).read_text(encoding="utf-8")
    assert latex == export.paper_table(ws, "RR@10", None, "latex", with_marks=False, slice_by=("kind", kind))

    # Routing decisions: one query set for the page, labels that do not overlap
    ddr = [s for s in ws.strategies if ws.strategy_info(s).get("family") == "DDR"]
    for strategy in ["base", *ddr[:1]]:
        pg.goto(server + f"/decisions?strategy={quote(strategy)}&skip_ties=1")
        settle(pg, "Routing decisions")
        pg.wait_for_selector(".js-plotly-plot .xaxislayer-above .xtick text", state="attached", timeout=30_000)
        kept = analysis.query_table(ws, strategy)
        assert pg.get_by_text(f"{int((~kept['all_tie']).sum())} test queries").count() >= 1
        assert pg.evaluate(OVERLAPPING_TICKS) == []
        shoot(pg, f"decisions_{strategy}", shots)

    # Error analysis by query kind; the download says what it holds; a negative margin is refused
    pg.goto(server + f"/errors?kind={quote(kind)}")
    settle(pg, "Error analysis")
    assert pg.get_by_role("button", name=f"Download these {n} queries (CSV)").count() == 1
    pg.goto(server + f"/errors?kind={quote(kind)}&use_margin=1&margin=-0.1")  # a margin is never negative
    settle(pg, "Error analysis")
    pg.wait_for_selector("text=is outside 0.0", timeout=30_000)  # said, and the default margin used instead
    kept = analysis.query_table(ws, views.default_strategy(ws))
    kept = kept[(kept["kind"] == kind) & (kept["margin"].fillna(float("inf")) < 0.05)]
    assert pg.get_by_role("button", name=f"Download these {len(kept)} queries (CSV)").count() == 1
    shoot(pg, "errors_kind", shots)
