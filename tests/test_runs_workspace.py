"""Runs from files as systems of a built workspace (every page, the CLI, routing candidates), `explorer add-run`
(atomic), two workspaces compared query by query, and the notebook API (one data path, the README's example).

Expected values come from ir_measures on the run files, from the workspace's own stored tables, or from
scipy through explorer.evaluation.paired_tests on arrays paired here by query id."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd
import pytest

from explorer import analysis, export, pages, views
from explorer.cli import main
from explorer.compare import CompareError, Compared, compared
from explorer.workspace import Workspace, WorkspaceError
from tests.conftest import ROOT, two_domain_config
from tests.lexical import tfidf_run
from tests.test_runs import MEASURES, file_run, reference, trec_sorted

SAMPLE = ROOT / "sample_data"
HEAVY = ("torch", "sentence_transformers", "peft", "faiss")


def run_tables(name: str, files: dict[str, Path], candidate: bool) -> str:
    return "".join(f'[[runs]]\nname = "{name}"\ndataset = "{d}"\npath = "{p}"\ncandidate = '
                   f'{str(candidate).lower()}\n' for d, p in files.items())


@pytest.fixture(scope="module")
def built(tmp_path_factory, trains):
    """Two tiny two-domain workspaces from one cache: `runs` with a TF-IDF run as a routing candidate on both
    datasets and a second run on homefix only, and `plain` without runs (the same queries)."""
    from explorer.build import build

    root = tmp_path_factory.mktemp("runs_ws")
    files = {}
    for d in ("homefix", "pycode"):
        files[d] = root / f"{d}.trec"
        files[d].write_text("\n".join(tfidf_run(SAMPLE / d, digits=1)) + "\n")
    measures = '[evaluation]\nmeasures = ["nDCG@10", "AP", "R@100", "P@5", "RR@10"]\n'
    cfg = two_domain_config(root / "runs.toml", root / "cache", tables=measures)
    cfg.write_text(cfg.read_text() + run_tables("tfidf", files, True) +
                   run_tables("tfidf-hf", {"homefix": files["homefix"]}, False))
    plain = two_domain_config(root / "plain.toml", root / "cache", tables=measures)
    return {"runs": build(cfg, root / "ws_runs", progress=False), "plain": build(plain, root / "ws_plain",
                                                                                 progress=False),
            "files": files, "root": root}


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def copy(src: Workspace, dst: Path) -> Path:
    shutil.copytree(src.path, dst)
    return dst


# --- a run from a file is a system beside the others --------------------------------------------------------
def test_the_stored_metrics_of_a_run_are_ir_measures_on_its_file(built):
    ws = built["runs"]
    assert ws.manifest["format_version"] == 3 and ws.external_datasets == {"tfidf": ["homefix", "pycode"],
                                                                           "tfidf-hf": ["homefix"]}
    depth = ws.manifest["index"]["depth"]
    for d, path in built["files"].items():
        rows = ws.queries[ws.queries["dataset"] == d]
        for role, group in rows.groupby("role"):
            qrels = ws.qrels(d, role)
            ref = reference(qrels, {q: h for q, h in file_run(path).items() if q in set(group["qid"])}, depth)
            m = ws.metric_rows(["tfidf"], group["row"]).merge(ws.queries[["row", "qid"]], on="row")
            assert len(m) == len(group)
            for name in MEASURES:
                for q, v in zip(m["qid"], m[name]):
                    assert math.isclose(v, ref.get((q, name), 0.0), abs_tol=1e-12), (d, role, q, name)
    record = next(r for r in ws.external_runs if r["name"] == "tfidf" and r["dataset"] == "homefix")
    assert record["sha256"] == hashlib.sha256(built["files"]["homefix"].read_bytes()).hexdigest()
    assert len(ws.docs("homefix")) > depth and any(f"cut to its top {depth}" in w for w in record["warnings"])


def test_a_run_is_in_the_overview_tables_significance_and_exports(built, capsys):
    ws = built["runs"]
    table = analysis.summary(ws)
    assert math.isnan(table.at["pycode", "tfidf-hf"]) and math.isnan(table.at[analysis.AVERAGE, "tfidf-hf"])
    eval_rows = ws.eval_rows("pycode")["row"]
    sm = ws.strategy_metric_rows(["tfidf"], eval_rows)
    assert table.at["pycode", "tfidf"] == pytest.approx(sm["nDCG@10"].mean())
    sig = analysis.significance_table(ws, "nDCG@10", "base")
    assert {"tfidf"} <= set(sig[sig["dataset"] == "pycode"]["system"])
    assert "tfidf-hf" not in set(sig[sig["dataset"] == "pycode"]["system"])
    assert sig.equals(analysis.compute_significance(ws, "nDCG@10", "base")[sig.columns])
    wtl = analysis.win_tie_loss(ws, "nDCG@10", "base").set_index(["dataset", "strategy"])
    assert wtl.loc[("pycode", "tfidf-hf"), "queries"] == 0
    assert wtl.loc[("homefix", "tfidf-hf"), "queries"] == len(ws.eval_rows("homefix"))
    for fmt in ("latex", "markdown", "csv"):
        text = export.paper_table(ws, fmt=fmt)
        assert "tfidf" in text and ("tfidf-hf" in text or r"tfidf-hf" in text.replace("\\", ""))
    assert main(["eval", str(ws.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pycode"]["tfidf"]["nDCG@10"] == pytest.approx(sm["nDCG@10"].mean(), abs=1e-6)
    assert out["pycode"]["tfidf-hf"]["nDCG@10"] is None


def test_the_oracle_gap_statistics_waterfall_and_complementarity_take_runs_that_rank_some_datasets(built):
    """Issue 27's views on a workspace with a run on one dataset of two (tfidf-hf) and one on both (tfidf): the
    gap decomposes each only where it ranks, the average column leaves the partial run out, the waterfall pairs
    the queries both sides score, and complementarity compares encoders (runs are systems, not encoders)."""
    from explorer.gap import GAP_PARTS, gap_closed, gap_decomposition, query_gaps
    from explorer.reviewer_stats import cell_statistics

    ws = built["runs"]
    homefix = set(ws.eval_rows("homefix")["row"])
    assert set(query_gaps(ws, "tfidf-hf").index) == homefix
    parts = gap_decomposition(ws, "tfidf-hf")
    assert list(parts.index) == ["homefix", analysis.AVERAGE]
    assert sum(parts.loc["homefix", p] for p in GAP_PARTS) == pytest.approx(parts.loc["homefix", "gap"], abs=1e-12)
    closed = gap_closed(ws, resamples=50).set_index(["dataset", "strategy"])
    assert math.isnan(closed.loc[("pycode", "tfidf-hf"), "closed"])
    assert math.isnan(closed.loc[(analysis.AVERAGE, "tfidf-hf"), "closed"])
    assert not math.isnan(closed.loc[(analysis.AVERAGE, "tfidf"), "score"])
    stats = cell_statistics(ws, "nDCG@10", "base")
    assert set(stats[stats["strategy"] == "tfidf-hf"]["dataset"]) == {"homefix"}
    assert {"homefix", "pycode", analysis.AVERAGE} <= set(stats[stats["strategy"] == "tfidf"]["dataset"])
    sig = analysis.significance_table(ws, "nDCG@10", "base")
    assert "tfidf-hf" not in set(sig[sig["dataset"] == analysis.AVERAGE]["system"])
    wf = views.difference_waterfall(ws, "base", "tfidf-hf")
    assert wf["queries"] == len(homefix) and set(wf["bars"]["row"]) == homefix
    comp = views.complementarity_view(ws, "homefix")
    assert list(comp["pairs"].index) == ws.encoders
    for key in ("gap", "complementarity", "errors"):
        data = pages.page_data(key, ws, {"strategy": "tfidf-hf"} if key != "complementarity" else {})
        assert data["page"] == key
    errors = pages.page_data("errors", ws, {"strategy": "tfidf-hf"})["queries"]
    assert {e["gap_part"] for e in errors if e["row"] not in homefix} <= {""}


def test_the_exported_run_is_the_file_cut_to_depth(built, tmp_path):
    ws = built["runs"]
    export.export_all(ws, tmp_path)
    assert not (tmp_path / "runs" / "pycode.tfidf-hf.trec").exists()
    exported = file_run(tmp_path / "runs" / "pycode.tfidf.trec")
    original = file_run(built["files"]["pycode"])
    for qid, hits in exported.items():
        assert trec_sorted(hits) == trec_sorted(original[qid])[:100]


def test_the_inspector_shows_the_run_as_a_column_with_judgements(built):
    ws = built["runs"]
    row = int(ws.eval_rows("pycode")["row"].iloc[0])
    options = views.column_options(ws, row, "pilot-mean")
    assert options["tfidf"] == ("tfidf (run file)", "tfidf") and "tfidf-hf" not in options
    view = views.side_by_side(ws, row, {"tfidf": "tfidf"}, depth=10)
    qid = ws.queries.iloc[row]["qid"]
    expected = trec_sorted(file_run(built["files"]["pycode"])[qid])[:10]
    assert list(zip(view["rankings"]["tfidf"]["doc_id"], view["rankings"]["tfidf"]["score"])) == expected
    judged = ws.qrels("pycode")[qid]
    assert list(view["rankings"]["tfidf"]["grade"].fillna(-1)) == [judged.get(d, -1) for d, _ in expected]
    assert set(view["moves"]["doc_id"]) == {d for d, g in judged.items() if g > 0}
    for page in pages.PAGES:
        pages.page_data(page, ws, {"strategy": "tfidf-hf"} if page in ("errors", "decisions", "map") else {})
    pair = views.strategy_pair(ws, "base", "tfidf")
    assert pair["score_b"].notna().all()


def test_a_candidate_run_is_chosen_by_the_oracle_and_never_routed_live(built):
    ws = built["runs"]
    assert "tfidf" in ws.candidates and "tfidf-hf" not in ws.candidates
    assert "tfidf" in analysis.choice_set(ws, "instance-oracle")
    m = ws.metric_rows(ws.candidates, ws.eval_rows()["row"]).pivot(index="row", columns="system", values="nDCG@10")
    best = m.idxmax(axis=1)[m.max(axis=1) > m.drop(columns="tfidf").max(axis=1) + 1e-9]
    assert len(best), "the TF-IDF run is strictly best on some query"
    chosen = ws.decision_rows(["instance-oracle"], best.index).set_index("row")["chosen"]
    assert (chosen == "tfidf").all()
    never = {s["name"]: s.get("cannot_choose", []) for s in ws.manifest["strategies"]}
    assert never["dataset-router"] == ["tfidf"] and never["instance-oracle"] == [] and never["base"] == []
    dr = ws.decision_rows(["dataset-router"])
    assert dr["score:tfidf"].isna().all() and (dr["chosen"] != "tfidf").all()
    whatif = analysis.WhatIf(ws)
    assert ws.systems.index("tfidf") in whatif.context([e["name"] for e in ws.experts]).candidates
    assert ws.systems.index("tfidf") not in whatif.context([e["name"] for e in ws.experts], typed=True).candidates
    table, _ = whatif.run([e["name"] for e in ws.experts], "nDCG@10")
    stored = analysis.summary(ws, "nDCG@10")
    for s in table.columns:
        assert np.allclose(table[s].to_numpy(dtype=float), stored[s].to_numpy(dtype=float), equal_nan=True), s


# --- explorer add-run ------------------------------------------------------------------------------------------
def test_add_run_adds_a_system_that_every_table_shows(built, tmp_path, capsys):
    ws = Workspace(copy(built["plain"], tmp_path / "ws"))
    path = tmp_path / "pycode.tsv"
    lines = [line.split() for line in built["files"]["pycode"].read_text().splitlines()]
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, _, d, _, s, _ in lines))
    assert main(["add-run", str(ws.path), str(path), "--dataset", "pycode", "--name", "lexical"]) == 0
    assert "Added run 'lexical' on 'pycode'" in capsys.readouterr().out
    after = Workspace(ws.path)
    assert after.manifest["format_version"] == 3 and "lexical" in after.strategies
    assert after.strategies.index("lexical") == max(i for i, s in enumerate(after.manifest["strategies"])
                                                   if s["family"] == "fixed") + 1
    reference_ws = built["runs"]  # the same file, built in: the same metrics on the same queries
    rows = after.eval_rows("pycode")["row"]
    a = after.strategy_metric_rows(["lexical"], rows).set_index("row")[MEASURES]
    b = reference_ws.strategy_metric_rows(["tfidf"], rows).set_index("row")[MEASURES]
    assert np.allclose(a.sort_index().to_numpy(), b.sort_index().to_numpy())
    for measure in after.measures:  # the stored significance is what a fresh computation gives
        stored = after.stored_significance(measure, "base", analysis.SIGNIFICANCE_RESAMPLES)
        fresh = analysis.compute_significance(after, measure, "base")
        assert stored is not None and "lexical" in set(stored["system"])
        assert np.allclose(stored["p_rand"], fresh["p_rand"]) and list(stored["system"]) == list(fresh["system"])
    for page in pages.PAGES:
        pages.page_data(page, after)
    assert main(["eval", str(ws.path)]) == 0 and "lexical" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--dataset", "pycode", "--name", "pilot-mean"], "'pilot-mean' is already a system or strategy"),
    (["--dataset", "pycode", "--name", "base"], "'base' is reserved"),
    (["--dataset", "nope", "--name", "x"], "--dataset 'nope' is not a dataset"),
    (["--dataset", "pycode", "--name", "../x"], "the run name '../x' is not"),
])
def test_add_run_refuses_bad_input_and_leaves_the_workspace_as_it_was(built, tmp_path, capsys, args, message):
    ws = copy(built["plain"], tmp_path / "ws")
    before = tree_digest(ws)
    assert main(["add-run", str(ws), str(built["files"]["pycode"]), *args]) == 2
    assert message in capsys.readouterr().err
    assert tree_digest(ws) == before


def test_a_malformed_file_or_a_failure_while_writing_changes_nothing(built, tmp_path, capsys, monkeypatch):
    ws = copy(built["plain"], tmp_path / "ws")
    before = tree_digest(ws)
    bad = tmp_path / "bad.trec"
    bad.write_text("q Q0 d 1 nan t\nq Q0 d 2\n")
    assert main(["add-run", str(ws), str(bad), "--dataset", "pycode", "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: score 'nan'" in err and f"{bad}:2: has 4 columns" in err
    assert tree_digest(ws) == before

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(analysis, "compute_significance", broken)  # fails after every other file is written
    with pytest.raises(RuntimeError, match="disk full"):
        main(["add-run", str(ws), str(built["files"]["pycode"]), "--dataset", "pycode", "--name", "x"])
    assert tree_digest(ws) == before
    assert not [p for p in ws.parent.iterdir() if p.name.startswith(f".{ws.name}.tmp-")]


def test_a_run_added_to_one_dataset_can_extend_to_another_and_a_format_2_workspace_takes_one(built, tmp_path):
    path = copy(built["plain"], tmp_path / "ws")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    assert Workspace(path).manifest["format_version"] == 2  # an older workspace opens
    from explorer.add_run import AddRunError, add_run

    add_run(path, built["files"]["homefix"], "homefix", "lex")
    add_run(path, built["files"]["pycode"], "pycode", "lex")
    ws = Workspace(path)
    assert ws.external_datasets == {"lex": ["homefix", "pycode"]}
    assert not math.isnan(analysis.summary(ws).at[analysis.AVERAGE, "lex"])
    with pytest.raises(AddRunError, match="already ranks 'pycode'"):
        add_run(path, built["files"]["pycode"], "pycode", "lex")


# --- two workspaces side by side -------------------------------------------------------------------------------
def test_a_second_workspace_is_paired_by_query_id(built):
    a, b = built["plain"], built["runs"]
    both = compared(a, b.path)
    assert isinstance(both, Compared) and "B:tfidf" in both.strategies and "B:pilot-mean" in both.strategies
    m = analysis.per_query_matrix(both, "nDCG@10", "pycode")
    qid_of = a.queries.set_index("row")["qid"]
    theirs = b.strategy_metric_rows(["pilot-mean"]).merge(b.queries[["row", "qid"]], on="row").set_index("qid")
    assert np.allclose(m["B:pilot-mean"].to_numpy(), theirs["nDCG@10"].reindex(qid_of[m.index]).to_numpy())
    from explorer.evaluation import paired_tests

    sig = analysis.significance_table(both, "nDCG@10", "base").set_index(["dataset", "system"])
    expected = paired_tests(m["base"].to_numpy(), m["B:tfidf"].to_numpy())
    assert sig.loc[("pycode", "B:tfidf"), "p_t"] == pytest.approx(expected["p_t"])
    assert sig.loc[("pycode", "B:tfidf"), "delta"] == pytest.approx(expected["delta"])
    row = int(a.eval_rows("pycode")["row"].iloc[2])
    options = views.column_options(both, row, "B:pilot-mean")
    assert {"B:tfidf", "B:base", "tfidf"} - {"tfidf"} <= set(options) and "routed" in options
    qid = qid_of[row]
    view = views.side_by_side(both, row, {"theirs": "B:tfidf"})
    assert list(view["rankings"]["theirs"]["doc_id"]) == [d for d, _ in trec_sorted(file_run(
        built["files"]["pycode"])[qid])[:10]]
    data = pages.page_data("overview", a, {"compare": str(b.path)})
    assert all("B:tfidf" in r and "pilot-mean" in r for r in data["table"])  # a row per dataset and the average


def test_workspaces_over_other_data_or_queries_are_refused_with_the_reason(built, tmp_path, capsys):
    a = built["plain"]
    other = copy(a, tmp_path / "other_queries")
    q = pd.read_parquet(other / "queries.parquet")
    q.loc[q.index[q["role"] == "eval"][0], "qid"] = "someone-else"
    q.to_parquet(other / "queries.parquet", index=False)
    with pytest.raises(CompareError, match=r"dataset 'homefix': .* evaluates 10 queries, .* 10, 9 of them the "
                                           r"same"):
        compared(a, other)
    data = copy(a, tmp_path / "other_data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["datasets"][1]["hash"] = "0" * 16
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CompareError, match="dataset 'pycode' holds other data"):
        compared(a, data)
    one = copy(a, tmp_path / "one")
    manifest = json.loads((one / "manifest.json").read_text())
    manifest["datasets"] = manifest["datasets"][:1]
    manifest["own_expert"] = {k: v for k, v in manifest["own_expert"].items() if k == "homefix"}
    for e in manifest["experts"]:
        e["datasets"] = [d for d in e["datasets"] if d == "homefix"]
    (one / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CompareError, match="is built on datasets homefix; .* on homefix, pycode"):
        compared(a, one)
    assert main(["eval", str(a.path), "--compare", str(one)]) == 2
    assert "cannot compare" in capsys.readouterr().err


# --- the notebook API -----------------------------------------------------------------------------------------
def test_every_page_method_is_the_page_data(built):
    import explorer

    nb = explorer.open(built["runs"].path)
    for key, page in pages.PAGES.items():
        data = getattr(nb, key)()
        assert pages.jsonable({"page": key, "title": page.title, **data}) == pages.page_data(key, nb.workspace)
    overview = nb.overview(measure="R@100", sig=False)
    assert pages.jsonable(overview) == pages.jsonable(pages.page_frames("overview", nb.workspace,
                                                                         {"measure": "R@100", "sig": "false"}))
    assert isinstance(overview.table, pd.DataFrame)
    extra = pages.Page("extra", "Extra", ":material/add:", "x.py", lambda ws, p: {"n": len(ws.datasets)})
    pages.register_page(extra)
    try:
        assert "extra" in dir(nb) and nb.extra() == {"params": {}, "n": 2}  # its (no) parameters, then its data
    finally:
        del pages.PAGES["extra"]
    with pytest.raises(pages.ParamError, match="reads no parameter 'bogus'"):
        nb.overview(bogus=1)


def test_runs_and_compare_of_the_api(built):
    import explorer
    from explorer.evaluation import paired_tests

    nb = explorer.open(built["runs"].path)
    frame = nb.runs("tfidf", "pycode")
    assert list(frame.columns) == ["qid", "Q0", "docid", "rank", "score", "tag"]
    for qid, group in frame.groupby("qid"):
        assert list(zip(group["docid"], group["score"])) == trec_sorted(file_run(built["files"]["pycode"])[qid])[:100]
        assert list(group["rank"]) == list(range(1, len(group) + 1))
    routed = nb.runs("pilot-mean", "pycode")
    assert set(routed["qid"]) == set(nb.workspace.eval_rows("pycode")["qid"])
    table = nb.compare("base", "tfidf").set_index("dataset")
    m = analysis.per_query_matrix(nb.workspace, "nDCG@10", "pycode")
    expected = paired_tests(m["base"].to_numpy(), m["tfidf"].to_numpy())
    assert table.loc["pycode", "p_rand"] == pytest.approx(expected["p_rand"]) and table.loc["pycode", "n"] == len(m)
    assert table.loc[analysis.ALL_QUERIES, "n"] == len(nb.workspace.eval_rows())


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- notebook:begin -->\n```python\n(.*?)```\n<!-- notebook:end -->", text, re.S)
    assert block, "README.md lacks the notebook example"
    return block.group(1)


def test_the_readme_notebook_example_runs_and_imports_no_model(built, tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) == 5
    (tmp_path / "workspaces").mkdir()
    shutil.copytree(built["runs"].path, tmp_path / "workspaces" / "sample")
    probe = code + f"\nimport sys\nprint('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_the_overview_compares_with_a_second_workspace_in_the_app(built):
    from tests.test_app import app, texts

    at = app(built["plain"].path, "overview", {"compare": str(built["runs"].path)})
    shown = texts(at)
    assert "B:tfidf" in shown and "B:pilot-mean" in shown and not at.warning
    at = app(built["plain"].path, "overview", {"compare": str(built["root"] / "no-such-folder")})
    assert "Not compared" in " ".join(w.value for w in at.warning) and "B:" not in texts(at)


def test_the_playground_says_that_runs_from_files_are_not_routed_live(built):
    from tests.test_app import app, texts

    shown = texts(app(built["runs"].path, "playground"))  # names escaped for Markdown: tfidf\-hf
    assert re.search(r"Runs read from files \S*tfidf\S* \S*tfidf\S*hf\S* are not routed here", shown), shown[-400:]
    assert "Runs read from files" not in texts(app(built["plain"].path, "playground"))


def _edit_run(folder: Path, dataset: str, system: str, doc: int) -> None:
    (part,) = (folder / "runs" / f"dataset={dataset}" / f"system={system}").glob("*.parquet")
    frame = pd.read_parquet(part)
    frame.loc[frame.index[0], "doc"] = doc
    frame.to_parquet(part, index=False)


def test_the_table_checks_take_a_run_from_a_file_as_it_is_stored_and_nothing_else(built, tmp_path):
    """A run read from a file keeps a document its corpus lacks as -1 and ranks only its own datasets: the checks
    of a damaged workspace accept exactly that, and still refuse -2, a missing partition it ranks, and the same -1
    in an encoder's run."""
    ws = built["runs"]
    assert set(ws.decision_rows(["tfidf-hf"])["chosen"]) == {"tfidf-hf"}  # a decision that chose a run
    assert not (ws.path / "runs" / "dataset=pycode" / "system=tfidf-hf").exists()
    assert len(ws.run_rows(["tfidf-hf", "tfidf"])) > 0  # tfidf-hf's absent pycode partition is not asked for
    cases = [("tfidf", -1, None), ("tfidf", -2, "document -2 is outside its corpus"),
             ("base", -1, "document -1 is outside its corpus")]
    for i, (system, doc, message) in enumerate(cases):
        folder = copy(ws, tmp_path / f"ws{i}")
        _edit_run(folder, "homefix", system, doc)
        if message is None:
            assert (Workspace(folder).run_rows([system])["doc"] == -1).sum() == 1
        else:
            with pytest.raises(WorkspaceError, match=message):
                Workspace(folder).run_rows([system])
    folder = copy(ws, tmp_path / "missing")
    shutil.rmtree(folder / "runs" / "dataset=homefix" / "system=tfidf-hf")
    with pytest.raises(WorkspaceError, match="system=tfidf-hf: is missing"):
        Workspace(folder).run_rows(["tfidf-hf"])
