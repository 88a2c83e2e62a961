"""The app on a hostile workspace and hostile URLs: nothing from the workspace or the URL reaches the page as HTML
or Markdown, a page that fails says so in one line (no traceback), and no URL parameter raises.

The hostile workspace is a copy of the sample one whose manifest title, strategy description, query texts and
document titles and texts carry Markdown images, HTML, autolinks, Streamlit directives and math. Names stay
valid (the workspace's own validation refuses others), but the pages escape them too.

The browser test serves the hostile copy (tests/test_browser.py's server and chromium), records every request and
checks that none leaves the app's own host and port and that no image, link, styled text or math was injected.
Its screenshots always go to a temporary folder (hostile pages are not documentation).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
import tomllib
from pathlib import Path
from urllib.parse import quote, urlparse

import pandas as pd
import pytest

from explorer import views
from explorer.pages import PAGES
from explorer.ui import safe
from explorer.workspace import Workspace
from tests.test_app import PAGE, app, ws  # noqa: F401 - `ws`: the sample workspace fixture
from tests.test_browser import browser, page, server, settle  # noqa: F401 - the app server and chromium

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = "127.0.0.1:9"
HOSTILE = (f'![pwn](http://{OUTSIDE}/pwn.png) <img src=x onerror=alert(1)> <a href="http://{OUTSIDE}/x">click</a> '
           ":red[styled] **bold** $x^2$")
# more of what Markdown and Streamlit read: blocks after a line break, autolinks, logo, emoji, table, code
HOSTILE_MORE = HOSTILE + ("\n\n# heading\n- item\n> quote\n| a | b |\n|---|---|\n"
                          f"www.{OUTSIDE}.example mail@{OUTSIDE}.example :streamlit: :smile: `code` [l](x) -> x")


def hostile_copy(src: Path, dst: Path) -> Path:
    """A copy of the workspace `src` with hostile texts in its manifest and tables (valid names, valid shapes)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["title"] = "Hostile " + HOSTILE
    for s in manifest["strategies"]:
        s["description"] = HOSTILE
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    q = pd.read_parquet(dst / "queries.parquet")
    src_ws = Workspace(src)  # each dataset's first test query and the one the inspector opens on
    first = set(q[q["role"] == "eval"].groupby("dataset")["row"].min()) | {
        views.showcase_row(src_ws, d, views.default_strategy(src_ws)) for d in src_ws.datasets}
    q.loc[q["row"].isin(first), "text"] = HOSTILE
    q.loc[q["role"] != "eval", "text"] = q.loc[q["role"] != "eval", "text"] + " " + HOSTILE
    q.to_parquet(dst / "queries.parquet", index=False)
    for docs_file in (dst / "datasets").glob("*/docs.parquet"):
        d = pd.read_parquet(docs_file)
        d["title"] = HOSTILE + " " + d["title"]
        d["text"] = d["text"] + " " + HOSTILE_MORE
        d.to_parquet(docs_file, index=False)
    return dst


@pytest.fixture(scope="module")
def hostile(ws, tmp_path_factory):  # noqa: F811
    """The hostile copy of the sample workspace (a Workspace)."""
    from explorer.workspace import Workspace

    return Workspace(hostile_copy(Path(ws.path), tmp_path_factory.mktemp("hostile") / "ws"))


# --- what the page is given ---------------------------------------------------------------------------------------
RAW_MARKUP = re.compile(r"(?<!\\)!\[|(?<!\\)\]\(|(?<!\\)<img|(?<!\\)<a[\s>]|(?<!\\):red\[|(?<!\\)\*\*bold"
                        r"|(?<!\\)\$x|:streamlit:|(?<![\\\w])www\.|\n\s*\n")
HTML_BLOCK = re.compile(r"\s*<(div|h[1-6]|p)[\s>]")


def bodies(at) -> list[tuple[str, str, bool]]:
    """(kind, text, html allowed) of everything drawn as Markdown: bodies, alerts, labels, help texts, options."""
    out = []
    for kind in ("markdown", "caption", "info", "error", "warning", "success", "title", "header", "subheader"):
        for e in getattr(at, kind):
            out.append((kind, e.proto.body, bool(getattr(e.proto, "allow_html", False))))
    for kind in ("selectbox", "multiselect", "radio", "checkbox", "toggle", "text_input", "number_input", "slider",
                 "button", "metric"):
        for e in getattr(at, kind):
            out.append((kind + " label", str(getattr(e.proto, "label", "")), False))
            if getattr(e.proto, "help", ""):
                out.append((kind + " help", e.proto.help, False))
    for e in at.get("radio"):  # radio options are Markdown too
        out += [("radio option", o, False) for o in e.options]
    return out


