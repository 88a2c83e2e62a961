"""Run files read as trec_eval reads them (explorer.runs), and [[runs]] tables checked with the config: no model.

Every expected value is computed here by ir_measures (trec_eval through pytrec_eval) on the same file, never by
explorer's own code; the runs come from an independent implementation (bm25s when it is installed, else the
textbook TF-IDF scorer in tests/lexical.py) or are written by hand."""

from __future__ import annotations

import math
from pathlib import Path

import ir_measures
import pandas as pd
import pytest

from explorer.config import ConfigError, load_config
from explorer.data import load_beir
from explorer.runs import MAX_LINE_BYTES, MAX_LISTED, RunFileError, RunTarget, import_run, read_run
from tests.conftest import ROOT, write_beir
from tests.lexical import tfidf_run

SAMPLE = ROOT / "sample_data"
MEASURES = ["nDCG@10", "AP", "R@100", "P@5", "RR@10"]


def trec_sorted(hits: dict[str, float]) -> list[tuple[str, float]]:
    """trec_eval's order, written independently: score descending, then document id descending."""
    return sorted(hits.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def reference(qrels: dict, run: dict, depth: int | None = None) -> dict[tuple[str, str], float]:
    """(qid, measure) -> trec_eval's value through ir_measures, on `run` cut to `depth` in trec_eval's order. RR@10
    is trec_eval's reciprocal rank on each query's top 10 (pytrec_eval's recip_rank reads no cutoff)."""
    cut = {q: dict(trec_sorted(h)[:depth]) for q, h in run.items()} if depth else run
    plain = [ir_measures.parse_measure(m) for m in MEASURES if m != "RR@10"]
    out = {(m.query_id, str(m.measure)): m.value for m in ir_measures.pytrec_eval.iter_calc(plain, qrels, cut)}
    top10 = {q: dict(trec_sorted(h)[:10]) for q, h in cut.items()}
    out |= {(m.query_id, "RR@10"): m.value
            for m in ir_measures.pytrec_eval.iter_calc([ir_measures.RR], qrels, top10)}
    return out


def file_run(path: Path) -> dict[str, dict[str, float]]:
    return {q: dict(h) for q, h in _grouped(ir_measures.read_trec_run(str(path))).items()}


def _grouped(records) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault(r.query_id, {})[r.doc_id] = r.score
    return out


def sample_target(name: str = "homefix", depth: int = 1000) -> tuple[RunTarget, pd.DataFrame, dict]:
    ds = load_beir(SAMPLE / name)
    qids = list(ds.qrels["test"])
    queries = pd.DataFrame({"row": range(len(qids)), "qid": qids, "role": "eval"})
    return RunTarget(name, ds.corpus.ids, set(qids), depth), queries, {"eval": ds.qrels["test"]}


def independent_lines(beir: Path, qids: list[str]) -> list[str]:
    """A run from another implementation: bm25s where installed, else the TF-IDF of tests/lexical.py; scores
    rounded to one decimal so that many results tie."""
    try:
        import bm25s
    except ImportError:
        return tfidf_run(beir, qids, digits=1)
    ds = load_beir(beir)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(ds.corpus.passages(), show_progress=False), show_progress=False)
    docs, scores = retriever.retrieve(bm25s.tokenize([ds.queries[q] for q in qids], show_progress=False),
                                      k=len(ds.corpus), show_progress=False)
    return [f"{q} Q0 {ds.corpus.ids[d]} {r + 1} {round(float(s), 1)} bm25s" for q, row, srow in
            zip(qids, docs, scores) for r, (d, s) in enumerate(zip(row, srow))]


def metrics_by_qid(imported, queries: pd.DataFrame) -> dict[tuple[str, str], float]:
    m = imported.metrics.merge(queries[["row", "qid"]], on="row")
    return {(q, name): float(v) for name in MEASURES for q, v in zip(m["qid"], m[name])}


def assert_equal_metrics(mine: dict, ref: dict, qids) -> None:
    for q in qids:
        for m in MEASURES:
            assert math.isclose(mine[(q, m)], ref.get((q, m), 0.0), abs_tol=1e-12), (q, m, mine[(q, m)])


# --- equality with trec_eval, through ir_measures ----------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["homefix", "pycode"])
def test_a_run_from_another_implementation_scores_as_ir_measures_per_query(tmp_path, dataset):
    target, queries, qrels = sample_target(dataset)
    path = tmp_path / "run.trec"
    path.write_text("\n".join(independent_lines(SAMPLE / dataset, queries["qid"].tolist())) + "\n")
    imported = import_run("lexical", path, target, queries, qrels, MEASURES)
    ties = sum(len(h) - len(set(s for _, s in h)) for h in read_run(path, target).hits.values())
    assert ties > 50, "the file must hold ties, or it checks nothing about them"
    assert_equal_metrics(metrics_by_qid(imported, queries), reference(qrels["eval"], file_run(path)),
                         queries["qid"])
    assert imported.record["lines"] == len(path.read_text().splitlines())
    assert imported.record["warnings"] == []


