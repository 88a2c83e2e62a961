"""The app survives a hostile workspace: served for real (streamlit run, Debian's chromium through Playwright), a
copy of the sample workspace whose homefix index is a forged IVF index with its lists in a file outside the
workspace (shorter than it says: a search there died of SIGBUS, taking the app down for every session) and whose
stored significance table holds text where numbers go. The Playground query and the Overview each say what is
wrong in one line, the outside file is never opened, and the server keeps answering (a sound dataset's query
included)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import forge_outside_lists, shorten_and_age
from .test_browser import browser, healthy, page, serving, settle  # noqa: F401 - chromium and its pages

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hostile(sample_workspace, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile-server")
    ws = root / "ws"
    shutil.copytree(sample_workspace.path, ws)
    outside = root / "outside" / "index.ivfdata"
    outside.parent.mkdir()
    forge_outside_lists(np.load(ws / "datasets" / "homefix" / "doc_emb.npy"),
                        ws / "datasets" / "homefix" / "index.faiss", outside)
    shorten_and_age(outside)
    significance = pd.read_parquet(ws / "significance.parquet")
    significance.assign(delta=significance["delta"].astype(str)).to_parquet(ws / "significance.parquet", index=False)
    return ws, outside


def ask(pg, url: str, dataset: str, query: str) -> None:
    pg.goto(f"{url}/playground?dataset={dataset}")
    settle(pg, "Playground")
    box = pg.get_by_label("Query")
    box.fill(query)
    box.press("Enter")


def test_the_app_survives_a_hostile_workspace(hostile, page, tmp_path):
    ws, outside = hostile
    pg = page
    with serving(ws, tmp_path / "server.log") as (url, proc):
        ask(pg, url, "homefix", "my kitchen tap keeps dripping after I turn it off")
        pg.wait_for_selector("text=This page could not be drawn from this workspace", timeout=180_000)
        said = pg.locator('[data-testid="stAlert"]').all_inner_texts()
        assert any("homefix" in s and "is of type 'IwFl', expected 'IxFI'" in s for s in said), said
        assert proc.poll() is None and healthy(url), "the server died"
        pg.goto(url)  # the Overview reads the stored significance table, whose deltas are text
        pg.wait_for_selector("text=This page could not be drawn from this workspace", timeout=120_000)
        said = pg.locator('[data-testid="stAlert"]').all_inner_texts()
        assert any("significance.parquet" in s for s in said), said
        assert proc.poll() is None and healthy(url)
        ask(pg, url, "pycode", "how do I sort a list of dicts by a key")
        pg.wait_for_selector("text=Answered in", timeout=180_000)  # the rest of the workspace still serves
        assert proc.poll() is None and healthy(url)
    assert outside.stat().st_atime == 0, "the server opened the file outside the workspace"
