"""Exports: TREC run files of any strategy and per-query CSVs (shared by the CLI and the app's downloads)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from .analysis import query_table
from .evaluation import write_trec_run
from .workspace import Workspace


def strategy_run(ws: Workspace, strategy: str, dataset: str) -> dict[str, dict[str, float]]:
    """{qid: {doc_id: score}} of a strategy on a dataset's evaluated queries (each query from its chosen run)."""
    d = ws.decisions
    rows = set(ws.eval_rows(dataset)["row"])
    sel = d[(d["strategy"] == strategy) & d["row"].isin(rows)]
    systems = {row: (f"mix:{strategy}" if chosen == "mixture" else chosen) for row, chosen in
               zip(sel["row"], sel["chosen"])}
    runs = ws.runs[ws.runs["row"].isin(rows)]
    runs = runs[[systems[r] == s for r, s in zip(runs["row"], runs["system"])]]
    doc_ids = ws.docs(dataset)["doc_id"].to_numpy()
    qids = ws.queries.set_index("row")["qid"]
    out: dict[str, dict[str, float]] = {qids[row]: {} for row in sel["row"]}
    for row, doc, score in zip(runs["row"], runs["doc"], runs["score"]):
        out[qids[row]][doc_ids[doc]] = float(score)
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
            (out / "runs" / f"{ds}.{safe_name(strategy)}.trec").write_text(trec_run_text(ws, strategy, ds))
        query_table(ws, strategy).to_csv(out / f"per_query.{safe_name(strategy)}.csv", index_label="row")
    return out