def test_ties_are_broken_by_document_id_descending_as_trec_eval_does(tmp_path):
    docs = [{"_id": d, "title": "", "text": d} for d in ("a1", "b2", "c3", "d4")]
    beir = write_beir(tmp_path / "b", docs, [{"_id": "q", "text": "x"}], {"test": [("q", "a1", 1)]})
    ds = load_beir(beir)
    target = RunTarget("b", ds.corpus.ids, {"q"}, 100)
    path = tmp_path / "ties.trec"  # the file's ranks put the relevant a1 first; trec_eval reads the scores
    path.write_text("q Q0 a1 1 2.0 t\nq Q0 c3 2 2.0 t\nq Q0 b2 3 2.0 t\nq Q0 d4 4 1.0 t\n")
    parsed = read_run(path, target)
    assert [d for d, _ in parsed.hits["q"]] == ["c3", "b2", "a1", "d4"]
    queries = pd.DataFrame({"row": [0], "qid": ["q"], "role": "eval"})
    imported = import_run("t", path, target, queries, {"eval": ds.qrels["test"]}, MEASURES)
    assert imported.runs["doc"].tolist() == [2, 1, 0, 3] and imported.runs["rank"].tolist() == [1, 2, 3, 4]
    assert imported.metrics["RR@10"].iloc[0] == pytest.approx(1 / 3)
    assert_equal_metrics(metrics_by_qid(imported, queries), reference(ds.qrels["test"], file_run(path)), ["q"])


def test_a_run_deeper_than_the_workspace_is_cut_in_trec_order_and_says_so(tmp_path):
    target, queries, qrels = sample_target(depth=7)
    path = tmp_path / "deep.trec"
    path.write_text("\n".join(tfidf_run(SAMPLE / "homefix", queries["qid"].tolist(), digits=0)) + "\n")
    imported = import_run("deep", path, target, queries, qrels, MEASURES)
    assert imported.runs.groupby("row").size().max() == 7
    record = imported.record
    assert record["cut_queries"] == len(queries) and record["deepest"] > 7
    assert any("cut to its top 7" in w for w in record["warnings"])
    assert_equal_metrics(metrics_by_qid(imported, queries), reference(qrels["eval"], file_run(path), depth=7),
                         queries["qid"])


def test_unknown_queries_and_documents_are_counted_and_scored_as_trec_eval_does(tmp_path):
    target, queries, qrels = sample_target()
    lines = tfidf_run(SAMPLE / "homefix", queries["qid"].tolist()[:3], depth=20)
    q0 = queries["qid"].iloc[0]
    lines[1:1] = [f"{q0} Q0 not-a-doc 2 1e9 x", f"{q0} Q0 other-doc 3 1e9 x"]  # on top of the ranking
    lines += ["ghost-1 Q0 hf-d001 1 3.0 x", "ghost-1 Q0 hf-d002 2 2.0 x", "ghost-2 Q0 hf-d003 1 1.0 x"]
    path = tmp_path / "unknown.trec"
    path.write_text("\n".join(lines) + "\n")
    imported = import_run("u", path, target, queries, qrels, MEASURES)
    r = imported.record
    assert (r["unknown_qids"], r["unknown_qid_lines"], r["unknown_doc_lines"]) == (2, 3, 2)
    text = " ".join(r["warnings"])
    assert "2 query id(s) on 3 line(s)" in text and "'ghost-1'" in text and "2 kept result(s) name documents" in text
    assert f"{len(queries) - 3} eval query(ies)" in text and "score 0" in text
    top = imported.runs[imported.runs["row"] == 0].sort_values("rank")
    assert top["doc"].tolist()[:2] == [-1, -1]  # kept at their rank, as not relevant
    known = {q: h for q, h in file_run(path).items() if q in target.qids}
    assert_equal_metrics(metrics_by_qid(imported, queries), reference(qrels["eval"], known), queries["qid"])


def test_the_identical_id_rule_drops_the_query_itself_as_for_the_dataset_own_runs(tmp_path):
    docs = [{"_id": d, "title": "", "text": d} for d in ("q1", "d1", "d2")]
    beir = write_beir(tmp_path / "b", docs, [{"_id": "q1", "text": "x"}], {"test": [("q1", "d2", 1)]})
    ds = load_beir(beir)
    path = tmp_path / "r.tsv"
    path.write_text("qid\tdocid\tscore\nq1\tq1\t9\nq1\td1\t5\nq1\td2\t4\n")
    parsed = read_run(path, RunTarget("b", ds.corpus.ids, {"q1"}, 100, ignore_identical_ids=True))
    assert parsed.format == "tsv" and [d for d, _ in parsed.hits["q1"]] == ["d1", "d2"]
    assert parsed.identical_dropped == 1 and parsed.lines == 3


