"""The first start: the sample workspace is built in its own process (a closed tab does not abandon it), the page
shows which stage of how many is running, and a build log without a terminal has one line per stage, no bars."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from explorer import views
from explorer.background import BackgroundBuild, progress_lines
from explorer.build import BUILD_STAGES, build
from explorer.pages import PAGES, page_data
from explorer.workspace import Workspace

from .conftest import ROOT, write_beir


def tiny_config(root: Path) -> Path:
    """One small dataset, no experts, no UMAP: a real build of a few seconds."""
    corpus = [{"_id": f"d{i}", "title": f"doc {i}", "text": f"text about subject {i % 3} number {i}"} for i in range(8)]
    queries = [{"_id": f"q{i}", "text": f"subject {i}"} for i in range(3)]
    write_beir(root / "tiny", corpus, queries, {"test": [(f"q{i}", f"d{i}", 1) for i in range(3)]})
    config = root / "tiny.toml"
    config.write_text(f'cache_dir = "{root / "cache"}"\n[layout]\numap = false\n[[datasets]]\nname = "tiny"\n'
                      'path = "tiny"\n')
    return config


def test_background_build_runs_detached_and_reports_every_stage(tmp_path):
    job = BackgroundBuild(tiny_config(tmp_path), tmp_path / "workspaces" / "sample")
    assert job.start()
    assert not job.start()  # one build at a time: a second session joins the running one
    pid = int(job.lock_path.read_text())
    assert os.getsid(pid) != os.getsid(0)  # its own session: closing the tab or the server does not stop it
    seen = set()
    while job.running():
        seen.add(job.status().get("stage", 0))
        time.sleep(0.05)
    final = job.status()
    assert final["state"] == "done", final
    opens_after = list(BUILD_STAGES).index("write") + 1  # no UMAP asked for: no stage after the workspace
    assert final["stage"] == final["stages"] == opens_after and final["label"] == "writing the workspace"
    assert max(seen) == opens_after
    log = job.log_path.read_text()
    assert "\r" not in log and "it/s" not in log  # no progress bars without a terminal
    assert "Loading 1 dataset(s)" in log and "  docs:tiny: done in" in log and "Built " in log


def test_make_run_starts_the_sample_build_before_the_server(tmp_path):
    """`python -m explorer.background` (the first line of `make run`): starts the build when the workspace is
    missing, joins a running one, and leaves a built one alone."""
    from explorer.background import start_sample_build

    config, out = tiny_config(tmp_path), tmp_path / "workspaces" / "sample"
    assert start_sample_build(config, out).startswith(f"Building {out} in the background")
    assert "being built by another process" in start_sample_build(config, out)
    assert BackgroundBuild(config, out).wait(timeout=120)["state"] == "done"
    assert start_sample_build(config, out) == f"{out} is built"
    assert "-m explorer.background" in (ROOT / "Makefile").read_text().split("\nrun: setup\n")[1].split("\n\n")[0]


def test_a_failed_background_build_shows_its_log(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[datasets]]\npath = 'nowhere'\n")
    job = BackgroundBuild(bad, tmp_path / "ws")
    job.start()
    status = job.wait(timeout=120)
    assert status["state"] == "failed" and "nowhere does not exist" in status["log"]


@pytest.mark.slow
def test_the_app_shows_the_build_and_then_opens_the_workspace(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from explorer.ui import state

    from .test_app import assert_drawn

    target = tmp_path / "workspaces" / "sample"
    monkeypatch.setattr(state, "SAMPLE_CONFIG", tiny_config(tmp_path))
    monkeypatch.setattr(state, "DEFAULT_WORKSPACE", target)
    monkeypatch.delenv(state.ENV_WORKSPACE, raising=False)
    monkeypatch.setattr("sys.argv", ["app.py"])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    assert_drawn(at)
    assert (target / "manifest.json").is_file()
    assert at.title[0].value == "Overview"  # the page reran itself until the build was done
    assert state.sample_build().wait(timeout=60)["state"] == "done"  # the builder exits just after its rename


def test_progress_lines_say_which_stage_of_how_many():
    status = {"stage": 4, "stages": 9, "label": "training the experts", "done": 3, "items": 11}
    assert progress_lines(status) == (3 / 9, "Stage 4 of 9: training the experts", 3 / 11, "3 of 11 done in this stage")
    assert progress_lines({}) == (0.0, "Starting (loading the libraries)", None, None)


# --- the workspace opens on PCA; UMAP lands later ------------------------------------------------------------------
def umap_config(root: Path) -> Path:
    """Two sample domains (60 queries and their pilots: enough points for a real UMAP fit), UMAP asked for."""
    from .conftest import two_domain_config

    config = two_domain_config(root / "umap.toml", root / "cache")
    config.write_text(config.read_text().replace("umap = false", "umap = true"))
    return config


def _every_page_draws(path: Path) -> None:
    from .test_app import app

    for key in PAGES:
        app(path, key)  # asserts the page ran to its end without an error


def test_the_workspace_opens_on_pca_and_its_umap_lands_later(tmp_path, monkeypatch, trains):
    from explorer import build as build_module

    out, seen = tmp_path / "ws", {}
    fit = build_module.umap_layout

    def umap_after_the_workspace(*args, **kwargs):
        ws = Workspace(out)  # written before UMAP is fitted, and opens
        seen.update(methods=views.layout_methods(ws), state=views.umap_state(ws), pca=ws.layout.copy(),
                    pages={key: page_data(key, ws, {}) for key in PAGES})
        shutil.copytree(out, tmp_path / "pending")
        return fit(*args, **kwargs)

    monkeypatch.setattr(build_module, "umap_layout", umap_after_the_workspace)
    config = umap_config(tmp_path)
    ws = build(config, out, echo=lambda _: None, progress=False)
    assert seen["methods"] == ["pca"] and seen["state"] == "pending"
    assert all(seen["pages"][key]["title"] == page.title for key, page in PAGES.items())
    assert seen["pages"]["map"]["params"]["layout"] == "pca" and seen["pages"]["map"]["tests"]
    assert views.layout_methods(ws) == ["umap", "pca"] and views.umap_state(ws) == ""
    assert ws.manifest["layout"]["umap"] is True and "pending" not in ws.manifest["layout"]
    assert {"layout", "layout:umap"} <= set(ws.manifest["stages"])
    pca = ws.layout[ws.layout["method"] == "pca"].reset_index(drop=True)
    assert pca.equals(seen["pca"].reset_index(drop=True))  # landing UMAP leaves the PCA points as they were
    umap = ws.layout[ws.layout["method"] == "umap"]
    assert len(umap) == len(pca) and not np.allclose(umap[["x", "y"]].to_numpy(), pca[["x", "y"]].to_numpy())

    # the app on the workspace as it was before UMAP landed: every page draws; the map shows PCA and says why
    _every_page_draws(tmp_path / "pending")
    from .test_app import app, texts

    at = app(tmp_path / "pending", "map")
    assert [o for o in at.radio[0].options] == ["PCA"] and "still being computed" in texts(at)
    for name in ("layout.parquet", "manifest.json"):  # the landing, as the build does it: two atomic replaces
        shutil.copyfile(out / name, tmp_path / "pending" / name)
    at = app(tmp_path / "pending", "map")
    assert [o for o in at.radio[0].options] == ["UMAP", "PCA"] and "still being computed" not in texts(at)

    # a rebuild takes both layouts from the cache: nothing is pending
    again = build(config, tmp_path / "again", echo=lambda _: None, progress=False)
    assert again.manifest["stages"]["layout"]["cached"] and "layout:umap" not in again.manifest["stages"]
    assert again.manifest["layout"]["umap"] is True and again.layout.equals(ws.layout)


def test_a_build_killed_while_fitting_umap_leaves_a_workspace_that_opens(tmp_path, trains):
    out = tmp_path / "workspaces" / "sample"
    job = BackgroundBuild(umap_config(tmp_path), out)
    assert job.start()
    pid = int(job.lock_path.read_text())
    while job.running() and job.status().get("name") != "umap":
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    job.wait(timeout=30)
    ws = Workspace(out)
    assert ws.manifest["layout"]["umap"] == "pending" and views.layout_methods(ws) == ["pca"]
    assert views.umap_state(ws) == "stopped"  # its builder is gone: the page says so instead of waiting
    _every_page_draws(out)
    from .test_app import app, texts

    assert "stopped before adding it" in texts(app(out, "map"))
    ws = build(umap_config(tmp_path), out, echo=lambda _: None, progress=False)  # the fix the page names
    assert views.layout_methods(ws) == ["umap", "pca"] and views.umap_state(ws) == ""
    assert all(e["cached"] for k, e in ws.manifest["stages"].items() if k.startswith(("expert:", "queries:")))


def test_umap_state_trusts_no_pid_it_cannot_place(tmp_path, monkeypatch):
    """A manifest's pending builder counts only as this machine's live process that started with the build: a
    reused pid, another host or a foreign value reads as stopped (the page then says to rebuild)."""
    class Ws:
        manifest: dict = {}

    ws, now = Ws(), time.time()
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": now}
    for pending, state in [(me, "pending"), ({**me, "host": "elsewhere"}, "stopped"),
                           ({**me, "started": now + 7200}, "stopped"),  # a process older than the build: reused
                           ({**me, "pid": 2 ** 22 + 12345}, "stopped"), ({}, "stopped")]:
        ws.manifest = {"layout": {"umap": "pending", "pending": pending}}
        assert views.umap_state(ws) == state, pending
    ws.manifest = {"layout": {"umap": True}}
    assert views.umap_state(ws) == ""


def test_a_killed_builder_not_yet_reaped_reads_as_stopped():
    """A builder killed but not yet reaped by its parent (a zombie: /proc still lists it) does no more work."""
    from explorer.workspace import process_started

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        ws = type("Ws", (), {})()
        ws.manifest = {"layout": {"umap": "pending", "pending": {
            "pid": pid, "host": socket.gethostname(), "started": process_started(pid)}}}
        assert views.umap_state(ws) == "stopped"
    finally:
        os.waitpid(pid, 0)
