"""Issue 13's research views: query metadata kept by the build and sliced on, per-query wins/ties/losses, paper
tables (LaTeX, Markdown, CSV; `explorer eval --format`), and the Overview, Routing decisions and Error analysis
pages agreeing with themselves.

Every expected value is recomputed here from the workspace's stored per-query tables (never a number of the
sample): the sample data is being rewritten, so names and values are read from the workspace."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

from explorer import analysis, export, views
from explorer.cli import main
from explorer.workspace import Workspace
from tests.conftest import ROOT, write_beir
from tests.test_app import app, assert_drawn, by_label, texts, ws  # noqa: F401 - `ws`: the sample workspace

SAMPLE = ROOT / "sample_data"


def x100(v) -> str:
    return "—" if v != v else f"{100 * v:.1f}"


def eval_frame(ws) -> pd.DataFrame:
    """Per-query strategy metrics joined with each query's dataset and metadata (an independent join)."""
    q = ws.queries
    return ws.strategy_metrics.merge(q[q["role"] == "eval"], on="row")


def meta_copy(src: Path, dst: Path) -> Workspace:
    """A copy of workspace `src` whose queries carry two more metadata fields, as a build writes them: `level`
    (a number, as a string) and `source` ("" for the queries without one)."""
    shutil.copytree(src, dst)
    q = pd.read_parquet(dst / "queries.parquet")
    q = q[[c for c in q.columns if not str(c).startswith("meta:")]]
    q["meta:level"] = (q["row"] % 3).astype(str)
    q["meta:source"] = np.where(q["row"] % 4 == 0, "", np.where(q["row"] % 2 == 0, "forum", "exam"))
    q.to_parquet(dst / "queries.parquet", index=False)
    return Workspace(dst)


@pytest.fixture(scope="module")
def meta_ws(ws, tmp_path_factory):  # noqa: F811
    return meta_copy(Path(ws.path), tmp_path_factory.mktemp("meta") / "ws")


@pytest.fixture(scope="module")
def old_ws(ws, tmp_path_factory):  # noqa: F811
    """The workspace as one built before meta: columns existed."""
    dst = tmp_path_factory.mktemp("old") / "ws"
    shutil.copytree(ws.path, dst)
    q = pd.read_parquet(dst / "queries.parquet")
    q[[c for c in q.columns if not str(c).startswith("meta:")]].to_parquet(dst / "queries.parquet", index=False)
    return Workspace(dst)


# --- metadata: read, written, opened ------------------------------------------------------------------------------
def test_every_string_and_number_metadata_field_is_kept(tmp_path):
    from explorer.build import _query_set
    from explorer.config import load_config
    from explorer.data import load_beir

    corpus = [{"_id": f"d{i}", "title": "", "text": f"text {i}"} for i in range(3)]
    queries = [
        {"_id": "q1", "text": "one", "metadata": {"kind": "ambiguous", "level": 3, "source": "forum", "w": 0.5,
                                                   "bad name": "x", "tags": ["a"], "flag": True, "none": None}},
        {"_id": "q2", "text": "two", "metadata": {"source": "exam"}},
        {"_id": "q3", "text": "three"},
    ]
    folder = write_beir(tmp_path / "m", corpus, queries, {"test": [("q1", "d0", 1), ("q2", "d1", 1),
                                                                   ("q3", "d2", 1)]})
    ds = load_beir(folder)
    assert ds.query_kinds == {"q1": "ambiguous"}
    assert ds.query_metadata == {"q1": {"level": "3", "source": "forum", "w": "0.5"}, "q2": {"source": "exam"}}
    assert len(ds.warnings) == 1 and "'bad name'" in str(ds.warnings[0]) and "left out" in str(ds.warnings[0])
    # the build's query set writes them as meta:<field> string columns ("" where a query has none)
    config = tmp_path / "c.toml"
    config.write_text(f'[[datasets]]\nname = "m"\npath = "{folder}"\n[[experts]]\nname = "m"\n'
                      'sources = [{dataset = "m", source = "crops"}]\n')
    frame = _query_set(load_config(config), {"m": ds}).frame()
    evals = frame[frame["role"] == "eval"].set_index("qid")
    assert [c for c in frame.columns if c.startswith("meta:")] == ["meta:level", "meta:source", "meta:w"]
    assert evals.loc["q1", "meta:level"] == "3" and evals.loc["q2", "meta:source"] == "exam"
    assert evals.loc["q3", "meta:source"] == "" and evals.loc["q3", "kind"] == "plain"


