"""Content-hash caching (adding an expert redoes only what depends on it) and atomic replacement (a failed or
killed build leaves the previous workspace loadable and unchanged)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.build import build
from explorer.config import ConfigError, load_config
from explorer.workspace import Workspace, WorkspaceError, recover_interrupted_swap

from .conftest import ROOT, two_domain_config

SAMPLE = ROOT / "sample_data"


def small_config(folder: Path, cache: Path, experts: list[str]) -> Path:
    """Two sample domains, few queries, short training, no UMAP: a build of a few seconds per stage."""
    return two_domain_config(folder / f"config-{'-'.join(experts)}.toml", cache, names=tuple(experts))


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_build(tmp_path_factory, trains):
    root = tmp_path_factory.mktemp("safety")
    cache = root / "cache"
    ws = build(small_config(root, cache, ["homefix"]), root / "ws", progress=False)
    return root, cache, ws


def test_adding_an_expert_rebuilds_only_what_depends_on_it(first_build):
    root, cache, _ = first_build
    ws = build(small_config(root, cache, ["homefix", "pycode"]), root / "ws2", progress=False)
    stages = ws.manifest["stages"]
    assert stages["docs:homefix"]["cached"] and stages["docs:pycode"]["cached"]
    assert stages["index:homefix"]["cached"] and stages["index:pycode"]["cached"]
    assert stages["expert:homefix"]["cached"] and stages["queries:homefix"]["cached"]
    assert stages["queries:base"]["cached"]
    assert not stages["expert:pycode"]["cached"] and not stages["queries:pycode"]["cached"]
    assert ws.encoders == ["base", "homefix", "pycode"]


def test_a_changed_dataset_invalidates_its_stages(first_build, tmp_path):
    root, cache, _ = first_build
    import shutil

    copy = tmp_path / "pycode"
    shutil.copytree(SAMPLE / "pycode", copy)
    with open(copy / "corpus.jsonl", "a") as f:
        f.write('{"_id": "new-doc", "title": "", "text": "def double(x): return 2 * x"}\n')
    cfg = small_config(tmp_path, cache, ["homefix"])
    cfg.write_text(cfg.read_text().replace(str(SAMPLE / "pycode"), str(copy)))
    stages = build(cfg, tmp_path / "ws", progress=False).manifest["stages"]
    assert stages["docs:homefix"]["cached"] and not stages["docs:pycode"]["cached"]
    assert not stages["index:pycode"]["cached"]


def test_a_failed_build_leaves_the_previous_workspace_intact(first_build, monkeypatch):
    root, cache, ws = first_build
    before = tree_digest(ws.path)
    import explorer.workspace as workspace_module

    calls = {"n": 0}
    real = workspace_module.save_table

    def failing(path, frame, *rest):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        real(path, frame, *rest)

    monkeypatch.setattr(workspace_module, "save_table", failing)
    with pytest.raises(OSError, match="disk full"):
        build(small_config(root, cache, ["homefix", "pycode"]), ws.path, progress=False)
    assert tree_digest(ws.path) == before
    assert Workspace(ws.path).encoders == ["base", "homefix"]
    assert not list(ws.path.parent.glob(f".{ws.path.name}.tmp-*"))


@pytest.mark.parametrize("kill_at", ["Experts", "Writing workspace"])
def test_a_killed_build_leaves_the_previous_workspace_intact(first_build, kill_at):
    root, cache, ws = first_build
    before = tree_digest(ws.path)
    cfg = small_config(root, root / f"fresh-cache-{kill_at[0]}", ["homefix", "pycode"])
    proc = subprocess.Popen([sys.executable, "-u", "-m", "explorer.cli", "build", str(cfg), "--out", str(ws.path),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline, reached = time.time() + 300, False
    for line in proc.stdout:
        reached = line.startswith(kill_at)
        if reached or time.time() > deadline:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert reached, f"the build never printed a line starting with {kill_at!r} within 300 s"  # no kill, no test
    assert proc.returncode == -signal.SIGKILL
    recover_interrupted_swap(ws.path)  # what the next build does first, should the kill fall between the renames
    assert tree_digest(ws.path) == before
    assert Workspace(ws.path).encoders == ["base", "homefix"]


def test_an_interrupted_swap_is_recovered(tmp_path):
    out = tmp_path / "ws"
    old = tmp_path / ".ws.old-123"
    old.mkdir()
    (old / "manifest.json").write_text('{"format_version": 1}')
    recover_interrupted_swap(out)
    assert (out / "manifest.json").is_file() and not old.exists()


def test_workspace_errors_are_clear(tmp_path):
    with pytest.raises(WorkspaceError, match="no such folder"):
        Workspace(tmp_path / "missing")
    with pytest.raises(WorkspaceError, match="not a workspace"):
        Workspace(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format_version": 99}')
    with pytest.raises(WorkspaceError, match="newer than this explorer reads"):
        Workspace(tmp_path)


def test_config_errors_name_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[datasets]]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"(?s)bad.toml: .*\[datasets 'x'\] `path` is missing .*fix:"):
        load_config(bad)
    bad.write_text("title = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    bad.write_text(f"[[datasets]]\npath = '{SAMPLE / 'homefix'}'\n[[experts]]\nname = 'a.b'\nmulti_task = true\n")
    with pytest.raises(ConfigError, match="letters, digits"):
        load_config(bad)
    bad.write_text(f"[[datasets]]\npath = '{SAMPLE / 'homefix'}'\n[routing]\nties = 'coin'\n")
    with pytest.raises(ConfigError, match=r"\[routing\] `ties` \"coin\" is not one of"):
        load_config(bad)


def test_cli_reports_bad_data_without_a_traceback(tmp_path, capsys):
    from explorer.cli import main

    (tmp_path / "broken").mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"cache_dir = '{tmp_path / 'cache'}'\n[[datasets]]\npath = 'broken'\n")
    assert main(["build", str(cfg), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corpus.jsonl: file is missing" in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists()