def assert_inert(at) -> None:
    """No exception, and no raw markup from the hostile texts in anything drawn as Markdown."""
    assert not at.exception, [e.value for e in at.exception]
    for kind, body, allow in bodies(at):
        if allow:  # markup the app built itself: one HTML block, escaped text only
            assert HTML_BLOCK.match(body), (kind, body)
            assert "<img" not in body and "<a " not in body and "\n" not in body.strip(), (kind, body)
        else:
            assert not RAW_MARKUP.search(body), (kind, body)


def all_text(at) -> str:
    return "\n".join(body for _, body, _ in bodies(at))


@pytest.mark.parametrize("page_key", [None, *PAGE])
def test_every_page_on_hostile_workspace_is_inert(hostile, page_key):
    at = app(hostile.path, page_key)
    assert_inert(at)
    # the sidebar: the hostile title is escaped, the chips are one HTML block of escaped names
    side = "\n".join(m.proto.body for m in at.sidebar.markdown) + "\n".join(c.value for c in at.sidebar.caption)
    assert safe.md("Hostile " + HOSTILE) in side
    chips = next(m.proto.body for m in at.sidebar.markdown if "<span" in m.proto.body)
    for name in hostile.encoders:
        assert f">{html.escape(name)}</span>" in chips


def test_inspector_shows_hostile_query_and_document_literally(hostile):
    row = int(hostile.eval_rows(hostile.datasets[0])["row"].iloc[0])
    at = app(hostile.path, "inspector", params={"row": row})
    assert_inert(at)
    heading = next(m.proto.body for m in at.markdown if m.proto.body.startswith("<h4>"))
    assert heading == f"<h4>“{html.escape(HOSTILE, quote=False)}”</h4>"
    assert any(m.proto.allow_html for m in at.markdown if m.proto.body == heading)
    doc_id = at.selectbox(key="w_inspector_doc").options[1]  # [0]: the reader's "pick a document"
    at.selectbox(key="w_inspector_doc").set_value(doc_id).run()
    assert_inert(at)
    # the reader: one HTML block of the escaped title and text, the query's terms in <mark> (explorer.ui.highlight)
    from explorer.terms import shared_terms
    from explorer.ui.highlight import reader

    doc = hostile.docs(hostile.datasets[0]).set_index("doc_id").loc[doc_id]
    terms = shared_terms(HOSTILE, doc["title"], doc["text"])
    assert "img" in terms and "bold" in terms  # the hostile words are marked, as escaped text
    block = next(m.proto for m in at.markdown if m.proto.body == reader(doc["title"], doc["text"], terms))
    assert block.allow_html and "<img" not in block.body and "<a " not in block.body
    # its only tags are the reader's own (div, mark, br): without them, the text reads back exactly
    assert set(re.findall(r"<(\w+)", block.body)) <= {"div", "mark", "br"}
    assert html.unescape(re.sub(r"<[^>]+>", "", block.body)) == doc["title"] + doc["text"].replace("\n", "")
    assert block.body.count("<mark") >= len(terms)
    assert "<br># heading<br>" in block.body  # the text's line breaks kept as <br>, a heading never made


def test_playground_hostile_query_from_the_url(hostile):
    at = app(hostile.path, "playground", params={"q": HOSTILE, "dataset": hostile.datasets[0]})
    assert_inert(at)
    assert any("Answered in" in c.value for c in at.caption)
    lines = [m.proto.body for m in at.markdown if m.proto.body.startswith("**1\\. ")]
    assert lines and all("\\!\\[pwn\\]" in line for line in lines)  # the result lines: titles and texts escaped


