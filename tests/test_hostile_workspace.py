"""Hostile workspaces: a bad manifest is refused whole when the workspace opens, every damaged file is a
WorkspaceError naming it and the fix, no read leaves the workspace folder, and the real workspace beside the hostile
copies stays as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer import WORKSPACE_FORMAT_VERSION
from explorer.cli import main
from explorer.workspace import Workspace, WorkspaceError, inside

from .conftest import write_beir

FIX = "fix: rebuild the workspace with `explorer build"


def tiny_config(root: Path) -> Path:
    """One tiny dataset and no experts: a build of about a second that gives the base strategy alone."""
    corpus = [{"_id": f"d{i}", "title": f"T{i}", "text": f"document {i} about topic {i % 3}"} for i in range(8)]
    queries = [{"_id": f"q{i}", "text": f"topic {i % 3} question {i}"} for i in range(6)]
    write_beir(root / "a", corpus, queries, {"test": [("q0", "d0", 1), ("q1", "d1", 1), ("q2", "d2", 2)],
                                             "train": [("q3", "d3", 1), ("q4", "d4", 1), ("q5", "d5", 1)]})
    config = root / "tiny.toml"
    config.write_text(f'title = "tiny"\ncache_dir = "{root / "cache"}"\n[layout]\numap = false\n'
                      f'[[datasets]]\nname = "a"\npath = "{root / "a"}"\ntrain_split = "train"\n')
    return config


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, trains):
    from explorer.build import build

    root = tmp_path_factory.mktemp("hostile-ws")
    ws = build(tiny_config(root), root / "ws", echo=lambda _: None, progress=False)
    return ws, digest(ws.path)


@pytest.fixture
def copy(built, tmp_path):
    """A fresh copy of the built workspace, to damage."""
    ws, _ = built
    target = tmp_path / "copy"
    shutil.copytree(ws.path, target)
    return target


@pytest.fixture(autouse=True)
def original_untouched(built):
    """Whatever a test did to its copy, the workspace it was copied from opens and is byte-for-byte the same."""
    yield
    ws, before = built
    assert digest(ws.path) == before
    again = Workspace(ws.path)
    assert again.strategies == ["base"] and len(again.queries) == 6 and len(again.index("a").reconstruct_n(0, 1))


def edit_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def refused(folder: Path) -> str:
    with pytest.raises(WorkspaceError) as err:
        Workspace(folder)
    return str(err.value)


def test_a_build_without_experts_gives_the_base_strategy(built):
    ws, _ = built
    assert ws.encoders == ["base"] and ws.strategies == ["base"] and ws.experts == []
    assert ws.docs("a")["doc_id"].tolist() == [f"d{i}" for i in range(8)]


def _expert(m):
    m["encoders"].append("e1")
    m["experts"].append({"name": "e1", "kind": "lora", "multi_task": False, "datasets": ["a"]})


BAD_MANIFESTS = {
    "version-as-string": (lambda m: m.update(format_version="1"),
                          "key 'format_version' is \"1\", expected an integer"),
    "version-as-bool": (lambda m: m.update(format_version=True), "key 'format_version' is true, expected an integer"),
    "version-zero": (lambda m: m.update(format_version=0),
                     f"key 'format_version': is 0, expected 1 to {WORKSPACE_FORMAT_VERSION}"),
    "no-version": (lambda m: m.pop("format_version"), "key 'format_version' is missing"),
    "no-encoders": (lambda m: m.pop("encoders"), "key 'encoders' is missing"),
    "strategies-not-a-list": (lambda m: m.update(strategies={"name": "base"}),
                              "key 'strategies' is dict, expected a list"),
    "strategy-without-family": (lambda m: m["strategies"][0].pop("family"), "key 'strategies[0].family' is missing"),
    "dataset-name-climbs": (lambda m: m["datasets"][0].update(name="../../etc"),
                            "key 'datasets[0].name': the dataset name '../../etc' is not"),
    "expert-name-climbs": (lambda m: (_expert(m), m["experts"][0].update(name="../x"), m["encoders"].pop()),
                           "key 'experts[0].name': the expert name '../x' is not"),
    "expert-without-kind": (lambda m: (_expert(m), m["experts"][0].pop("kind")), "key 'experts[0].kind' is missing"),
    "encoder-name": (lambda m: m["encoders"].append("a/b"), "key 'encoders[1]': the expert name 'a/b' is not"),
    "candidate-name": (lambda m: m.update(candidates=["<script>"]),
                       "key 'candidates[0]': the expert name '<script>' is not"),
    "own-expert-name": (lambda m: m.update(own_expert={"a": "/etc/passwd"}),
                        "key 'own_expert.a': the expert name '/etc/passwd' is not"),
    "strategy-name": (lambda m: m["strategies"][0].update(name="base <b>"),
                      "key 'strategies[0].name': the strategy name 'base <b>' is not"),
    "measure": (lambda m: m["measures"].append("bogus@10"), "key 'measures[4]': 'bogus@10' is not an ir_measures"),
    "no-measures": (lambda m: m.update(measures=[]), "key 'measures': is empty"),
    "routing-type": (lambda m: m["routing"].update(gamma="high"), "key 'routing.gamma' is \"high\", expected a number"),
    "base-model-name": (lambda m: m["base_model"].update(name=7), "key 'base_model.name' is 7, expected a string"),
    "unknown-candidate": (lambda m: m.update(candidates=["ghost"]), "'candidates': 'ghost' is not among the encoders"),
    "experts-disagree": (lambda m: m["encoders"].append("ghost"), "'encoders' must be 'base' followed by the experts"),
    "variant-router": (lambda m: m["routing"].update(variants=[{"name": "v/x", "router": "ghost"}]),
                       "'routing.variants': 'v/x' names router 'ghost', which is not registered"),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_bad_manifest_is_refused_naming_the_key_and_the_fix(copy, case):
    change, expected = BAD_MANIFESTS[case]
    edit_manifest(copy, change)
    message = refused(copy)
    assert message.startswith(f"{copy / 'manifest.json'}: ")
    assert expected in message
    assert FIX in message


def test_every_manifest_problem_is_reported_at_once(copy):
    edit_manifest(copy, lambda m: (m.pop("candidates"), m.update(measures="nDCG@10"),
                                   m["datasets"][0].update(name="..")))
    message = refused(copy)
    assert "3 problem(s) in the manifest" in message
    assert "'candidates' is missing" in message and "'measures' is \"nDCG@10\", expected a list" in message


def test_a_newer_format_asks_for_an_upgrade_and_bad_json_for_a_rebuild(copy):
    edit_manifest(copy, lambda m: m.update(format_version=WORKSPACE_FORMAT_VERSION + 1))
    assert "newer than this explorer reads" in (message := refused(copy)) and "upgrade router-explorer" in message
    (copy / "manifest.json").write_text("[" * 100000)
    assert "manifest.json: unreadable" in (message := refused(copy)) and FIX in message
    (copy / "manifest.json").write_text("[1, 2]")
    assert "manifest.json: the manifest is not a JSON object" in refused(copy)
    (copy / "manifest.json").unlink()
    (copy / "manifest.json").mkdir()
    assert "manifest.json: is a folder, not a file" in refused(copy)


def test_the_workspace_path_as_a_symbolic_link_loop(tmp_path):
    loop = tmp_path / "ws"
    loop.symlink_to(loop)
    assert refused(loop).startswith(f"{loop}: is a symbolic link loop, not a folder (fix: point to a workspace")
    code = main(["eval", str(loop)])
    assert code == 2


BASE_RUN = "runs/dataset=a/system=base"  # one partition of the runs table (format 2)
DAMAGE = {
    "truncated-parquet": ("queries.parquet", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                          lambda ws: ws.queries, "not a readable Parquet table"),
    "garbage-parquet": ("datasets/a/docs.parquet", lambda p: p.write_bytes(b"not parquet at all" * 10),
                        lambda ws: ws.docs("a"), "not a readable Parquet table"),
    "parquet-missing-a-column": (f"{BASE_RUN}/part-0.parquet", lambda p: __import__("pandas").read_parquet(p).drop(
        columns=["score"]).to_parquet(p), lambda ws: ws.runs, "no column(s) 'score'"),
    "truncated-partition": (f"{BASE_RUN}/part-0.parquet", lambda p: p.write_bytes(p.read_bytes()[:40]),
                            lambda ws: ws.run_rows(["base"]), "not a readable Parquet table"),
    "foreign-partition": ("runs/dataset=elsewhere", lambda p: p.mkdir(), lambda ws: ws.runs,
                          "not a partition of this table"),
    "partition-is-a-link": (BASE_RUN, lambda p: (shutil.rmtree(p), p.symlink_to(p.parent)),
                            lambda ws: ws.run_rows(["base"]), "is a symbolic link"),
    "partition-holds-a-link": (f"{BASE_RUN}/more.parquet", lambda p: p.symlink_to(p.parent / "part-0.parquet"),
                               lambda ws: ws.runs, "a partition holds plain .parquet files only"),
    "empty-partition": (BASE_RUN, lambda p: (p / "part-0.parquet").unlink(), lambda ws: ws.runs,
                        "an empty partition"),
    "missing-partitioned-table": ("decisions", lambda p: shutil.rmtree(p), lambda ws: ws.decisions, "is missing"),
    "truncated-npy": ("embeddings/enc00.npy", lambda p: p.write_bytes(p.read_bytes()[:200]),
                      lambda ws: ws.embeddings("base"), "not a readable .npy array"),
    "object-npy": ("pilots.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
                   lambda ws: ws.pilot_centroids, "Object arrays cannot be loaded when allow_pickle=False"),
    "one-dimensional-npy": ("datasets/a/doc_emb.npy", lambda p: np.save(p, np.zeros(8, dtype=np.float32)),
                            lambda ws: ws.doc_embeddings("a"), "holds a 1-D float32 array, expected 2-D numbers"),
    "rows-do-not-match": ("embeddings/enc00.npy", lambda p: np.save(p, np.zeros((2, 384), dtype=np.float32)),
                          lambda ws: ws.embeddings("base"), "2 rows for 6 queries in queries.parquet"),
    "truncated-faiss": ("datasets/a/index.faiss", lambda p: p.write_bytes(p.read_bytes()[:100]),
                        lambda ws: ws.index("a"), "truncated or forged"),
    "garbage-faiss": ("datasets/a/index.faiss", lambda p: p.write_bytes(b"hello world" * 10),
                      lambda ws: ws.index("a"), "the index is of type 'hell', expected 'IxFI'"),
    "missing-table": ("layout.parquet", lambda p: p.unlink(), lambda ws: ws.layout, "is missing"),
    "file-is-a-loop": ("metrics/dataset=a/system=base/part-0.parquet", lambda p: (p.unlink(), p.symlink_to(p)),
                       lambda ws: ws.metrics,
                       "is a symbolic link loop, not a file"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_file_names_itself_and_the_fix(copy, case):
    name, damage, read, expected = DAMAGE[case]
    damage(copy / name)
    ws = Workspace(copy)  # the manifest is fine: the damage shows on the read
    with pytest.raises(WorkspaceError) as err:
        read(ws)
    message = str(err.value)
    assert message.startswith(f"{copy / name}: ") and expected in message and FIX in message


def test_the_cli_exits_2_with_the_message_for_a_damaged_table(copy, capsys):
    part = sorted((copy / "strategy_metrics").rglob("*.parquet"))[0]
    part.write_bytes(b"PAR1 truncated")
    assert main(["eval", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{part}: not a readable Parquet table" in err and FIX in err
    assert "Traceback" not in err


def test_no_read_leaves_the_workspace(copy, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(copy / "datasets" / "a", outside)
    shutil.rmtree(copy / "datasets" / "a")
    (copy / "datasets" / "a").symlink_to(outside)  # a link planted in a workspace from someone else
    shutil.copytree(copy / "embeddings", tmp_path / "emb-outside")
    shutil.rmtree(copy / "embeddings")
    (copy / "embeddings").symlink_to(tmp_path / "emb-outside")
    edit_manifest(copy, _expert)
    (copy / "experts").mkdir()
    (copy / "experts" / "e1").symlink_to(tmp_path)
    before = listing(tmp_path)
    ws = Workspace(copy)
    for read in (lambda: ws.docs("a"), lambda: ws.doc_embeddings("a"), lambda: ws.index("a"),
                 lambda: ws.embeddings("base"), lambda: ws.expert_card("e1"), lambda: ws.adapter_dir("e1")):
        with pytest.raises(WorkspaceError, match="leads outside the workspace folder"):
            read()
    with pytest.raises(WorkspaceError, match=r"no dataset '\.\./\.\./outside' in manifest.json \(fix: use one of a"):
        ws.docs("../../outside")
    with pytest.raises(WorkspaceError, match="no expert '../e1' in manifest.json"):
        ws.adapter_dir("../e1")
    assert listing(tmp_path) == before  # reading wrote nothing anywhere


def test_inside_refuses_names_that_climb_out(tmp_path):
    assert inside(tmp_path, "datasets", "a") == tmp_path / "datasets" / "a"
    for parts in (("..",), ("datasets", "../../x"), ("/etc/passwd",), ("a\0b",)):
        with pytest.raises(WorkspaceError):
            inside(tmp_path, *parts)
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(WorkspaceError, match="leads outside"):
        inside(tmp_path, "link", "etc")
    os.mkdir(tmp_path / "real")
    assert inside(tmp_path, "real", "..", "real") == tmp_path / "real" / ".." / "real"


@pytest.mark.parametrize("name, message", [
    ("foreign", "a module outside sentence-transformers' own"),
    ("pickled", "holds pickled weights"),
    ("nowhere", "is not a folder, nor .bundled."),
])
def test_a_base_model_named_by_the_manifest_is_loaded_only_when_safe(copy, tmp_path, name, message, monkeypatch):
    """The Playground loads the manifest's base model: someone else's workspace cannot make it import a class of
    its choosing or unpickle weights. Refused before any model is built."""
    from sentence_transformers import SentenceTransformer

    from explorer.live import LiveRouter

    folder = tmp_path / name
    if name != "nowhere":
        folder.mkdir()
        types = ["os.system"] if name == "foreign" else ["sentence_transformers.models.Transformer"]
        (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": t}
                                                         for t in types]))
        (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    edit_manifest(copy, lambda m: m["base_model"].update(name=str(folder)))
    monkeypatch.setattr(SentenceTransformer, "__init__", None)  # any model load would fail loudly
    with pytest.raises(WorkspaceError, match=f"base_model.name .*{message}.*fix: rebuild"):
        LiveRouter.open(Workspace(copy))


def test_a_hostile_expert_card_cannot_make_the_judged_split_note_say_more(sample_workspace, tmp_path):
    """The note under every score table of a judged split reads the dataset's own expert card, which is untrusted:
    fields of the wrong shape only leave the plain "are its pilot queries", and a card that is a folder is a
    WorkspaceError naming it and the fix."""
    from explorer.analysis import judged_split_notes

    target = tmp_path / "ws"
    shutil.copytree(sample_workspace.path, target)
    dataset, expert = next(iter(sample_workspace.own_expert.items()))
    n = int(((sample_workspace.queries["dataset"] == dataset) & (sample_workspace.queries["role"] == "eval")).sum())
    edit_manifest(target, lambda m: next(d for d in m["datasets"] if d["name"] == dataset).update(
        judged_split={"share": 0.5, "seed": 13, "of": "test", "train": n, "test": n}))
    card_path = target / "experts" / expert / "card.json"
    card = json.loads(card_path.read_text())
    for sources, hyper in [({"dataset": dataset, "split": "judged-train"}, "stop_split"),
                           (["judged-train"], {"stop_split": ["judged-train"]}),
                           ([[dataset, "judged-train"]], None)]:
        card_path.write_text(json.dumps({**card, "sources": sources, "hyper_parameters": hyper}))
        (note,) = judged_split_notes(Workspace(target))
        assert f"seed 13) are its pilot queries." in note
    card_path.unlink()
    card_path.mkdir()
    with pytest.raises(WorkspaceError) as err:
        judged_split_notes(Workspace(target))
    assert str(err.value).startswith(f"{card_path}: ") and FIX in str(err.value)


SEARCH = """
import sys
from explorer.workspace import Workspace, WorkspaceError
ws = Workspace(sys.argv[1])
try:
    index = ws.index("a")