@pytest.mark.parametrize("text,fmt", [("q1\td1\t2.5\nq1\td2\t1\n", "tsv"), ("query-id corpus-id score\nq1 d1 2.5\n"
                                                                           "q1 d2 1\n", "auto"),
                                      ("q1 Q0 d1 1 2.5 run\nq1 Q0 d2 2 1 run\n", "auto")])
def test_tsv_with_or_without_header_and_trec_are_told_apart(tmp_path, text, fmt):
    path = tmp_path / "r.txt"
    path.write_text(text)
    parsed = read_run(path, RunTarget("x", ["d1", "d2"], {"q1"}, 10), fmt)
    assert parsed.hits == {"q1": [("d1", 2.5), ("d2", 1.0)]} and parsed.lines == 2


def test_a_file_whose_queries_are_interleaved_reads_the_same_and_still_finds_duplicates(tmp_path):
    target = RunTarget("x", ["d1", "d2", "d3"], {"q1", "q2"}, 10)
    grouped, mixed = tmp_path / "g.trec", tmp_path / "m.trec"
    grouped.write_text("q1 Q0 d1 1 3 t\nq1 Q0 d2 2 2 t\nq2 Q0 d3 1 1 t\n")
    mixed.write_text("q1 Q0 d1 1 3 t\nq2 Q0 d3 1 1 t\nq1 Q0 d2 2 2 t\n")
    a, b = read_run(grouped, target), read_run(mixed, target)
    assert a.hits == b.hits and not a.interleaved and b.interleaved
    mixed.write_text("q1 Q0 d1 1 3 t\nq2 Q0 d3 1 1 t\nq1 Q0 d1 2 2 t\n")
    with pytest.raises(RunFileError, match=r"m\.trec:3: document 'd1' is ranked again for query 'q1' \(first at "
                                           r"line 1\)"):
        read_run(mixed, target)