@pytest.mark.slow
def test_a_build_writes_meta_columns_that_the_workspace_offers(tmp_path):
    """One tiny dataset and no experts (a build of about a second): its queries' metadata reach queries.parquet."""
    from explorer.build import build

    corpus = [{"_id": f"d{i}", "title": f"T{i}", "text": f"document {i} about topic {i % 3}"} for i in range(8)]
    queries = [{"_id": f"q{i}", "text": f"topic {i % 3} question {i}",
                "metadata": {"kind": ["plain", "ambiguous"][i % 2], "level": i % 3, "source": f"s{i % 2}"}}
               for i in range(6)]
    write_beir(tmp_path / "a", corpus, queries, {"test": [("q0", "d0", 1), ("q1", "d1", 1), ("q2", "d2", 2)],
                                                 "train": [("q3", "d3", 1), ("q4", "d4", 1), ("q5", "d5", 1)]})
    config = tmp_path / "tiny.toml"
    config.write_text(f'title = "tiny"\ncache_dir = "{tmp_path / "cache"}"\n[layout]\numap = false\n'
                      f'[[datasets]]\nname = "a"\npath = "{tmp_path / "a"}"\ntrain_split = "train"\n')
    w = build(config, tmp_path / "ws", echo=lambda _: None, progress=False)
    assert w.metadata_fields == ["kind", "level", "source"]
    q = w.queries.set_index("qid")
    for item in queries:
        assert q.loc[item["_id"], "kind"] == item["metadata"]["kind"]
        assert q.loc[item["_id"], "meta:level"] == str(item["metadata"]["level"])
        assert q.loc[item["_id"], "meta:source"] == item["metadata"]["source"]
    evals = {r["_id"]: r["metadata"] for r in queries[:3]}
    assert sorted(analysis.metadata_values(w, "level")["value"]) == sorted({str(m["level"]) for m in evals.values()})
    rows = analysis.slice_rows(w, "source", "s0")
    assert sorted(w.queries.loc[rows, "qid"]) == sorted(k for k, m in evals.items() if m["source"] == "s0")


def test_too_many_metadata_fields_are_left_out_with_a_warning(tmp_path):
    from explorer.data import MAX_METADATA_FIELDS, load_beir

    meta = {f"f{i}": i for i in range(MAX_METADATA_FIELDS + 3)}
    folder = write_beir(tmp_path / "m", [{"_id": "d", "text": "t"}], [{"_id": "q", "text": "x", "metadata": meta}],
                        {"test": [("q", "d", 1)]})
    ds = load_beir(folder)
    assert len(ds.query_metadata["q"]) == MAX_METADATA_FIELDS and len(ds.warnings) == 3


def test_workspace_offers_kind_and_its_meta_fields(meta_ws, old_ws):
    assert meta_ws.metadata_fields == ["kind", "level", "source"]
    assert old_ws.metadata_fields == ["kind"]  # an older workspace still opens, with kind only
    q = meta_ws.queries
    assert meta_ws.metadata("level").tolist() == q["meta:level"].tolist()
    with pytest.raises(KeyError, match="not a query metadata field"):
        meta_ws.metadata("nope")


def test_slice_rows_and_summary_on_a_slice(meta_ws):
    ev = eval_frame(meta_ws)
    for field in meta_ws.metadata_fields:
        values = analysis.metadata_values(meta_ws, field)
        assert values["queries"].sum() == len(meta_ws.eval_rows())
        column = "kind" if field == "kind" else f"meta:{field}"
        for value in values["value"]:
            rows = analysis.slice_rows(meta_ws, field, value)
            q = meta_ws.eval_rows()
            assert sorted(rows) == sorted(q.loc[q[column] == value, "row"])
        value = values["value"].iloc[-1]
        table = analysis.summary(meta_ws, "nDCG@10", slice_by=(field, value))
        part = ev[ev[column] == value]
        expected = part.groupby(["dataset", "strategy"])["nDCG@10"].mean().unstack()
        for ds in meta_ws.datasets:
            if ds in expected.index:
                assert table.loc[ds].to_numpy() == pytest.approx(expected.loc[ds, meta_ws.strategies].to_numpy())
            else:
                assert table.loc[ds].isna().all()
        assert table.loc["average"].to_numpy() == pytest.approx(
            expected[meta_ws.strategies].mean(axis=0).to_numpy())


