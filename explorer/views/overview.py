"""The Overview page's data: the score table with significance marks, win/tie/loss, the sliced bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import AVERAGE, ZERO_SHOT_AVERAGE, summary
from ..reviewer_stats import saturated
from ..ui.safe import code, md
from ..workspace import Workspace
from .common import instance_oracle, real_strategies, x100

REFERENCE_MARK = "◆"  # beside the reference strategy's name in the Overview table


def overview_table(ws: Workspace, measure: str, reference: str | None = None, with_marks: bool = True,
                   slice_by: tuple[str, str] | None = None, resamples: int = 2000, sig: pd.DataFrame | None = None
                   ) -> dict:
    """The Overview: the dataset x strategy table (on a slice of the queries if given) with every real strategy
    tied for best in bold (at the shown precision), the significance marks, the instance-oracle gap (negative
    where the oracle, which picks each query's expert by the label measure, scores below a real strategy under `measure`:
    marked †), the number of queries per column, and its Markdown (names escaped). Keys: table, best, gap,
    negative_gap, queries, marks, markdown."""
    from ..analysis import marks as sig_marks
    from ..analysis import significance_table, slice_rows, tied_best

    table = summary(ws, measure, slice_by=slice_by)  # rows datasets (+ average), columns strategies
    reference = reference or ws.manifest.get("reference", "base")
    if with_marks and sig is None:  # `sig`: the significance_table of these arguments, when the caller has it
        sig = significance_table(ws, measure, reference, resamples, slice_by=slice_by)
    marks = sig_marks(sig) if with_marks else {}
    real = [s for s in real_strategies(ws) if s in table.columns]
    best = tied_best(table, real)
    oracle = instance_oracle(ws)
    gap = pd.Series({col: (table.loc[col, oracle] - table.loc[col, best[col][0]]) if oracle and best[col]
                     else np.nan for col in table.index})
    negative = [c for c in table.index if gap[c] == gap[c] and round(100 * gap[c], 1) < 0]
    rows = ws.eval_rows() if not slice_by else ws.eval_rows()[ws.eval_rows()["row"].isin(slice_rows(ws, *slice_by))]
    counts = rows.groupby("dataset").size().reindex(ws.datasets, fill_value=0)
    queries = {**{d: int(counts[d]) for d in ws.datasets}, AVERAGE: int(counts.sum())}
    if ZERO_SHOT_AVERAGE in table.index:
        queries[ZERO_SHOT_AVERAGE] = int(counts[ws.zero_shot_datasets].sum())
    header = ["strategy", *(md(c) for c in table.index)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in table.columns:
        cells = [code(s) + (f" {REFERENCE_MARK} *reference*" if s == reference else "")]
        for col in table.index:
            text = x100(table.loc[col, s]) + marks.get((col, s), "")
            cells.append(f"**{text}**" if s in best[col] else text)
        lines.append("| " + " | ".join(cells) + " |")
    if oracle:
        lines.append("| *gap: " + md(oracle) + " − best* | " + " | ".join(
            x100(gap[c]) + (" †" if c in negative else "") for c in table.index) + " |")
    return {"table": table, "best": best, "gap": gap, "negative_gap": negative, "queries": queries, "marks": marks,
            "reference": reference, "saturated": saturated(table), "markdown": "\n".join(lines)}


def saturation_note(view: dict, measure: str) -> str:
    """Why columns where every strategy shows the same score cannot separate them ("" when none do); plain text."""
    same = view["saturated"]
    if not same:
        return ""
    ceiling = [c for c, v in same.items() if v == 100.0]
    other = [c for c in same if c not in ceiling]
    parts = []
    if ceiling:
        parts.append(f"every strategy scores 100.0 on {', '.join(ceiling)}: {measure} is saturated there (each "
                     "finds every judged-relevant document its measure counts, e.g. all of them within the top 100 "
                     "for R@100)")
    if other:
        parts.append(f"every strategy scores the same on {', '.join(f'{c} ({same[c]:.1f})' for c in other)}")
    return ("; ".join(parts) + ". Such a column cannot tell the strategies apart, so no test there can be "
            "significant: compare them with a measure that is not saturated (nDCG@10, AP).")


def win_tie_loss_table(ws: Workspace, measure: str, reference: str | None = None,
                       slice_by: tuple[str, str] | None = None) -> dict:
    """Per-query wins / ties / losses of every strategy against `reference` (analysis.win_tie_loss), as a wide
    frame (strategies x datasets + all queries, cells 'W / T / L') and as Markdown (names escaped)."""
    from ..analysis import ALL_QUERIES, win_tie_loss

    long = win_tie_loss(ws, measure, reference, slice_by=slice_by)
    cols = [*ws.datasets, ALL_QUERIES]
    long = long.assign(cell=[f"{w} / {t} / {lo}" for w, t, lo in zip(long["wins"], long["ties"], long["losses"])])
    wide = long.pivot(index="strategy", columns="dataset", values="cell").reindex(
        index=[s for s in ws.strategies if s in set(long["strategy"])], columns=cols)
    header = ["strategy", *(md(c) for c in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s, r in wide.iterrows():
        lines.append("| " + " | ".join([code(s), *(str(r[c]) for c in cols)]) + " |")
    return {"long": long.drop(columns="cell"), "wide": wide, "markdown": "\n".join(lines)}


def sliced_bar_frame(ws: Workspace, measure: str, strategies: list[str], slice_by: tuple[str, str] | None = None
                     ) -> pd.DataFrame:
    """bar_frame on a slice of the queries: dataset, strategy, score (x100), description."""
    t = summary(ws, measure, slice_by=slice_by)
    desc = {s["name"]: s.get("description", "") for s in ws.manifest["strategies"]}
    rows = [{"dataset": d, "strategy": s, "score": 100 * t.loc[d, s], "description": desc.get(s, "")}
            for d in t.index for s in strategies if s in t.columns]
    return pd.DataFrame(rows, columns=["dataset", "strategy", "score", "description"])


def sliced_overview_csv(ws: Workspace, measure: str, slice_by: tuple[str, str] | None = None) -> str:
    t = summary(ws, measure, slice_by=slice_by).T * 100
    t.index.name = "strategy"
    return t.round(1).to_csv()