def test_escaping_functions():
    md = safe.md(HOSTILE_MORE)
    assert "\n" not in md and not RAW_MARKUP.search(md)
    i = 0
    while i < len(md):  # every character Markdown or Streamlit reads comes right after a backslash
        assert md[i] not in "[]()!*_`#<>|~$:&{}./^", (md[i], md[max(0, i - 20):i + 20])
        i += 2 if md[i] == "\\" else 1
    assert safe.md("- item").startswith("\\-") and safe.md("nDCG@10") == "nDCG@10"
    assert "\u2060" in safe.md("see www.example.org") and "\u2060" in safe.md("a@b.example")
    assert safe.html('<b a="1">&</b>\n\nx') == "&lt;b a=&quot;1&quot;&gt;&amp;&lt;/b&gt; x"
    assert safe.plot("<a href='x'>y</a>") == "&lt;a href='x'&gt;y&lt;/a&gt;"
    assert safe.code("pilot-mean/skip-all") == "`pilot-mean/skip-all`" and safe.code("a`b|c") == "a\\`b\\|c"
    from explorer.ui.style import chips, wrap

    legend = chips({"<script>": "#123456", "x": "red;background:url(http://x)"}, ["<script>", "x"])
    assert "<script>" not in legend and "&lt;script&gt;" in legend and "url(" not in legend
    assert "<img" not in wrap(HOSTILE) and "&lt;img" in wrap(HOSTILE)


# --- failing safe ------------------------------------------------------------------------------------------------
BOUNDARY = "This page could not be drawn from this workspace"


def test_broken_table_shows_the_error_boundary(ws, tmp_path):  # noqa: F811
    broken = tmp_path / "broken"
    shutil.copytree(ws.path, broken)
    for part in (broken / "decisions").rglob("*.parquet"):  # the page reads its strategy's partitions
        part.write_bytes(b"not a parquet table")
    at = app(broken, "decisions", drawn=False)
    assert not at.exception, [e.value for e in at.exception]
    message = "\n".join(e.value for e in at.error)
    assert BOUNDARY in message and "explorer build" in message and "Traceback" not in message
    assert len(message.splitlines()) == 1


def test_unexpected_exception_is_caught_and_control_flow_passes(ws, monkeypatch):  # noqa: F811
    from explorer.views import inspector

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom <img src=x>\nsecond line")

    monkeypatch.setattr(inspector, "query_decisions", boom)
    import streamlit as st

    st.cache_data.clear()  # an earlier test in this process may have cached the inspector's decision table
    at = app(ws.path, "inspector", drawn=False)
    assert not at.exception
    message = "\n".join(e.value for e in at.error)
    assert BOUNDARY in message and "explorer build" in message
    assert "RuntimeError\\: kaboom \\<img src=x\\> second line" in message  # one line, escaped
    assert not RAW_MARKUP.search(message) and "\n" not in message and "Traceback" not in message
    # st.switch_page (a control-flow exception) still passes through the boundary
    at = app(ws.path, "errors")
    at.button(key="errors_open").click().run()
    assert not at.exception and at.title[0].value == "Query inspector"


def test_sidebar_catches_any_exception_from_a_workspace(ws, tmp_path, monkeypatch):  # noqa: F811
    from explorer.ui import state

    def hostile_open(path):
        raise RuntimeError("a table that breaks the reader")

    monkeypatch.setattr(state, "open_workspace", hostile_open)
    at = app(ws.path)
    assert not at.exception
    assert "Cannot open this workspace" in "\n".join(e.value for e in at.error)


# --- hostile URL parameters ---------------------------------------------------------------------------------------
BAD = "<script>alert(1)</script>"
URLS = [
    ("inspector", {"row": "abc"}), ("inspector", {"row": "-5"}), ("inspector", {"row": "999999"}),
    ("inspector", {"row": "1e999"}), ("inspector", {"row": "9" * 5000}), ("inspector", {"row": "0"}),
    ("inspector", {"strategy": BAD, "dataset": BAD, "cols": BAD}),
    ("inspector", {"cols": "routed,base,oracle,symptoms,glossary,homefix"}),
    ("inspector", {"cols": "base,base,base"}),
    ("errors", {"margin": "nan", "use_margin": "1"}), ("errors", {"margin": "-1", "use_margin": "1"}),
    ("errors", {"margin": "inf"}), ("errors", {"margin": "abc", "wrong": BAD, "sort": BAD, "datasets": BAD}),
    ("map", {"layout": BAD, "colour": BAD, "strategy": BAD, "datasets": "x,y"}),
    ("decisions", {"strategy": BAD, "skip_ties": BAD}),
    (None, {"measure": BAD, "reference": BAD, "strategy": BAD, "cols": BAD}),
    (None, {"page": BAD}), (None, {"page": "inspector", "row": "abc"}),
    ("experts", {"measure": BAD, "off": BAD}),
    ("playground", {"dataset": BAD, "strategy": BAD, "other": BAD, "layout": BAD}),
    # issue 27: cohorts, map search and arrows, the Oracle gap and Complementarity pages
    (None, {"cohort": BAD, "cohort_name": BAD, "vs": BAD}), ("errors", {"cohort": "r.0-99999999", "gap": BAD}),
    ("decisions", {"cohort": "b." + "A" * 5000}), ("map", {"cohort": "r.0", "find": BAD * 100, "focus": "9" * 5000}),
    ("map", {"focus": "-1", "arrows": BAD}), ("gap", {"strategy": BAD, "reference": BAD, "layout": BAD}),
    ("complementarity", {"dataset": BAD, "cohort": "b.eJwLSS0uAQAEXQHb"}),
]


