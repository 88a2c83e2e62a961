"""Hostile BEIR folders: each bad input is a DataError Problem naming the file (and line) and the fix, never a
traceback; a build with several bad datasets reports all of them, before any model is loaded, and writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.data import DataError, load_beir

from .conftest import write_beir

CORPUS = [{"_id": f"d{i}", "title": f"Title {i}", "text": f"document number {i} about topic {i % 3}"}
          for i in range(6)]
QUERIES = [{"_id": "q1", "text": "topic 1"}, {"_id": "q2", "text": "topic 2"}]
QRELS = {"test": [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 1)]}


def folder(tmp_path: Path, name: str = "tiny") -> Path:
    return write_beir(tmp_path / name, CORPUS, QUERIES, QRELS)


def problems(path: Path, splits=None) -> tuple[list, str]:
    with pytest.raises(DataError) as err:
        load_beir(path, splits=splits)
    return err.value.problems, str(err.value)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_byte_order_mark_is_accepted_and_changes_nothing(tmp_path):
    plain = load_beir(folder(tmp_path, "plain"))
    bom = folder(tmp_path, "bom")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        path = bom / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = load_beir(bom)
    assert marked.corpus == plain.corpus
    assert marked.queries == plain.queries
    assert marked.qrels == plain.qrels
    assert marked.warnings == []


def test_an_empty_queries_file_is_a_problem(tmp_path):
    path = folder(tmp_path)
    (path / "queries.jsonl").write_text("\n  \n")
    found, text = problems(path)
    assert [(p.file.name, p.message) for p in found] == [("queries.jsonl", "no queries (the file has no query lines)")]
    assert "queries.jsonl: no queries" in text and "fix: add at least one query" in text


def test_negative_grades_and_empty_query_texts_name_file_and_line(tmp_path):
    path = folder(tmp_path)
    (path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t-1\n")
    (path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "topic 1"}) + "\n"
                                        + json.dumps({"_id": "q2", "text": ""}) + "\n"
                                        + json.dumps({"_id": "q3", "text": "  \t "}) + "\n")
    found, text = problems(path)
    by = {(p.file.name, p.line): p for p in found}
    assert set(by) == {("test.tsv", 3), ("queries.jsonl", 2), ("queries.jsonl", 3)}
    assert "grade -1 is negative" in by[("test.tsv", 3)].message
    assert "0 or more" in by[("test.tsv", 3)].fix
    assert "query 'q2' has an empty text" in by[("queries.jsonl", 2)].message
    assert "test.tsv:3: grade -1 is negative" in text and "queries.jsonl:3: query 'q3' has an empty text" in text


def test_a_folder_where_a_file_should_be(tmp_path):
    path = folder(tmp_path)
    (path / "corpus.jsonl").unlink()
    (path / "corpus.jsonl").mkdir()
    (path / "qrels" / "test.tsv").unlink()
    (path / "qrels" / "test.tsv").mkdir()
    for splits in (None, ("test",)):
        found, text = problems(path, splits)
        by = {p.file.name: p.message for p in found}
        assert by == {"corpus.jsonl": "is a folder, not a file", "test.tsv": "is a folder, not a file"}
        assert "corpus.jsonl: is a folder, not a file (fix: replace it with the file itself" in text


def test_symbolic_link_loops(tmp_path):
    path = folder(tmp_path)
    (path / "queries.jsonl").unlink()
    os.symlink(path / "queries.jsonl", path / "queries.jsonl")
    (path / "qrels" / "dev.tsv").symlink_to(path / "qrels" / "dev.tsv")
    found, _ = problems(path)
    by = {p.file.name: p.message for p in found}
    loop = "is a symbolic link loop, not a file"
    assert by == {"queries.jsonl": loop, "dev.tsv": loop}

    root = tmp_path / "looped"
    root.symlink_to(root)
    found, text = problems(root)
    assert [p.message for p in found] == ["is a symbolic link loop, not a folder"]
    assert f"{root}: is a symbolic link loop" in text


def test_qrels_that_is_a_file(tmp_path):
    path = folder(tmp_path)
    for f in (path / "qrels").iterdir():
        f.unlink()
    (path / "qrels").rmdir()
    (path / "qrels").write_text("q1\td1\t1\n")
    found, _ = problems(path)
    assert [(p.file.name, p.message) for p in found] == [("qrels", "is a file, not a folder")]


def test_deeply_nested_json_is_a_problem_not_a_recursion_error(tmp_path):
    path = folder(tmp_path)
    lines = (path / "corpus.jsonl").read_text().splitlines()
    lines[2] = "[" * 100000
    lines[4] = '{"_id": "d4", "text": ' + "[" * 50000 + "]" * 50000 + "}"
    (path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    found, text = problems(path)
    assert [(p.line, p.message) for p in found] == [(3, "JSON nested too deeply to read"),
                                                    (5, "JSON nested too deeply to read")]
    assert "corpus.jsonl:3: JSON nested too deeply" in text


def test_a_build_reports_every_bad_dataset_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import explorer.build as build_module

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the data were checked")

    monkeypatch.setattr(build_module, "Encoder", no_model)
    first, second = folder(tmp_path, "first"), folder(tmp_path, "second")
    (first / "queries.jsonl").write_text("")
    (second / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t-2\n")
    config = tmp_path / "build.toml"
    config.write_text(f'cache_dir = "{tmp_path / "cache"}"\n'
                      f'[[datasets]]\nname = "first"\npath = "{first}"\n'
                      f'[[datasets]]\nname = "second"\npath = "{second}"\n')
    before = listing(tmp_path)
    assert main(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s) in 2 datasets" in err
    assert f"{first / 'queries.jsonl'}: no queries" in err
    assert f"{second / 'qrels' / 'test.tsv'}:2: grade -2 is negative" in err
    assert "Traceback" not in err
    assert listing(tmp_path) == before  # no cache folder, no workspace, no temporary folder


@pytest.mark.slow
def test_a_stopping_split_without_a_relevant_judgement_stops_the_build(tmp_path, capsys):
    """stop_split names a split whose every judgement is 0: the build says so (exit 2) instead of silently falling
    back to the holdout, and leaves no workspace behind; once the split judges a document, the expert stops on it."""
    data = folder(tmp_path, "tiny")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n")
    config = tmp_path / "build.toml"
    config.write_text(f'cache_dir = "{tmp_path / "cache"}"\n[layout]\numap = false\n'
                      f'[[datasets]]\nname = "tiny"\npath = "{data}"\n'
                      '[[experts]]\nname = "x"\nsources = [{dataset = "tiny", source = "crops"}]\nstop_split = "dev"\n')
    assert main(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{data / 'qrels' / 'dev.tsv'}: split 'dev' judges no document of the corpus relevant to any query" in err
    assert "drop stop_split" in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists()
    # with one relevant judgement the split is read (it is neither the test nor a training split) and stops on it
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
    assert main(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"]) == 0
    from explorer.workspace import Workspace

    hp = Workspace(tmp_path / "ws").expert_card("x")["hyper_parameters"]
    assert hp["stop_split"] == "dev" and hp["holdout_queries"] == 1 and "stop_ndcg10" in hp
