"""The first start: the sample workspace is built in its own process (a closed tab does not abandon it), the page
shows which stage of how many is running, and a build log without a terminal has one line per stage, no bars."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from explorer.background import BackgroundBuild, progress_lines
from explorer.build import BUILD_STAGES

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
    assert final["stage"] == final["stages"] == len(BUILD_STAGES) and final["label"] == "writing the workspace"
    assert max(seen) == len(BUILD_STAGES)
    log = job.log_path.read_text()
    assert "\r" not in log and "it/s" not in log  # no progress bars without a terminal
    assert "Loading 1 dataset(s)" in log and "  docs:tiny: done in" in log and "Built " in log


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
