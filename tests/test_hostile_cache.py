"""The build cache and the workspace writer under damage: a cache entry that fails to read is recomputed with a
warning, a write that fails midway leaves no half-written entry, no name writes outside the workspace, and other
builds' temporary folders are deleted only once their process is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.build import build
from explorer.stages import partial_dir
from explorer.config import load_config
from explorer.data import DataError
from explorer.workspace import Workspace, WorkspaceError, atomic_dir, atomic_write, recover_interrupted_swap

from .test_hostile_workspace import digest, listing, tiny_config

KINDS = ("docs", "queries", "index", "layout")


@pytest.fixture(scope="module")
def first(tmp_path_factory, trains):
    root = tmp_path_factory.mktemp("hostile-cache")
    config = tiny_config(root)
    ws = build(config, root / "ws", echo=lambda _: None, progress=False)
    return config, ws


def rebuild(config: Path, cache: Path, out: Path, **changes):
    cfg = load_config(config)
    cfg.cache_dir = cache
    for key, value in changes.items():
        setattr(cfg, key, value)
    said: list[str] = []
    return build(cfg, out, echo=said.append, progress=False), said


def entries(cache: Path) -> dict[str, Path]:
    """The one cache file of each kind of a build without experts."""
    found = {kind: sorted(p for p in (cache / kind).iterdir() if p.suffix != ".sum") for kind in KINDS}
    assert all(len(files) == 1 for files in found.values()), found
    return {kind: files[0] for kind, files in found.items()}


def same_results(a: Workspace, b: Workspace) -> None:
    for table in ("runs", "metrics", "strategy_metrics", "decisions", "layout"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    np.testing.assert_array_equal(a.embeddings("base"), b.embeddings("base"))
    np.testing.assert_array_equal(a.doc_embeddings("a"), b.doc_embeddings("a"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite_tail(path: Path) -> None:
    """Same size, other bytes at the end (the data, not the header): the file still reads, as a wrong entry."""
    data = bytearray(path.read_bytes())
    data[-16:] = bytes(b ^ 0x5A for b in data[-16:])
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated": {kind: truncate for kind in KINDS},
    "same-size": {kind: overwrite_tail for kind in KINDS},
    "garbage": {
        "docs": lambda p: np.save(p, np.zeros((3, 384), dtype=np.float32)),  # rows of another corpus
        "queries": lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True),
        "index": lambda p: p.write_bytes(b""),
        "layout": lambda p: np.savez(p, umap=np.zeros((2, 2)), pca=np.zeros((2, 2)), sampled=np.array(False)),
    },
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_cache_entry_is_recomputed_with_a_warning(first, tmp_path, damage):
    config, ws = first
    cache = tmp_path / "cache"
    shutil.copytree(Path(config).parent / "cache", cache)
    files = entries(cache)
    for kind, path in files.items():
        DAMAGES[damage][kind](path)
    again, said = rebuild(config, cache, tmp_path / "ws")
    warnings = [line for line in said if "warning" in line]
    assert len(warnings) == 4
    for kind, path in files.items():
        assert any(f"the cache file {path} cannot be used" in w and "computing it again" in w for w in warnings), kind
    stages = again.manifest["stages"]
    assert not any(stages[s]["cached"] for s in ("docs:a", "queries:base", "index:a", "layout"))
    same_results(ws, again)
    assert entries(cache).keys() == files.keys()  # rewritten in place, nothing beside them but their checksums
    third, said = rebuild(config, cache, tmp_path / "ws")
    assert not [line for line in said if "warning" in line]
    assert all(third.manifest["stages"][s]["cached"] for s in ("docs:a", "queries:base", "index:a", "layout"))


def _failing(path, *args, **kwargs):
    Path(path).write_bytes(b"half a file")
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("kind", ["queries", "index", "layout"])
def test_a_cache_write_that_fails_midway_leaves_no_entry(first, tmp_path, monkeypatch, kind):
    import faiss

    import explorer.stages as stages_module

    config, ws = first
    cache = tmp_path / "cache"
    real_save = stages_module.save_array
    if kind == "queries":
        monkeypatch.setattr(stages_module, "save_array",
                            lambda p, a: _failing(p) if p.parent.name == "queries" else real_save(p, a))
    elif kind == "index":
        monkeypatch.setattr(faiss, "write_index", lambda index, p: _failing(p))
    else:
        monkeypatch.setattr(np, "savez", _failing)
    with pytest.raises(OSError, match="disk full"):
        rebuild(config, cache, tmp_path / "ws")
    assert not list((cache / kind).iterdir())  # no half-written entry, no temporary file
    assert not (tmp_path / "ws").exists()
    monkeypatch.undo()
    again, said = rebuild(config, cache, tmp_path / "ws")
    assert not [line for line in said if "warning" in line]
    assert again.manifest["stages"]["docs:a"]["cached"]  # what was written before the failure is whole
    same_results(ws, again)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "entry.npy"
    atomic_write(target, lambda p: np.save(p, np.arange(3)))
    with pytest.raises(OSError):
        atomic_write(target, _failing)
    assert np.load(target).tolist() == [0, 1, 2] and os.listdir(tmp_path) == ["entry.npy"]


def test_a_dataset_name_cannot_write_outside_the_workspace(first, tmp_path):
    config, ws = first
    out = tmp_path / "ws"
    shutil.copytree(ws.path, out)
    before, previous = listing(tmp_path), digest(out)
    cfg = load_config(config)
    cfg.cache_dir = tmp_path / "cache"
    cfg.datasets[0].name = "../../escape"  # what a config check refuses; the writer refuses it too
    with pytest.raises(WorkspaceError, match="leads outside the workspace folder"):
        build(cfg, out, echo=lambda _: None, progress=False)
    assert [p for p in listing(tmp_path) if not p.startswith("cache")] == before
    assert digest(out) == previous and Workspace(out).datasets == ["a"]


def test_a_build_with_bad_data_leaves_the_previous_workspace(first, tmp_path):
    config, ws = first
    out = tmp_path / "ws"
    shutil.copytree(ws.path, out)
    data = tmp_path / "a"
    shutil.copytree(Path(config).parent / "a", data)
    (data / "corpus.jsonl").write_text("{broken\n")
    before, previous = listing(tmp_path), digest(out)
    cfg = load_config(config)
    cfg.cache_dir = tmp_path / "cache"
    cfg.datasets[0].path = data
    with pytest.raises(DataError, match=r"corpus.jsonl:1: not valid JSON"):
        build(cfg, out, echo=lambda _: None, progress=False)
    assert listing(tmp_path) == before and digest(out) == previous
    assert Workspace(out).strategies == ["base"]


def test_an_output_path_that_is_a_symbolic_link_loop_is_refused(tmp_path):
    loop = tmp_path / "ws"
    loop.symlink_to(loop)
    with pytest.raises(WorkspaceError, match="is a symbolic link loop, not a folder"):
        with atomic_dir(loop):
            pass


@pytest.fixture
def pids():
    """The pid of a running process and of one that has exited."""
    live = subprocess.Popen(["sleep", "60"])
    done = subprocess.Popen(["true"])
    done.wait()
    yield live.pid, done.pid
    live.kill()
    live.wait()


def test_atomic_dir_leaves_a_live_builds_temporary_folder_alone(tmp_path, pids):
    live, dead = pids
    out = tmp_path / "ws"
    for name in (f".ws.tmp-{live}", f".ws.tmp-{dead}", ".ws.tmp-nopid"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part.parquet").write_text("x")
    with atomic_dir(out) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert sorted(os.listdir(tmp_path)) == sorted([".ws.tmp-nopid", f".ws.tmp-{live}", "ws"])
    assert (tmp_path / f".ws.tmp-{live}" / "part.parquet").is_file()


def test_a_swap_in_progress_is_not_undone(tmp_path, pids):
    live, dead = pids
    out = tmp_path / "ws"
    (tmp_path / f".ws.old-{live}").mkdir()
    recover_interrupted_swap(out)  # a live build between its two renames: not ours to put back
    assert not out.exists() and (tmp_path / f".ws.old-{live}").is_dir()
    (tmp_path / f".ws.old-{dead}").mkdir()
    (tmp_path / f".ws.old-{dead}" / "manifest.json").write_text("{}")
    recover_interrupted_swap(out)
    assert (out / "manifest.json").is_file() and (tmp_path / f".ws.old-{live}").is_dir()


def test_expert_partial_folders_carry_the_pid_and_only_dead_ones_are_removed(tmp_path, pids):
    live, dead = pids
    folder = tmp_path / "experts" / "0123abcd"
    for suffix in (".partial", f".partial-{live}", f".partial-{dead}"):
        (tmp_path / "experts" / f"0123abcd{suffix}").mkdir(parents=True)
    tmp = partial_dir(folder)
    assert tmp.name == f"0123abcd.partial-{os.getpid()}"
    assert sorted(os.listdir(tmp_path / "experts")) == [f"0123abcd.partial-{live}"]


def test_an_output_that_is_not_a_workspace_is_never_replaced(first, tmp_path, monkeypatch, capsys):
    """A folder of other files given as --out (a home folder, by mistake) is refused before any model loads."""
    import explorer.build as build_module
    from explorer.cli import main

    config, _ = first
    monkeypatch.setattr(build_module, "Encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (tmp_path / "file").write_text("x")
    before = listing(tmp_path)
    for out, expected in ((mine, "a folder that is not a workspace (no manifest.json), so a build will not replace"),
                          (tmp_path / "file", "is a file, not a folder (fix: remove it, or choose another --out)")):
        assert main(["build", str(config), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"{out}: {expected}" in err and "Traceback" not in err
    assert listing(tmp_path) == before and (mine / "thesis.tex").read_text() == "years of work"


def test_a_cache_dir_that_is_a_file_is_refused(first, tmp_path, monkeypatch):
    import explorer.build as build_module

    config, _ = first
    monkeypatch.setattr(build_module, "Encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    (tmp_path / "cache").write_text("x")
    with pytest.raises(WorkspaceError, match=r"cache: is a file, not a folder \(fix: set cache_dir"):
        rebuild(config, tmp_path / "cache", tmp_path / "ws")


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory, trains):
    """A tiny build with an on-disk IVF index and one trained expert: every kind of folder entry in the cache."""
    root = tmp_path_factory.mktemp("hostile-cache-disk")
    config = tiny_config(root)
    config.write_text(config.read_text() + '[index]\nkind = "ivf-disk"\n[training]\nepochs = 1\nholdout = 0.0\n'
                      '[[experts]]\nname = "a"\nsources = [{dataset = "a", source = "qrels"}]\n')
    ws = build(config, root / "ws", echo=lambda _: None, progress=False)
    return config, ws


def test_a_workspace_shares_no_storage_with_the_cache(on_disk, tmp_path):
    """Overwriting the workspace's lists file (once a hard link to the cache) leaves the cache as it was: the next
    build reuses it, sound, and gives the same results."""
    from explorer.ondisk import LISTS_FILE

    config, ws = on_disk
    cache = Path(config).parent / "cache"
    (entry,) = [p for p in (cache / "index").iterdir() if p.is_dir()]
    mine = ws.path / "datasets" / "a" / LISTS_FILE
    assert os.stat(mine).st_ino != os.stat(entry / LISTS_FILE).st_ino and os.stat(mine).st_nlink == 1
    before = (entry / LISTS_FILE).read_bytes()
    mine.write_bytes(os.urandom(mine.stat().st_size))
    assert (entry / LISTS_FILE).read_bytes() == before
    again, said = rebuild(config, cache, tmp_path / "ws")
    assert not [line for line in said if "warning" in line]
    assert again.manifest["stages"]["index:a"]["cached"]
    same_results(ws, again)
    assert again.index("a").ntotal == 8  # its lists are the cache's, sound


def test_a_changed_folder_entry_is_recomputed_with_a_warning(on_disk, tmp_path):
    """The on-disk index's lists file and the expert's weights, changed in place at their size: each entry no
    longer matches its checksum, is warned about and computed again, and the results are the first build's."""
    from explorer.ondisk import LISTS_FILE

    config, ws = on_disk
    cache = tmp_path / "cache"
    shutil.copytree(Path(config).parent / "cache", cache)
    (index,) = [p for p in (cache / "index").iterdir() if p.is_dir()]
    (expert,) = [p for p in (cache / "experts").iterdir() if p.is_dir()]
    overwrite_tail(index / LISTS_FILE)
    overwrite_tail(expert / "adapter_model.safetensors")
    again, said = rebuild(config, cache, tmp_path / "ws")
    warnings = [line for line in said if "warning" in line]
    for entry in (index, expert):
        assert any(f"the cache file {entry} cannot be used (its content does not match its checksum" in w
                   for w in warnings), warnings
    assert not again.manifest["stages"]["index:a"]["cached"] and not again.manifest["stages"]["expert:a"]["cached"]
    same_results(ws, again)
    third, said = rebuild(config, cache, tmp_path / "ws")
    assert not [line for line in said if "warning" in line]
    assert third.manifest["stages"]["index:a"]["cached"] and third.manifest["stages"]["expert:a"]["cached"]


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def immutable():
    """chattr +i on folders (root ignores permissions, not the immutable flag), always undone; skipped where the
    file system or the user cannot set it."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if shutil.which("chattr") is None or not _chattr("+i", path):
            pytest.skip("chattr +i is not available on this file system (the os.access test covers the rule)")
        made.append(path)
    yield make
    for path in made:
        _chattr("-i", path)


@pytest.mark.parametrize("where", ["out-folder", "workspace", "cache", "cache-stage"])
def test_a_read_only_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys, immutable, where):
    """A read-only (here immutable) output folder, workspace, cache or cache stage folder: exit 2 naming it before
    any model loads, and no temporary folder left behind."""
    import explorer.build as build_module
    from explorer.cli import main

    monkeypatch.setattr(build_module, "Encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    config = tiny_config(tmp_path)
    place = {"out-folder": tmp_path / "outs", "workspace": tmp_path / "outs" / "ws", "cache": tmp_path / "cache",
             "cache-stage": tmp_path / "cache" / "docs"}[where]
    place.mkdir(parents=True)
    immutable(place)
    before = listing(tmp_path)
    assert main(["build", str(config), "--out", str(tmp_path / "outs" / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: {place}: is read-only, so the build cannot write there (fix: make it writable" in err, err
    assert "Traceback" not in err and listing(tmp_path) == before


def test_the_writable_check_refuses_what_os_access_refuses(tmp_path, monkeypatch):
    """The rule itself, for any user: a folder os.access says cannot be written, or the nearest existing folder
    above a missing one."""
    from explorer.workspace import check_writable

    denied = {tmp_path / "ro"}
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) not in denied and real(p, mode))
    (tmp_path / "ro").mkdir()
    check_writable(tmp_path / "ws", tmp_path / "cache")  # all writable
    with pytest.raises(WorkspaceError, match=r"ro/new/ws: would be made inside .*/ro, which is read-only"):
        check_writable(tmp_path / "ro" / "new" / "ws" / "sub", tmp_path / "cache")
    with pytest.raises(WorkspaceError, match=r"ro: is read-only, so the build cannot write there"):
        check_writable(tmp_path / "ws", tmp_path / "ro")


def test_a_swap_that_fails_leaves_the_workspace_and_no_temporary_folder(tmp_path, immutable):
    out = tmp_path / "ws"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    immutable(out)  # checked writable earlier, made immutable while the build ran
    with pytest.raises(WorkspaceError, match=f"{out}: cannot be replaced"):
        with atomic_dir(out) as tmp:
            (tmp / "manifest.json").write_text('{"new": 1}')
    assert sorted(os.listdir(tmp_path)) == ["ws"] and (out / "manifest.json").read_text() == "{}"
