"""Exports: TREC run files of any strategy and per-query CSVs (shared by the CLI and the app's downloads)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from .scores import points
from .analysis import (Slice, judged_split_notes, marks, query_table, significance_table, summary, summary_columns,
                       tied_best)
from .cohort import COHORT_FIELD
from .evaluation import write_trec_run
from .names import SystemName
from .workspace import Workspace

TABLE_FORMATS = ("latex", "markdown", "csv")
UP, DOWN = "▲", "▼"


def strategy_hits(ws: Workspace, strategy: str, dataset: str) -> pd.DataFrame:
    """The rows of the runs a strategy used on a dataset's evaluated queries (each query from its chosen run):
    row, rank, doc (corpus position, -1: a run file's document the corpus does not have), score."""
    rows = set(ws.eval_rows(dataset)["row"])
    sel = ws.decision_rows([strategy], rows)
    if sel.empty:  # a run read from a file, on a dataset it does not rank
        return pd.DataFrame({"row": [], "rank": [], "doc": [], "score": []})
    systems = {row: (str(SystemName.mix(strategy)) if chosen == "mixture" else chosen) for row, chosen in
               zip(sel["row"], sel["chosen"])}
    runs = ws.run_rows(sorted(set(systems.values())), rows)
    runs = runs[[systems[r] == s for r, s in zip(runs["row"], runs["system"])]]
    return runs[["row", "rank", "doc", "score"]].sort_values(["row", "rank"], kind="stable").reset_index(drop=True)


def strategy_run(ws: Workspace, strategy: str, dataset: str) -> dict[str, dict[str, float]]:
    """{qid: {doc_id: score}} of a strategy on a dataset's evaluated queries (strategy_hits). A document a run file
    named that the corpus does not have (doc -1) is written as `unknown-<rank>`."""
    hits = strategy_hits(ws, strategy, dataset)
    doc_ids = ws.docs(dataset)["doc_id"].to_numpy()
    qids = ws.queries.set_index("row")["qid"]
    decided = ws.decision_rows([strategy], ws.eval_rows(dataset)["row"])["row"]  # a query with an empty run too
    out: dict[str, dict[str, float]] = {qids[row]: {} for row in decided}
    for row, doc, score, rank in zip(hits["row"], hits["doc"], hits["score"], hits["rank"]):
        out[qids[row]][doc_ids[doc] if doc >= 0 else f"unknown-{rank}"] = float(score)
    return out


def trec_run_text(ws: Workspace, strategy: str, dataset: str) -> str:
    buffer = io.StringIO()
    write_trec_run(buffer, strategy_run(ws, strategy, dataset), strategy)
    return buffer.getvalue()


def safe_name(strategy: str) -> str:
    """A strategy name as a file name: fixed:x -> fixed_x, pilot-mean/skip-all -> pilot-mean_skip-all."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", strategy)


def export_all(ws: Workspace, out: Path) -> Path:
    """TREC runs for every strategy x dataset and one per-query CSV per strategy."""
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for strategy in ws.strategies:
        for ds in ws.datasets:
            text = trec_run_text(ws, strategy, ds)
            if text:  # a run read from a file has none on the datasets it does not rank
                (out / "runs" / f"{ds}.{safe_name(strategy)}.trec").write_text(text)
        query_table(ws, strategy).to_csv(out / f"per_query.{safe_name(strategy)}.csv", index_label="row")
    return out


# --- paper-ready tables -------------------------------------------------------------------------------------------
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX))
_MARKDOWN_RE = re.compile(r"([\\`*_{}\[\]<>|#!~$])")


def latex_escape(text: object) -> str:
    """`text` for LaTeX text mode: its special characters (\\ & % $ # _ { } ~ ^, and < > | which the default
    font encoding draws as other glyphs) as commands; line breaks as spaces."""
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], " ".join(str(text).split()))


def markdown_escape(text: object) -> str:
    """`text` for a Markdown table cell: characters that start emphasis, code, links, HTML or split the cell
    backslash-escaped; line breaks as spaces."""
    return _MARKDOWN_RE.sub(r"\\\1", " ".join(str(text).split()))


def paper_data(ws: Workspace, measure: str | None = None, reference: str | None = None, resamples: int = 2000,
               slice_by: Slice | None = None, with_marks: bool = True) -> dict:
    """What a paper table shows: `table` (strategies x datasets + average, x100 rounded to one decimal), `marks`
    {(dataset, strategy): '▲'/'▼'} (Holm-corrected paired t-test and randomization test, both p < 0.05, against
    `reference`), `best` {column: strategies tied for the best shown score among those that do not read the
    answers}, `oracles` (strategies that do), `reference`, `measure` and `slice_by`."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    raw = summary(ws, measure, slice_by=slice_by)
    oracles = [s["name"] for s in ws.manifest["strategies"] if s.get("uses_oracle")]
    real = [s for s in ws.strategies if s not in oracles]
    sig = marks(significance_table(ws, measure, reference, resamples, slice_by=slice_by)) if with_marks else {}
    return {"table": points(raw.T, measure=measure), "marks": sig, "best": tied_best(raw, real), "oracles": oracles,
            "reference": reference, "measure": measure, "slice_by": slice_by, "with_marks": with_marks,
            "zero_shot": ws.zero_shot_datasets, "notes": judged_split_notes(ws, measure)}


def _caption(d: dict, name=str, times: str = "×", p_below: str = "p < 0.05", up: str = UP, down: str = DOWN) -> str:
    """The table's caption; every name from the workspace goes through `name` (the format's escape)."""
    where = (f" Only the queries whose {name(d['slice_by'][0])} is “{name(d['slice_by'][1])}”."
             if d["slice_by"] else "")
    if d["slice_by"] and d["slice_by"][0] == COHORT_FIELD:
        where = " Only the queries of a cohort (a selection of test queries)."
    marks = (f" {up}/{down}: significantly better/worse than {name(d['reference'])} (paired t-test and paired "
             f"randomization test, both Holm-corrected across strategies, {p_below}; on the average, both over every "
             "query of every dataset, each query's difference weighted by its dataset's share so that they test "
             "the macro average)." if d["with_marks"] else "")
    oracles = ", ".join(name(o) for o in d["oracles"]) or "none"
    zero_shot = (f" Zero-shot average: over {', '.join(name(z) for z in d['zero_shot'])}, the datasets without an "
                 "expert or pilot queries." if d["zero_shot"] else "")
    return (f"{name(d['measure'])} {times}100 on the test queries of each dataset, and the macro average over "
            f"datasets.{zero_shot}{where} Bold: the best strategy per column that does not read the relevance "
            f"judgements (every one tied at the shown precision); oracles: {oracles}.{marks}"
            + "".join(" " + name(n) for n in d["notes"]))


def _cell(d: dict, strategy: str, column: str) -> tuple[str, str]:
    value = d["table"].at[strategy, column]
    return ("–" if value != value else f"{value:.1f}"), d["marks"].get((column, strategy), "")


def paper_table(ws: Workspace, measure: str | None = None, reference: str | None = None, fmt: str = "latex",
                resamples: int = 2000, slice_by: Slice | None = None, with_marks: bool = True) -> str:
    """The Overview table as LaTeX (booktabs, amssymb triangles), Markdown or CSV, with the significance marks:
    strategies as rows, datasets and the average as columns, the best real strategy per column in bold."""
    measure = ws.measure(measure)
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(TABLE_FORMATS)}")
    d = paper_data(ws, measure, reference, resamples, slice_by, with_marks)
    columns = summary_columns(ws)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["strategy", *columns, *(f"{c} mark" for c in ws.datasets), "best in"])
        for s in ws.strategies:
            cells = [_cell(d, s, c) for c in columns]
            w.writerow([s, *(v for v, _ in cells), *(m for _, m in cells[:len(ws.datasets)]),
                        " ".join(c for c in columns if s in d["best"][c])])
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| strategy | " + " | ".join(markdown_escape(c) for c in columns) + " |",
                 "|---|" + "---:|" * len(columns)]
        for s in ws.strategies:
            cells = []
            for c in columns:
                value, mark = _cell(d, s, c)
                cells.append(f"**{value}**{mark}" if s in d["best"][c] else value + mark)
            lines.append(f"| {markdown_escape(s)} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n\n" + _caption(d, markdown_escape) + "\n"
    up, down = r"\textsuperscript{$\blacktriangle$}", r"\textsuperscript{$\blacktriangledown$}"
    lines = [r"% requires \usepackage{booktabs} and \usepackage{amssymb}", r"\begin{table}[t]", r"\centering",
             r"\caption{" + _caption(d, latex_escape, r"$\times$", r"$p < 0.05$", r"$\blacktriangle$",
                                      r"$\blacktriangledown$") + "}",
             r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule",
             "Strategy & " + " & ".join(latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    for i, s in enumerate(ws.strategies):
        if i and s in d["oracles"] and ws.strategies[i - 1] not in d["oracles"]:  # the oracles apart
            lines.append(r"\midrule")
        cells = []
        for c in columns:
            value, mark = _cell(d, s, c)
            text = rf"\textbf{{{value}}}" if s in d["best"][c] else value
            cells.append(text + {UP: up, DOWN: down}.get(mark, ""))
        lines.append(latex_escape(s) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