# --- wins / ties / losses -----------------------------------------------------------------------------------------
def test_win_tie_loss_counts_each_query_against_the_reference(ws):  # noqa: F811
    reference = ws.strategies[0]
    table = analysis.win_tie_loss(ws, "nDCG@10", reference)
    assert reference not in set(table["strategy"])
    m = ws.strategy_metrics.pivot(index="row", columns="strategy", values="nDCG@10")
    datasets = ws.queries.set_index("row")["dataset"]
    for r in table.itertuples():
        rows = m.index if r.dataset == analysis.ALL_QUERIES else m.index[datasets.reindex(m.index) == r.dataset]
        diff = m.loc[rows, r.strategy] - m.loc[rows, reference]
        assert (r.wins, r.ties, r.losses) == (int((diff > 1e-9).sum()), int((diff.abs() <= 1e-9).sum()),
                                              int((diff < -1e-9).sum()))
        assert r.wins + r.ties + r.losses == r.queries == len(rows)
    # the last column sums the datasets
    per = table[table["dataset"] != analysis.ALL_QUERIES].groupby("strategy")[["wins", "ties", "losses"]].sum()
    total = table[table["dataset"] == analysis.ALL_QUERIES].set_index("strategy")[["wins", "ties", "losses"]]
    assert per.loc[total.index].equals(total)


def test_win_tie_loss_on_a_slice_counts_only_its_queries(meta_ws):
    value = analysis.metadata_values(meta_ws, "source")["value"].iloc[0]
    table = analysis.win_tie_loss(meta_ws, "nDCG@10", "base", slice_by=("source", value))
    total = table[table["dataset"] == analysis.ALL_QUERIES]
    assert (total["queries"] == len(analysis.slice_rows(meta_ws, "source", value))).all()


# --- Overview data ------------------------------------------------------------------------------------------------
def test_tied_best_bolds_every_tie_at_the_shown_precision():
    table = pd.DataFrame({"a": [0.5, 0.70001, np.nan], "b": [0.5, 0.7, np.nan], "c": [0.4, 0.9, np.nan]},
                         index=["d1", "d2", "average"])
    assert analysis.tied_best(table, ["a", "b"]) == {"d1": ["a", "b"], "d2": ["a", "b"], "average": []}
    assert analysis.tied_best(table, ["a", "b", "c"])["d2"] == ["c"]


@pytest.mark.parametrize("measure", ["nDCG@10", "RR@10"])
def test_overview_table_bold_ties_and_negative_gaps(ws, measure):  # noqa: F811
    view = views.overview_table(ws, measure, with_marks=False)
    table = view["table"]
    real = views.real_strategies(ws)
    lines = view["markdown"].splitlines()
    for j, col in enumerate(table.index):
        shown = (100 * table.loc[col, real]).round(1)
        assert sorted(view["best"][col]) == sorted(shown.index[shown == shown.max()])
        for s in ws.strategies:
            cell = next(line for line in lines if line.startswith(f"| `{s}` ")).split(" | ")[j + 1]  # ◆: reference
            assert cell.startswith("**") == (s in view["best"][col]), (col, s, cell)
    oracle = views.instance_oracle(ws)
    gap = {c: table.loc[c, oracle] - table.loc[c, view["best"][c][0]] for c in table.index}
    assert view["negative_gap"] == [c for c in table.index if round(100 * gap[c], 1) < 0]
    gap_cells = lines[-1].strip("| ").split(" | ")[1:]
    assert [c.endswith("†") for c in gap_cells] == [c in view["negative_gap"] for c in table.index]


# --- paper tables -------------------------------------------------------------------------------------------------
def test_latex_escape_every_special_character():
    assert export.latex_escape(r"a_b%c&d#e$f{g}h~i^j\k") == (
        r"a\_b\%c\&d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k")
    assert export.markdown_escape("a|b*c_d") == r"a\|b\*c\_d"