@pytest.mark.parametrize("page_key,params", URLS, ids=[f"{p}-{'&'.join(q)}" for p, q in URLS])
def test_hostile_url_parameters_do_not_raise(ws, page_key, params):  # noqa: F811
    """The link opens its page directly (?page=<key>), so its parameters reach that page's widgets untouched."""
    at = app(ws.path, params={**({"page": page_key} if page_key else {}), **params})
    assert page_key is None or at.title[0].value == PAGES[page_key].title
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "<script>" not in all_text(at)
    if page_key == "inspector" and "row" in params:  # an unknown row opens the first dataset's showcase query
        assert at.query_params["row"] == str(views.showcase_row(ws, ws.datasets[0], views.default_strategy(ws)))  # row 0: a pilot query
    if page_key == "inspector" and "," in params.get("cols", ""):
        chosen = next(m for m in at.multiselect if m.label.startswith("Compare")).value
        assert 1 <= len(chosen) <= 4 and len(set(chosen)) == len(chosen)
    if page_key == "errors":
        assert at.number_input[0].value == 0.05  # nan, inf, -1 or text for the margin: the default


# --- the Streamlit config -----------------------------------------------------------------------------------------
def test_streamlit_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["fileWatcherType"] == "none"


def test_make_run_passes_host_and_port_only_when_given():
    import subprocess

    def dry(*args):
        return subprocess.run(["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout

    plain = dry()
    assert "streamlit run app.py" in plain and "--server.address" not in plain and "--server.port" not in plain
    wide = dry("HOST=0.0.0.0", "PORT=8600")
    assert "--server.address 0.0.0.0" in wide and "--server.port 8600" in wide


def test_heavy_libraries_are_imported_once_before_pages():
    import sys

    from explorer.ui import state

    result = state.preload()
    assert result == state.preload()
    assert all(v == "ok" for v in result.values()), result
    assert {"torch", "sentence_transformers", "peft", "faiss", "sklearn"} <= set(sys.modules)
    assert "state.preload()" in (ROOT / "app.py").read_text().split("page.run()")[0]


# --- in the browser -----------------------------------------------------------------------------------------------

INJECTED = """() => {
    const bad = [], cut = e => e.outerHTML.slice(0, 160);
    const outside = v => v && (v === 'x' || v.includes('127.0.0.1:9') || v.includes('.example')
                               || v.startsWith('mailto:'));
    for (const e of document.querySelectorAll('img, image, iframe, object, embed, video, audio, source, script[src]')) {
        const v = e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('xlink:href');
        if (outside(v) || (e.tagName === 'IMG' && (e.getAttribute('alt') || '').includes('pwn'))) bad.push(cut(e));
    }
    for (const a of document.querySelectorAll('a')) {
        if (outside(a.getAttribute('href') || a.getAttribute('xlink:href'))) bad.push(cut(a));
    }
    for (const e of document.querySelectorAll('.stMarkdownColoredText, .katex, [data-testid="stException"]')) {
        bad.push(cut(e));
    }
    for (const e of document.querySelectorAll('strong, b, h1')) {
        if (['bold', 'heading'].includes(e.textContent.trim())) bad.push(cut(e));
    }
    return bad;
}"""
HOVER_POINT = """(i) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    for (const cd of gd.calcdata) for (const p of cd) if (isFinite(p.x) && isFinite(p.y))
        return {x: r.left + xa._offset + xa.c2p(p.x), y: r.top + ya._offset + ya.c2p(p.y)};
    return null;
}"""


@pytest.fixture(scope="module")
def workspace_path(hostile) -> Path:
    """The app server of tests/test_browser.py, started on the hostile workspace."""
    return Path(hostile.path)


def _shoot(pg, folder: Path, name: str) -> Path:
    height = pg.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    pg.set_viewport_size({"width": 1500, "height": max(800, min(int(height) + 40, 6000))})
    time.sleep(1.0)
    path = folder / f"{name}.png"
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": 1500, "height": 1000})
    return path


def _hover_text(pg, chart: int) -> str:
    point = pg.evaluate(HOVER_POINT, chart)
    assert point, f"no point on chart {chart}"
    pg.mouse.move(point["x"], point["y"])
    layer = pg.locator(".js-plotly-plot").nth(chart).locator(".hoverlayer")
    layer.locator(".hovertext").first.wait_for(timeout=10_000)
    return layer.text_content()


@pytest.mark.browser
def test_browser_hostile_workspace_fetches_nothing_and_injects_nothing(server, page, hostile, tmp_path):
    pg = page
    requests = []
    pg.on("request", lambda r: requests.append(r.url))
    shots = tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    def inert(where: str) -> None:
        assert pg.evaluate(INJECTED) == [], where

    # Query inspector: the hostile query as the heading, a hostile document read in full
    pg.goto(server + "/inspector")
    settle(pg, "Query inspector")
    assert HOSTILE in pg.locator("h4").first.inner_text()
    assert "Hostile ![pwn]" in pg.locator('[data-testid="stSidebar"]').inner_text()
    inert("inspector")
    pg.locator('[data-testid="stSelectbox"]').last.locator("input").click()
    time.sleep(0.5)
    pg.keyboard.press("ArrowDown")
    pg.keyboard.press("Enter")
    try:
        pg.wait_for_selector('.st-key-insp_reader mark', timeout=30_000)
    finally:
        _shoot(pg, shots, "inspector_reader")
        print(f"screenshots: {shots}")
    settle(pg, "Query inspector")
    assert "# heading" in pg.locator('.st-key-insp_reader').first.inner_text()
    inert("inspector, a document")
    charts = pg.locator(".js-plotly-plot").count()
    pg.locator(".js-plotly-plot").nth(charts - 1).scroll_into_view_if_needed()
    assert "<img src=x onerror=alert(1)>" in _hover_text(pg, charts - 1)  # Plotly drew the tags as text
    inert("inspector, hover on a document's line")
    _shoot(pg, shots, "hostile_inspector")

    # Routing map: a hostile query's hover
    pg.goto(server + "/map")
    settle(pg, "Routing map")
    pg.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
    assert "![pwn](http://127.0.0.1:9/pwn.png)" in _hover_text(pg, 0)
    inert("routing map")

    # Playground: the hostile text typed as the query (from the URL), hostile result titles and texts
    pg.goto(server + f"/playground?dataset={hostile.datasets[0]}&q={quote(HOSTILE)}")
    pg.wait_for_selector("text=Answered in", timeout=180_000)
    settle(pg, "Playground")
    for expander in pg.get_by_text("Document texts").all():
        expander.click()
    time.sleep(1.0)
    body = pg.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")  # md's word joiners
    assert "![pwn](http://127.0.0.1:9/pwn.png) <img src=x onerror=alert(1)>" in body
    inert("playground")
    _shoot(pg, shots, "hostile_playground")

    for path, title in (("/", "Overview"), ("/experts", "Experts"), ("/decisions", "Routing decisions"),
                        ("/errors", "Error analysis")):
        pg.goto(server + path)
        settle(pg, title)
        inert(title)

    own = urlparse(server).netloc
    outside = [u for u in requests if urlparse(u).scheme not in ("data", "blob") and urlparse(u).netloc != own]
    assert requests and not outside, outside
    assert not [u for u in requests if urlparse(u).path in ("/x", "/pwn.png")]


@pytest.mark.parametrize("typed", ["/tmp/" + "a" * 5000, "/tmp/" + "b" * 250 + "/" + "c" * 4000 + "/ws",
                                   "relative/" + "d" * 5000])
def test_a_long_path_typed_in_the_sidebar_is_cut_in_the_message(tmp_path, typed):
    at = app(typed, drawn=False)
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in at.error]
    assert shown and all(len(m) < 800 for m in shown), [len(m) for m in shown]
    said = [m for m in shown if m.startswith("Cannot")]  # the sidebar's message about the folder
    assert said and "…" in said[0], shown
