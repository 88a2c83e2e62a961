"""Issue 24's error-analysis session in a real browser (Debian's chromium through Playwright, the server of
tests/test_browser.py): moving between pages with the sidebar keeps the strategy; the inspected query survives a
trip to Error analysis; previous / next walk the Error-analysis selection; the Playground searches the routed
expert's corpus; browser Back reopens the previous view. Screenshots go to a temporary folder (printed)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.test_browser import browser, page, server, settle, workspace_path  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("EXPLORER_VIEW_SHOTS") or tempfile.mkdtemp(prefix="explorer-session-"))
TITLES = {"map": "Routing map", "decisions": "Routing decisions", "errors": "Error analysis",
          "inspector": "Query inspector", "playground": "Playground", "overview": "Overview"}


def params(pg) -> dict:
    return {k: v[-1] for k, v in parse_qs(urlparse(pg.url).query).items()}


def sidebar(pg, key: str) -> None:
    """Move to a page as a researcher does: its link in the sidebar."""
    pg.locator('[data-testid="stSidebarNav"] a').filter(has_text=TITLES[key]).first.click()
    settle(pg, TITLES[key])


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_strategy_and_the_query_survive_moving_between_pages(server, page, workspace_path):  # noqa: F811
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    print(f"screenshots: {SHOTS}")
    pg = page
    picked = "pilot-nearest"
    pg.goto(server + f"/map?strategy={picked}")
    settle(pg, TITLES["map"])
    for key in ("decisions", "errors", "map", "decisions"):
        sidebar(pg, key)
        assert params(pg).get("strategy") == picked, (key, pg.url)  # the link names the values the page drew
        shot(pg, f"context_{key}")
    row = int(ws.eval_rows(ws.datasets[-1])["row"].iloc[2])
    pg.goto(server + f"/inspector?row={row}")
    settle(pg, TITLES["inspector"])
    text = ws.queries.iloc[row]["text"]
    assert text[:40] in pg.locator("h4").first.inner_text()
    sidebar(pg, "errors")
    sidebar(pg, "inspector")
    assert params(pg).get("row") == str(row), pg.url
    assert text[:40] in pg.locator("h4").first.inner_text()
    shot(pg, "context_inspector_back")
    pg.go_back()  # the browser's Back: the previous view again
    settle(pg)
    assert "Error analysis" in pg.locator("h1").first.inner_text() or params(pg).get("row") == str(row)


def test_previous_and_next_walk_a_filtered_error_list(server, page, workspace_path):  # noqa: F811
    from explorer.pages import page_data
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    pg = page
    pg.goto(server + "/errors?hurt=1&sort=margin")
    settle(pg, TITLES["errors"])
    rows = [q["row"] for q in page_data("errors", ws, {"hurt": "1", "sort": "margin"})["queries"]]
    assert len(rows) >= 3
    pg.get_by_role("button", name="Open in inspector").click()  # the picker's first query: the table's first row
    pg.wait_for_url(f"**row={rows[0]}**", timeout=30_000)
    settle(pg, TITLES["inspector"])
    assert pg.get_by_text(f"1 of {len(rows)}").count() >= 1
    shot(pg, "triage_first")
    for step, want in ((1, rows[1]), (2, rows[2])):
        pg.get_by_role("button", name="next ▶").click()
        pg.wait_for_url(f"**row={want}**", timeout=30_000)
        settle(pg, TITLES["inspector"])
        assert pg.get_by_text(f"{step + 1} of {len(rows)}").count() >= 1
    pg.get_by_role("button", name="◀ previous").click()
    pg.wait_for_url(f"**row={rows[1]}**", timeout=30_000)
    settle(pg, TITLES["inspector"])
    assert ws.queries.iloc[rows[1]]["text"][:40] in pg.locator("h4").first.inner_text()
    shot(pg, "triage_previous")


def test_the_playground_searches_the_routed_experts_corpus(server, page, workspace_path):  # noqa: F811
    from explorer.workspace import Workspace

    ws = Workspace(workspace_path)
    pg = page
    pg.goto(server + "/playground?q=reverse+a+linked+list+in+python")
    pg.wait_for_selector("text=Answered in", timeout=180_000)
    settle(pg, TITLES["playground"], timeout=180_000)
    caption = pg.get_by_text("Answered in").first.inner_text()
    assert "the corpus of pycode" in caption, caption
    docs = set(ws.docs("pycode")["doc_id"])
    grid = pg.locator('[data-testid="stDataFrame"]').nth(1)
    assert grid.count()
    shot(pg, "playground_routed_corpus")
    assert any(d in pg.content() for d in list(docs)[:200])