def renamed_copy(src: Path, dst: Path, old: str, new: str) -> Workspace:
    """A copy of the workspace with strategy `old` renamed `new` in the manifest and the tables."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for s in manifest["strategies"]:
        s["name"] = new if s["name"] == old else s["name"]
    (dst / "manifest.json").write_text(json.dumps(manifest))
    for table in ("decisions", "strategy_metrics"):  # partitioned by dataset and strategy (format 2)
        for part in (dst / table).glob(f"dataset=*/strategy={quote(old, safe='')}"):
            part.rename(part.with_name(f"strategy={quote(new, safe='')}"))
    return Workspace(dst)


def test_paper_tables_carry_the_values_bold_ties_and_holm_marks(ws, tmp_path):  # noqa: F811
    renamed = views.default_strategy(ws)
    w = renamed_copy(Path(ws.path), tmp_path / "ws", renamed, renamed.replace("-", "_") + "_x")
    name = renamed.replace("-", "_") + "_x"
    reference = w.strategies[0]
    table = analysis.summary(w, "nDCG@10")
    marks = analysis.marks(analysis.significance_table(w, "nDCG@10", reference))
    best = analysis.tied_best(table, views.real_strategies(w))
    columns = [*w.datasets, analysis.AVERAGE]
    # CSV: the numbers, the marks and the best, read back
    csv = pd.read_csv(io.StringIO(export.paper_table(w, "nDCG@10", reference, "csv")), index_col="strategy",
                      keep_default_na=False)
    for s in w.strategies:
        for c in columns:
            assert csv.loc[s, c] == pytest.approx(round(100 * table.loc[c, s], 1))
        for c in w.datasets:
            assert csv.loc[s, f"{c} mark"] == marks.get((c, s), "")
        assert csv.loc[s, "best in"].split() == [c for c in columns if s in best[c]]
    # LaTeX: one row per strategy, names escaped, \textbf exactly on the best, triangles exactly on the marks
    latex = export.paper_table(w, "nDCG@10", reference, "latex")
    assert name not in latex and export.latex_escape(name) in latex and r"\_x" in latex
    rows = {line.split(" & ")[0]: line.rstrip(" \\").split(" & ")[1:] for line in latex.splitlines()
            if " & " in line and not line.startswith("Strategy")}
    assert list(rows) == [export.latex_escape(s) for s in w.strategies]
    for s in w.strategies:
        for c, cell in zip(columns, rows[export.latex_escape(s)]):
            assert cell.startswith(r"\textbf{") == (s in best[c])
            assert ("blacktriangle$" in cell) == (marks.get((c, s)) == "▲")
            assert ("blacktriangledown" in cell) == (marks.get((c, s)) == "▼")
    assert latex.count(r"\begin{tabular}") == 1 and "Holm" in latex and "randomization" in latex
    # Markdown: a table row per strategy and the caption
    md = export.paper_table(w, "nDCG@10", reference, "markdown")
    body = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| strategy")]
    assert [line.split(" | ")[0][2:] for line in body] == [export.markdown_escape(s) for s in w.strategies]
    assert "paired t-test and paired randomization test" in md


def test_cli_eval_formats(ws, capsys):  # noqa: F811
    for fmt in ("latex", "markdown", "csv"):
        assert main(["eval", str(ws.path), "--format", fmt, "--resamples", "500"]) == 0
        assert capsys.readouterr().out == export.paper_table(ws, "nDCG@10", None, fmt, 500)
    assert main(["eval", str(ws.path), "--resamples", "500"]) == 0  # the text table stays the default
    out = capsys.readouterr().out
    assert out.startswith("nDCG@10 x100") and "\\begin" not in out and "|" not in out
    field = ws.metadata_fields[0]
    value = analysis.metadata_values(ws, field)["value"].iloc[-1]
    assert main(["eval", str(ws.path), "--format", "csv", "--slice", f"{field}={value}", "--resamples", "500"]) == 0
    assert capsys.readouterr().out == export.paper_table(ws, "nDCG@10", None, "csv", 500, slice_by=(field, value))
    assert main(["eval", str(ws.path), "--slice", f"{field}=no-such-value"]) == 2
    assert "--slice value" in capsys.readouterr().err
    assert main(["eval", str(ws.path), "--slice", "nofield"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


# --- Routing decisions data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("skip", [False, True])
def test_decisions_view_uses_one_query_set(ws, skip):  # noqa: F811
    ddr = [s for s in ws.strategies if ws.strategy_info(s).get("family") == "DDR"]
    for strategy in ["base", views.default_strategy(ws), *ddr[:1]]:
        v = views.decisions_view(ws, strategy, skip)
        qt = analysis.query_table(ws, strategy)
        kept = qt[~qt["all_tie"]] if skip else qt
        assert list(v["queries"].index) == list(kept.index)
        assert v["left_out"] == (int(qt["all_tie"].sum()) if skip else 0)
        assert v["confusion"].to_numpy().sum() == len(kept)
        assert v["pairs"]["queries"].sum() == int((~kept["correct"]).sum())
        if strategy == "base":  # base is not among its own choices: every one of its queries is a mistake
            assert "base" not in analysis.choice_set(ws, "base")
            assert v["pairs"]["queries"].sum() == v["confusion"].to_numpy().sum()
        report = v["report"]
        counts = kept.groupby("dataset").size().reindex(ws.datasets, fill_value=0)
        assert report.loc[ws.datasets, "queries"].tolist() == counts.tolist()
        assert report.loc["average", "queries"] == len(kept)
        assert report.loc["average", "accuracy"] == pytest.approx(report.loc[ws.datasets, "accuracy"].mean())
        acc = kept.groupby("dataset")["correct"].mean()
        assert report.loc[acc.index, "accuracy"].to_numpy() == pytest.approx(acc.to_numpy())
        # the oracle heatmap: over the strategy's own choice set, each query's share split among its tied best
        experts = analysis.choice_set(ws, strategy)
        assert list(v["oracle_shares"].columns) == experts
        has = counts[counts > 0].index
        assert v["oracle_shares"].loc[has].sum(axis=1).to_numpy() == pytest.approx(1.0)
        scores = ws.metrics[ws.metrics["system"].isin(experts)].pivot(index="row", columns="system",
                                                                       values="nDCG@10").loc[kept.index, experts]
        best = scores.eq(scores.max(axis=1), axis=0)
        share = best.div(best.sum(axis=1), axis=0).groupby(kept["dataset"]).mean()
        assert v["oracle_shares"].loc[share.index].to_numpy() == pytest.approx(share.to_numpy())
        selected = v["shares"].loc[has].sum(axis=1).to_numpy()
        assert selected == pytest.approx(1.0)
    if ddr:
        prefixes = [e["name"] for e in ws.experts if e["kind"] == "prefix" and not e["multi_task"]]
        assert analysis.choice_set(ws, ddr[0]) == prefixes


# --- AppTests -----------------------------------------------------------------------------------------------------
def test_overview_significance_toggle_slice_and_wtl_in_the_url(meta_ws):
    at = app(meta_ws.path, params={"measure": "nDCG@10"})
    table_md = next(m.value for m in at.markdown if m.value.startswith("| strategy") and "gap:" in m.value)
    assert "paired t-test and a paired randomization test" in texts(at) and "Holm" in texts(at)
    marks = analysis.marks(analysis.significance_table(meta_ws, "nDCG@10"))
    assert sum(table_md.count(m) for m in "▲▼") == len(marks)
    # wins / ties / losses against the reference, beside the marks
    wtl = analysis.win_tie_loss(meta_ws, "nDCG@10", "base")
    wtl_md = next(m.value for m in at.markdown if analysis.ALL_QUERIES in m.value)
    r = wtl[(wtl["dataset"] == analysis.ALL_QUERIES)].iloc[0]
    row = next(line for line in wtl_md.splitlines() if line.startswith(f"| `{r.strategy}` |"))
    assert row.endswith(f"| {r.wins} / {r.ties} / {r.losses} |")
    # the significance toggle lives in the URL
    at.toggle(key="w_overview_sig").set_value(False).run()
    assert_drawn(at)
    assert at.query_params["sig"] == "0"
    table_md = next(m.value for m in at.markdown if m.value.startswith("| strategy") and "gap:" in m.value)
    assert "▲" not in table_md and "▼" not in table_md
    reopened = app(meta_ws.path, params={"sig": "0"})
    assert reopened.toggle(key="w_overview_sig").value is False
    # the chart's strategies live in the URL
    chart = [meta_ws.strategies[0], meta_ws.strategies[-1]]
    by_label(at.multiselect, "Strategies in the chart").set_value(chart).run()
    assert listed(at.query_params["cols"]) == chart
    # a slice by a meta: field recomputes the table (the base row equals the summary on that slice)
    by_label(at.selectbox, "Slice by query metadata").set_value("source").run()
    from explorer.ui.overview import NO_VALUE

    values = list(analysis.metadata_values(meta_ws, "source")["value"])
    assert "" in values  # a quarter of the queries have no source: that slice too opens from a link
    value = values[-1]
    shown = NO_VALUE if value == "" else value
    at.selectbox(key="w_overview_slice_value").set_value(shown).run()
    assert_drawn(at)
    assert at.query_params["slice"] == "source" and at.query_params["slice_value"] == shown
    sliced = analysis.summary(meta_ws, "nDCG@10", slice_by=("source", value))
    table_md = next(m.value for m in at.markdown if m.value.startswith("| strategy") and "gap:" in m.value)
    base_row = next(line for line in table_md.splitlines() if line.startswith("| `base` "))  # ◆: reference
    cells = base_row.strip().strip("|").split(" | ")[1:]
    assert [c.replace("**", "").strip().rstrip("▲▼") for c in cells] == [x100(sliced.loc[c, "base"]) for c in sliced.index]
    n = len(analysis.slice_rows(meta_ws, "source", value))
    assert f"{n} of {len(meta_ws.eval_rows())} test queries" in texts(at)
    for other in values:
        link = NO_VALUE if other == "" else other
        reopened = app(meta_ws.path, params={"slice": "source", "slice_value": link})
        assert reopened.selectbox(key="w_overview_slice_value").value == link
        n = len(analysis.slice_rows(meta_ws, "source", other))
        assert f"{n} of {len(meta_ws.eval_rows())} test queries" in texts(reopened)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Table for a paper (LaTeX)" in labels and "Table for a paper (Markdown)" in labels


def test_overview_of_an_older_workspace_offers_kind_only(old_ws):
    at = app(old_ws.path)
    assert by_label(at.selectbox, "Slice by query metadata").options == ["all test queries", "kind"]


def listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def plotly_array(value) -> np.ndarray:
    """A data array of a Plotly figure's JSON: a list, or a typed array ({dtype, bdata (base64), shape})."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            array = array.reshape([int(n) for n in str(shape).split(",")])
        return array.astype(float)
    return np.array(value, dtype=float)