except WorkspaceError as err:
    print("refused:", err)
    sys.exit(0)
print("searched:", index.search(ws.embeddings("base")[:2], 3)[1].tolist())
"""


@pytest.mark.parametrize("storage", ["faiss", "faiss-on-disk"])
def test_a_forged_index_cannot_make_faiss_open_a_file_outside_the_workspace(copy, tmp_path, storage):
    """index.faiss is an IVF index whose lists are a file outside the workspace (shorter than it says, so a search
    would die of SIGBUS): refused with the file named, the outside file never opened, the reader alive."""
    import subprocess
    import sys

    from .conftest import forge_outside_lists, shorten_and_age

    outside = tmp_path / "outside" / "index.ivfdata"
    outside.parent.mkdir()
    forge_outside_lists(np.load(copy / "datasets" / "a" / "doc_emb.npy"), copy / "datasets" / "a" / "index.faiss",
                        outside, nlist=2)
    shorten_and_age(outside)
    edit_manifest(copy, lambda m: m["datasets"][0].update(index=storage))
    if storage == "faiss-on-disk":
        (copy / "datasets" / "a" / "index.ivfdata").write_bytes(b"\0" * 4096)
    proc = subprocess.run([sys.executable, "-c", SEARCH, str(copy)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, f"the reader died ({proc.returncode}): {proc.stderr[-2000:]}"
    assert proc.stdout.startswith(f"refused: {copy / 'datasets' / 'a'}/index.") and FIX in proc.stdout, proc.stdout
    assert outside.stat().st_atime == 0, "faiss opened the file outside the workspace"


def test_an_index_of_another_dimension_is_refused(copy):
    """A 64-d index in a 384-d workspace: refused before any search (faiss would assert)."""
    from explorer.index import build_index, save_index

    save_index(build_index(np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)),
               copy / "datasets" / "a" / "index.faiss")
    with pytest.raises(WorkspaceError) as err:
        Workspace(copy).index("a")
    assert str(err.value).startswith(f"{copy / 'datasets' / 'a' / 'index.faiss'}: an index of dimension 64, "
                                     "expected 384") and FIX in str(err.value)


# --- damaged per-query tables: refused with the file named, never a silent wrong answer --------------------------
def _frame_edit(change):
    """Rewrite a Parquet file through pandas: `change(frame)` returns the frame to write."""
    import pandas as pd

    def edit(path: Path) -> None:
        change(pd.read_parquet(path)).to_parquet(path, index=False)
    return edit


def _dup_row(f):
    """The same number of rows, one query listed twice (its twin's row replaced)."""
    f.loc[f.index[1], "row"] = f["row"].iloc[0]
    return f


def _add_dataset(folder: Path) -> None:
    """A manifest dataset with no files at all."""
    edit_manifest(folder, lambda m: m["datasets"].append({**m["datasets"][0], "name": "b"}))


def _big_group(rows: int, groups: int = 1):
    import pandas as pd

    def write(path: Path) -> None:
        frame = pd.DataFrame({"row": np.zeros(rows, np.int64), "rank": np.ones(rows, np.int32),
                              "doc": np.zeros(rows, np.int32), "score": np.zeros(rows, np.float32)})
        frame.to_parquet(path, index=False, row_group_size=rows // groups)
    return write


SM = "strategy_metrics/dataset=a/strategy=base/part-0.parquet"
RUN = f"{BASE_RUN}/part-0.parquet"
# case: (file, damage, message, the reads that must refuse: eval, export, overview, ranking)
SILENT = {
    "duplicate-metric-row": (SM, _frame_edit(_dup_row), "duplicate rows", "eval export overview"),
    "missing-metric-row": (SM, _frame_edit(lambda f: f.iloc[1:]), "2 rows for 3 queries", "eval export overview"),
    "missing-partition": ("strategy_metrics/dataset=a/strategy=base", shutil.rmtree, "is missing",
                          "eval export overview"),
    "missing-run-partition": (BASE_RUN, shutil.rmtree, "is missing", "export ranking"),
    "duplicate-run-row": (RUN, _frame_edit(lambda f: f.assign(rank=np.where(f.index == 1, 1, f["rank"]))),
                          "duplicate rows (a query listed twice at one rank)", "export ranking"),
    "doc-minus-one": (RUN, _frame_edit(lambda f: f.assign(doc=np.where(f.index == 0, -1, f["doc"]))),
                      "document -1 is outside its corpus", "export ranking"),
    "doc-huge": (RUN, _frame_edit(lambda f: f.assign(doc=np.where(f.index == 0, 10**9, f["doc"]))),
                 "document 1000000000 is outside its corpus", "export ranking"),
    "rank-zero": (RUN, _frame_edit(lambda f: f.assign(rank=f["rank"] - 1)), "a rank outside 1..100",
                  "export ranking"),
    "row-of-nothing": (RUN, _frame_edit(lambda f: f.assign(row=f["row"] + 1000)), "row 1000 is not one of this",
                       "export ranking"),
    "row-as-text": (RUN, _frame_edit(lambda f: f.assign(row=f["row"].astype(str))),
                    "column 'row' holds large_string, expected integers", "export ranking"),
    "score-as-text": (SM, _frame_edit(lambda f: f.assign(**{"nDCG@10": "high"})),
                      "column 'nDCG@10' holds large_string, expected floats", "eval export overview"),
    "significance-types": ("significance.parquet", _frame_edit(lambda f: __import__("pandas").DataFrame([{
        "measure": "nDCG@10", "reference": "base", "resamples": 2000, "dataset": "a", "system": "base", "delta": "x",
        "p_t": 1.0, "p_rand": 1.0, "n": 3, "p_t_holm": 1.0, "p_rand_holm": 1.0, "significant": False}])),
                           "column 'delta' holds large_string, expected floats", "eval overview"),
    "chosen-unknown": ("decisions/dataset=a/strategy=base/part-0.parquet",
                       _frame_edit(lambda f: f.assign(chosen="../../etc")), "a decision chose '../../etc'",
                       "export ranking"),
    "huge-row-group": (RUN, _big_group(1_100_000), "a row group of 1,100,000 rows, above the 1,048,576",
                       "export ranking"),
    "too-many-rows": (RUN, _big_group(1_000, 2), "1,000 rows, more than the 600", "export ranking"),
    "dataset-without-files": ("manifest.json", lambda p: _add_dataset(p.parent),
                              "holds no evaluated query of dataset 'b'", "eval export overview ranking"),
}


def _reads(folder: Path, capsys, tmp_path: Path) -> dict[str, str | None]:
    """What each reader says on the workspace: None when it worked, else its message (no traceback allowed)."""
    from explorer.pages import page_data

    out = {}
    for name, argv in (("eval", ["eval", str(folder)]), ("export", ["export", str(folder), "--out",
                                                                     str(tmp_path / "export")])):
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, err
        out[name] = err if code == 2 else None
    for name, read in (("overview", lambda ws: page_data("overview", ws, {})),
                       ("ranking", lambda ws: (ws.ranking("base", 0), ws.strategy_system("base", 3)))):
        try:
            read(Workspace(folder))
            out[name] = None
        except WorkspaceError as err:
            out[name] = str(err)
    return out


@pytest.mark.parametrize("case", SILENT)
def test_a_damaged_table_is_refused_by_every_reader_never_a_silent_answer(copy, tmp_path, capsys, case):
    name, damage, expected, refusing = SILENT[case]
    damage(copy / name)
    said = _reads(copy, capsys, tmp_path)
    for reader in refusing.split():
        assert said[reader] is not None, f"{reader} read the damaged workspace without a word"
        assert expected in said[reader] and FIX in said[reader], (reader, said[reader])
        shown = name if name != "manifest.json" else "queries.parquet"
        assert str(copy / shown) in said[reader], (reader, said[reader])


def test_every_reader_works_on_the_sound_copy(copy, tmp_path, capsys):
    """The checks refuse damage, not a sound workspace (one without experts included: export once failed on it)."""
    assert _reads(copy, capsys, tmp_path) == {"eval": None, "export": None, "overview": None, "ranking": None}
    assert len(list((tmp_path / "export" / "runs").iterdir())) == 1
