"""BEIR loading: valid folders load; every kind of bad input is reported at once with file, line and fix."""

from __future__ import annotations

import json

import pytest

from explorer.data import DataError, load_beir


def test_loads_valid_folder(tiny_beir):
    ds = load_beir(tiny_beir)
    assert ds.name == "tiny"
    assert ds.corpus.ids == [f"d{i}" for i in range(6)]
    assert ds.corpus.passages()[1] == "Title 1 document number 1 about topic 1"
    assert ds.qrels["test"] == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1}}
    assert ds.split_queries("test") == ["q1", "q2"]
    assert ds.warnings == []
    assert len(ds.content_hash) == 16


def test_hash_changes_with_content(tiny_beir):
    before = load_beir(tiny_beir).content_hash
    with open(tiny_beir / "queries.jsonl", "a") as f:
        f.write(json.dumps({"_id": "q3", "text": "new"}) + "\n")
    assert load_beir(tiny_beir).content_hash != before


def _problems(folder):
    with pytest.raises(DataError) as err:
        load_beir(folder)
    return err.value.problems, str(err.value)


def test_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    problems, text = _problems(tmp_path / "empty")
    files = {p.file.name for p in problems}
    assert {"corpus.jsonl", "queries.jsonl", "qrels"} <= files
    assert "fix:" in text


def test_not_a_folder(tmp_path):
    problems, _ = _problems(tmp_path / "nope")
    assert "not a folder" in problems[0].message


def test_every_problem_reported_at_once_with_lines(tiny_beir):
    corpus = tiny_beir / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[1] = "{not json"
    lines[2] = json.dumps({"_id": "d9", "title": "no text"})
    lines[3] = json.dumps({"_id": "d0", "text": "duplicate of the first id"})
    corpus.write_text("\n".join(lines) + "\n")
    (tiny_beir / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "topic 1"}\n{"_id": "q2", "text": "caf\xe9"}\n')
    (tiny_beir / "qrels" / "test.tsv").write_text("q1\td1\t2\nq1\td4\thigh\n")
    problems, text = _problems(tiny_beir)
    by = {(p.file.name, p.line): p.message for p in problems}
    assert "not valid JSON" in by[("corpus.jsonl", 2)]
    assert "missing field(s) text" in by[("corpus.jsonl", 3)]
    assert "duplicate _id 'd0'" in by[("corpus.jsonl", 4)]
    assert "not UTF-8" in by[("queries.jsonl", 2)]
    assert "not the header" in by[("test.tsv", 1)]
    assert "not an integer" in by[("test.tsv", 2)]
    assert len(problems) == 6
    assert "corpus.jsonl:2" in text


def test_empty_corpus(tiny_beir):
    (tiny_beir / "corpus.jsonl").write_text("")
    problems, _ = _problems(tiny_beir)
    assert any("corpus is empty" in p.message for p in problems)


def test_missing_id_in_queries(tiny_beir):
    (tiny_beir / "queries.jsonl").write_text(json.dumps({"text": "no id"}) + "\n")
    problems, _ = _problems(tiny_beir)
    assert problems[0].line == 1 and "_id" in problems[0].message


def test_missing_named_split(tiny_beir):
    with pytest.raises(DataError) as err:
        load_beir(tiny_beir, splits=("test", "train"))
    assert "train" in str(err.value) and "qrels/train.tsv" in str(err.value)


def test_unknown_ids_in_qrels_are_warnings_not_errors(tiny_beir):
    with open(tiny_beir / "qrels" / "test.tsv", "a") as f:
        f.write("q1\tmissing-doc\t1\nq-unknown\td1\t1\n")
    ds = load_beir(tiny_beir)
    messages = " | ".join(w.message for w in ds.warnings)
    assert "1 judged query id(s) not in queries.jsonl" in messages
    assert "1 qrels row(s) name documents not in corpus.jsonl" in messages
    assert "q-unknown" not in ds.qrels["test"]
    assert ds.qrels["test"]["q1"]["missing-doc"] == 1  # kept: it counts as relevant, as in BEIR


def test_real_arguana_reports_its_five_unknown_documents(shared_data):
    ds = load_beir(shared_data / "arguana", splits=("test",))
    assert len(ds.corpus) == 8674
    assert any(w.message.startswith("5 qrels row(s)") for w in ds.warnings)


def test_a_100k_document_corpus_is_held_once_while_loading(tmp_path):
    """Lines are parsed one at a time into columnar lists: the peak is the loaded corpus plus a little, not the raw
    file plus parsed objects plus a table."""
    import tracemalloc

    from .conftest import write_beir

    words = "retrieval routed over domain experts with pilot embeddings and merged adapters".split()
    corpus = [{"_id": f"doc-{i}", "title": f"Title {i}", "text": " ".join(words[(i + j) % len(words)]
                                                                      for j in range(30))} for i in range(100_000)]
    folder = write_beir(tmp_path / "big", corpus, [{"_id": "q", "text": "pilot"}], {"test": [("q", "doc-1", 1)]})
    del corpus
    file_size = (folder / "corpus.jsonl").stat().st_size
    tracemalloc.start()
    ds = load_beir(folder)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds.corpus) == 100_000
    assert peak < 1.25 * held, f"peak {peak / 1e6:.0f} MB vs {held / 1e6:.0f} MB held (file {file_size / 1e6:.0f} MB)"