def pairs_total_and_matrix_total(at) -> tuple[int, int]:
    pairs = next(d.value for d in at.dataframe if "example" in d.value.columns)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    conf = next(s for s in specs if "oracle expert" in json.dumps(s["layout"].get("yaxis", {})))
    return int(pairs["queries"].sum()), int(np.nansum(plotly_array(conf["data"][0]["z"])))


def test_decisions_page_filter_applies_to_the_whole_page(ws):  # noqa: F811
    at = app(ws.path, "decisions", params={"strategy": "base", "skip_ties": "1"})
    assert by_label(at.checkbox, "Leave out queries where every expert ties").value
    view = views.decisions_view(ws, "base", True)
    total, matrix = pairs_total_and_matrix_total(at)
    assert "base" not in analysis.choice_set(ws, "base")
    assert total == matrix == len(view["queries"])
    report = at.dataframe[0].value
    assert "every expert ties %" not in report.columns  # none is left to count
    assert report.loc["average", "queries"] == len(view["queries"])
    assert report.loc[ws.datasets, "queries"].sum() == len(view["queries"])
    assert f"{len(view['queries'])} test queries ({view['left_out']} where every expert ties left out)" in texts(at)
    by_label(at.checkbox, "Leave out queries where every expert ties").uncheck().run()
    assert_drawn(at)
    total, matrix = pairs_total_and_matrix_total(at)
    assert matrix == len(ws.eval_rows())
    # DDR is compared with the oracle over its own prefix modules
    ddr = [s for s in ws.strategies if ws.strategy_info(s).get("family") == "DDR"]
    if ddr:
        by_label(at.selectbox, "Strategy").set_value(ddr[0]).run()
        assert_drawn(at)
        specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        oracle = next(s for s in specs if "instance oracle" in json.dumps(s["layout"].get("title", {})))
        assert oracle["data"][0]["x"] == analysis.choice_set(ws, ddr[0])
        assert all(s["layout"]["xaxis"].get("automargin") for s in specs[:2])