# --- untrusted input: every malformed line at once, with file:line and the fix ---------------------------------
def test_every_problem_of_a_run_file_is_listed_at_once_with_its_line(tmp_path):
    path = tmp_path / "bad.trec"
    lines = [b"q1 Q0 d1 1 2.0 t", b"q1 Q0 d2 2 t", b"q1 Q0 d3 two 1.0 t", b"q1 Q0 d4 4 high t", b"q1 Q0 d5 5 nan t",
             b"q1 Q0 d6 6 -inf t", b"q1 Q0 d1 7 0.5 t", b"q1 Q0 d7 8 1_0 t", b"q1 Q0 \xff\xfe 9 1 t",
             b"q1 Q0 d8 10 " + b"9" * (MAX_LINE_BYTES + 10) + b" t", b"q1 Q0 d9 11 0.1 t"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(RunFileError) as caught:
        read_run(path, RunTarget("x", [f"d{i}" for i in range(10)], {"q1"}, 100))
    message = str(caught.value)
    expected = {2: "has 5 columns, a TREC run line has 6", 3: "rank 'two' is not an integer",
                4: "score 'high' is not a number", 5: "score 'nan' is not a finite number",
                6: "score '-inf' is not a finite number", 7: "document 'd1' is ranked again for query 'q1' (first "
                "at line 1)", 8: "score '1_0' is not a number", 9: "not UTF-8",
                10: f"longer than {MAX_LINE_BYTES:,} bytes"}
    assert message.startswith(f"{path}: {len(expected)} problem(s) in the run file")
    for line, what in expected.items():
        assert f"{path}:{line}: " in message and what in message, (line, what)
    assert all("(fix: " in p_line for p_line in message.splitlines()[1:])
    assert f"{path}:1:" not in message and f"{path}:11:" not in message


def test_a_hostile_file_lists_the_first_problems_and_counts_the_rest_by_kind(tmp_path):
    path = tmp_path / "many.trec"
    path.write_text("".join(f"q1 Q0 d{i} x {i} t\n" for i in range(500)) + "q1 Q0 d0 1 1\n" * 40)
    with pytest.raises(RunFileError) as caught:
        read_run(path, RunTarget("x", ["d0"], {"q1"}, 100))
    message = str(caught.value)
    assert message.count(f"{path}:") == MAX_LISTED + 1  # the heading names the file too
    assert "540 problem(s)" in message and f"... and {540 - MAX_LISTED:,} more (in all: 500 non-integer rank, " \
                                         "40 wrong column count)" in message


@pytest.mark.parametrize("content,what", [(b"", "holds no result lines"), (b"\n\n", "holds no result lines"),
                                          (b"q1 d1 1 2.0\n", "has 4 columns, so the format cannot be told")])
def test_an_empty_or_unknown_layout_is_refused(tmp_path, content, what):
    path = tmp_path / "r.txt"
    path.write_bytes(content)
    with pytest.raises(RunFileError, match=what):
        read_run(path, RunTarget("x", ["d1"], {"q1"}, 10))


def test_a_missing_or_unreadable_path_is_a_clear_problem(tmp_path):
    for path, what in ((tmp_path / "none.trec", "does not exist"), (tmp_path, "folder")):
        with pytest.raises(RunFileError, match=f"the run file .*{what}"):
            read_run(path, RunTarget("x", ["d1"], {"q1"}, 10))


def test_only_the_top_depth_of_each_query_is_kept_while_reading(tmp_path):
    path = tmp_path / "big.trec"
    path.write_text("".join(f"q{q} Q0 d{d} {d} {(d * 7919) % 1000} t\n" for q in range(3) for d in range(3000)))
    parsed = read_run(path, RunTarget("x", [f"d{d}" for d in range(3000)], {"q0", "q1", "q2"}, 25))
    assert {len(h) for h in parsed.hits.values()} == {25} and parsed.lines == 9000
    for q, hits in parsed.hits.items():
        expected = trec_sorted({f"d{d}": float((d * 7919) % 1000) for d in range(3000)})[:25]
        assert hits == expected


# --- [[runs]] in a build config ------------------------------------------------------------------------------
def runs_config(tmp_path: Path, runs: str) -> Path:
    for name in ("a.trec", "b.trec"):
        (tmp_path / name).write_text("q Q0 d 1 1 t\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[datasets]]\nname = "homefix"\npath = "{SAMPLE / "homefix"}"\ntrain_split = "train"\n'
                   f'[[datasets]]\nname = "pycode"\npath = "{SAMPLE / "pycode"}"\ntrain_split = "train"\n'
                   '[[experts]]\nname = "homefix"\nsources = [{dataset = "homefix"}]\n' + runs)
    return cfg


def test_runs_tables_are_read_with_their_defaults(tmp_path):
    cfg = load_config(runs_config(tmp_path, '[[runs]]\nname = "bm25"\ndataset = "homefix"\npath = "a.trec"\n'
                                  '[[runs]]\nname = "bm25"\ndataset = "pycode"\npath = "b.trec"\nformat = "trec"\n'))
    assert [(r.name, r.dataset, r.path.name, r.format, r.candidate) for r in cfg.runs] == [
        ("bm25", "homefix", "a.trec", "auto", False), ("bm25", "pycode", "b.trec", "trec", False)]


def test_every_runs_problem_is_reported_at_once(tmp_path):
    bad = ('[[runs]]\nname = "pilot-mean"\ndataset = "homefix"\npath = "a.trec"\n'
           '[[runs]]\nname = "x"\ndataset = "homefx"\npath = "missing.trec"\nformat = "csv"\n'
           '[[runs]]\nname = "../up"\ndataset = "homefix"\npath = "a.trec"\n'
           '[[runs]]\nname = "homefix"\ndataset = "homefix"\npath = "a.trec"\n'
           '[[runs]]\nname = "cand"\ndataset = "homefix"\npath = "a.trec"\ncandidate = true\n'
           '[[runs]]\nname = "twice"\ndataset = "pycode"\npath = "a.trec"\n'
           '[[runs]]\nname = "twice"\ndataset = "pycode"\npath = "b.trec"\ncandidate = true\n'
           '[[runs]]\nname = "y"\ndataset = "pycode"\npath = "b.trec"\nrank = 3\n'
           '[evaluation]\nreference = "cand"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(runs_config(tmp_path, bad))
    text = str(caught.value)
    for expected in ("[runs 'pilot-mean'] `name` 'pilot-mean' is already the name of an expert or a strategy",
                     "[runs 'x'] `dataset` 'homefx' is not a configured dataset (fix: did you mean 'homefix'?",
                     "[runs 'x'] `path`", "missing.trec does not exist", "[runs 'x'] `format` \"csv\" is not one of",
                     "[runs '../up'] `name` the run name '../up' is not",
                     "[runs 'homefix'] `name` 'homefix' is already the name of an expert or a strategy",
                     "[runs 'cand'] `candidate` a routing candidate needs a run on every dataset; it has none for "
                     "pycode", "[runs 'twice'] `dataset` two files of run 'twice' rank dataset 'pycode'",
                     "[runs 'twice'] `candidate` is true in some of its tables and false in others",
                     "[runs 'y'] `rank` is not a setting of this table"):
        assert expected in text, expected
    assert "reference" not in text  # a run's name is a strategy a reference may name