def test_errors_sort_keys_first_kind_filter_download_and_negative_margin(meta_ws):
    at = app(meta_ws.path, "errors", params={"strategy": "pilot-mean"})
    shown = at.dataframe[0].value
    # the sort keys and the scores first, then dataset, routed expert and margin: no sideways scrolling at 1400 px
    assert list(shown.columns[:10]) == ["row", "text", "regret", "delta_base", "routed_score", "oracle_score",
                                        "base_score", "dataset", "routed", "margin"]
    assert {"meta:level", "meta:source"} <= set(shown.columns)
    qt = analysis.query_table(meta_ws, "pilot-mean")
    kind = analysis.metadata_values(meta_ws, "kind")["value"].iloc[-1]
    at.multiselect(key="w_errors_kind").set_value([kind]).run()
    assert listed(at.query_params["kind"]) == [kind]
    assert len(at.dataframe[0].value) == int((qt["kind"] == kind).sum())
    assert set(at.dataframe[0].value["kind"]) == {kind}
    level = analysis.metadata_values(meta_ws, "level")["value"].iloc[0]
    at.multiselect(key="w_errors_meta_level").set_value([level]).run()
    keep = (qt["kind"] == kind) & (meta_ws.metadata("level").to_numpy()[qt.index] == level)
    assert len(at.dataframe[0].value) == int(keep.sum()) if keep.any() else "No query matches" in texts(at)
    if keep.any():
        label = at.get("download_button")[0].proto.label
        assert label == f"Download these {int(keep.sum())} queries (CSV)"
    # a margin is never negative: the widget's minimum is 0, and a link's negative one is said and not used
    at = app(meta_ws.path, "errors", params={"strategy": "pilot-mean", "use_margin": "1", "margin": "-0.1"})
    assert "margin = '-0.1' is outside 0.0 to 1000000.0" in "\n".join(w.value for w in at.warning).replace("\\", "")
    assert by_label(at.number_input, "margin below x").proto.min == 0
    assert len(at.dataframe[0].value) == int((qt["margin"] < 0.05).sum())  # the default margin, 0.05
    by_label(at.number_input, "margin below x").set_value(0.02).run()
    assert not at.error and len(at.dataframe[0].value) == int((qt["margin"] < 0.02).sum())


def test_hostile_metadata_values_are_drawn_as_text(ws, tmp_path):  # noqa: F811
    from tests.test_hostile_app import HOSTILE, assert_inert

    dst = tmp_path / "ws"
    shutil.copytree(ws.path, dst)
    q = pd.read_parquet(dst / "queries.parquet")
    q.loc[q["row"] % 5 == 0, "kind"] = HOSTILE
    q["meta:note"] = np.where(q["row"] % 2 == 0, HOSTILE, "fine")
    q.to_parquet(dst / "queries.parquet", index=False)
    w = Workspace(dst)
    at = app(w.path, params={"slice": "kind", "slice_value": HOSTILE})
    assert_inert(at)
    assert at.selectbox(key="w_overview_slice_value").value == HOSTILE
    n = len(analysis.slice_rows(w, "kind", HOSTILE))
    assert n and f"{n} of {len(w.eval_rows())} test queries" in texts(at)
    at = app(w.path, "errors", params={"kind": HOSTILE, "meta_note": HOSTILE})
    assert_inert(at)
    assert set(at.dataframe[0].value["kind"]) == {HOSTILE} and set(at.dataframe[0].value["meta:note"]) == {HOSTILE}
    for fmt, escape in (("latex", export.latex_escape), ("markdown", export.markdown_escape)):
        text = export.paper_table(w, "nDCG@10", None, fmt, 200, slice_by=("kind", HOSTILE))
        assert escape(HOSTILE) in text and HOSTILE not in text


def test_the_stored_significance_is_the_computed_one(ws):  # noqa: F811
    """The build stores every measure's significance table against its reference; reading it gives exactly what
    computing it gives, and anything not stored (another reference, a slice) is computed."""
    reference = ws.manifest["reference"]
    for measure in ws.measures:
        stored = ws.stored_significance(measure, reference, analysis.SIGNIFICANCE_RESAMPLES)
        # one row per dataset and strategy, and the average column's (issue 27)
        assert stored is not None and len(stored) == (len(ws.datasets) + 1) * (len(ws.strategies) - 1)
        pd.testing.assert_frame_equal(stored, analysis.compute_significance(ws, measure, reference))
        pd.testing.assert_frame_equal(analysis.significance_table(ws, measure), stored)
    assert ws.stored_significance(ws.label_measure, "pilot-mean", analysis.SIGNIFICANCE_RESAMPLES) is None
    other = analysis.significance_table(ws, reference="pilot-mean")
    assert set(other["system"]) == set(ws.strategies) - {"pilot-mean"}
    assert "stages" in ws.manifest and "significance" in ws.manifest["stages"]


def test_a_page_reads_only_the_partitions_it_shows(ws, tmp_path):  # noqa: F811
    """The per-query tables are partitioned by dataset and system (format 2): one query's run under one encoder
    needs one partition, so a copy holding only that partition gives the same rows as the whole table."""
    whole = ws.runs
    row = int(ws.eval_rows(ws.datasets[1])["row"].iloc[3])
    dataset = ws.queries.iloc[row]["dataset"]
    copy = tmp_path / "ws"
    shutil.copytree(ws.path, copy)
    for part in (copy / "runs").glob("dataset=*/system=*"):
        if part != copy / "runs" / f"dataset={dataset}" / "system=base":
            shutil.rmtree(part)
    fresh = Workspace(copy)
    one = fresh.run_rows(["base"], [row])
    assert "runs" not in fresh.__dict__
    expected = whole[(whole["system"] == "base") & (whole["row"] == row)]
    assert len(one) == len(expected) > 0
    assert one[["rank", "doc", "score"]].to_numpy().tolist() == expected[["rank", "doc", "score"]].to_numpy().tolist()
    rows = ws.eval_rows(ws.datasets[1])["row"].tolist()
    systems = [ws.encoders[1], ws.encoders[2]]
    many = Workspace(ws.path).run_rows(systems, rows)
    expected = whole[whole["system"].isin(systems) & whole["row"].isin(rows)]
    assert many[["system", "row", "rank", "doc"]].to_numpy().tolist() == expected[
        ["system", "row", "rank", "doc"]].to_numpy().tolist()
    assert len(fresh.run_rows(systems, [])) == 0
    # the layout is plain hive partitioning: pyarrow opens the folder as one table, the system names decoded
    import pyarrow.dataset as pds

    table = pds.dataset(Path(ws.path) / "runs", format="parquet", partitioning="hive").to_table().to_pandas()
    assert set(table["system"].astype(str)) == set(whole["system"]) and len(table) == len(whole)


def as_format_1(src: Path, dst: Path) -> Path:
    """A copy of a format-2 workspace in format 1's layout: each per-query table one Parquet file."""
    ws = Workspace(src)
    shutil.copytree(src, dst)
    for name, frame in (("runs", ws.runs), ("metrics", ws.metrics), ("decisions", ws.decisions),
                        ("strategy_metrics", ws.strategy_metrics)):
        shutil.rmtree(dst / name)
        frame.to_parquet(dst / f"{name}.parquet", index=False)
    manifest = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    return dst


def test_a_format_1_workspace_still_opens_and_shows_the_same(ws, tmp_path):  # noqa: F811
    """Older workspaces keep their single-file tables: every page's data is the same from either layout."""
    from explorer.pages import PAGES, page_data

    old = Workspace(as_format_1(Path(ws.path), tmp_path / "v1"))
    new = Workspace(ws.path)
    assert not old.partitioned and new.partitioned
    for name in ("runs", "metrics", "decisions", "strategy_metrics"):
        pd.testing.assert_frame_equal(getattr(old, name), getattr(new, name))
    row = int(new.eval_rows()["row"].iloc[5])
    pd.testing.assert_frame_equal(old.run_rows(new.encoders[:2], [row]).reset_index(drop=True),
                                  new.run_rows(new.encoders[:2], [row]).reset_index(drop=True))
    for key in PAGES:
        assert json.dumps(page_data(key, old), sort_keys=True) == json.dumps(page_data(key, new), sort_keys=True), key
