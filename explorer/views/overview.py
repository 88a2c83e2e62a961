"""The Overview page's data: the score table with significance marks, win/tie/loss, the sliced bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import AVERAGE, ZERO_SHOT_AVERAGE, judged_split_notes, metadata_values, summary
from ..ui.safe import code, md
from ..workspace import Workspace
from .base import NO_VALUE, Page, UrlParam, register_page
from .common import COMPARE, MEASURE, REFERENCE, STRATEGY, instance_oracle, points, real_strategies, x100
from .mixing import group_counts, grouped_strategies, strategy_groups


def overview_table(ws: Workspace, measure: str, reference: str | None = None, with_marks: bool = True,
                   slice_by: tuple[str, str] | None = None, resamples: int = 2000,
                   groups: tuple[str, ...] | None = None) -> dict:
    """The Overview: the dataset x strategy table (on a slice of the queries if given) with every real strategy
    tied for best in bold (at the shown precision), the significance marks, the instance-oracle gap (negative
    where the oracle, which picks each query's expert by the label measure, scores below a real strategy under `measure`:
    marked †), the number of queries per column, and its Markdown (names escaped). Keys: table, best, gap,
    negative_gap, queries, marks, markdown. Rows of the Markdown come group by group (choose, mix,
    post-retrieval, lexical, fixed, oracle: views.mixing.GROUP_ORDER), only those of `groups` when given; bold,
    the gap and the marks stay those of the whole table."""
    from ..analysis import marks as sig_marks
    from ..analysis import significance_table, slice_rows, tied_best

    table = summary(ws, measure, slice_by=slice_by)  # rows datasets (+ average), columns strategies
    reference = reference or ws.manifest.get("reference", "base")
    marks = sig_marks(significance_table(ws, measure, reference, resamples, slice_by=slice_by)) if with_marks else {}
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
    for s in grouped_strategies(ws, groups):
        cells = [code(s)]
        for col in table.index:
            text = x100(table.loc[col, s], measure=measure) + marks.get((col, s), "")
            cells.append(f"**{text}**" if s in best[col] else text)
        lines.append("| " + " | ".join(cells) + " |")
    if oracle:
        lines.append("| *gap: " + md(oracle) + " − best* | " + " | ".join(
            x100(gap[c], measure=measure) + (" †" if c in negative else "") for c in table.index) + " |")
    return {"table": table, "best": best, "gap": gap, "negative_gap": negative, "queries": queries, "marks": marks,
            "reference": reference, "markdown": "\n".join(lines)}


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
    rows = [{"dataset": d, "strategy": s, "score": points(t.loc[d, s], None, measure), "description": desc.get(s, "")}
            for d in t.index for s in strategies if s in t.columns]
    return pd.DataFrame(rows, columns=["dataset", "strategy", "score", "description"])


def sliced_overview_csv(ws: Workspace, measure: str, slice_by: tuple[str, str] | None = None) -> str:
    t = points(summary(ws, measure, slice_by=slice_by).T, None, measure)
    t.index.name = "strategy"
    return t.round(1).to_csv()


# --- the page -------------------------------------------------------------------------------------------------
NO_SLICE = ""  # the slice selector's "all test queries"
BAR_DEFAULTS = ("base", "multi-task", "dataset-router", "pilot-mean", "pilot-nearest", "prototype-merge",
                "dataset-oracle", "instance-oracle")


def _slice_values(ws: Workspace, values: dict) -> list[str]:
    field = values.get("slice")
    if not field:
        return []
    return [NO_VALUE if v == "" else v for v in metadata_values(ws, field)["value"]]


SLICE = UrlParam("slice", choices=lambda ws, v: [NO_SLICE, *ws.metadata_fields], default=NO_SLICE,
                 doc="a query metadata field to slice the table by (none: every test query)")
SLICE_VALUE = UrlParam("slice_value", choices=_slice_values, doc="the value of the slice field",
                       default=lambda ws, v: (_slice_values(ws, v) or [None])[0])
SIG = UrlParam("sig", "bool", default=True, doc="draw the significance marks")
GROUPS = UrlParam("groups", "multi", lambda ws, v: list(group_counts(ws)), lambda ws, v: list(group_counts(ws)),
                  "the strategy groups the table lists (choose, mix, post-retrieval, lexical, fixed, oracle)")
COLS = UrlParam("cols", "multi", lambda ws, v: ws.strategies, doc="the strategies in the bar chart",
                default=lambda ws, v: [s for s in BAR_DEFAULTS if s in ws.strategies])


def slice_of(values: dict) -> tuple[str, str] | None:
    """The (field, value) slice the parameters name, or None (every test query)."""
    if not values.get("slice") or values.get("slice_value") is None:
        return None
    value = values["slice_value"]
    return values["slice"], "" if value == NO_VALUE else value


def data(ws: Workspace, v: dict) -> dict:
    """The Overview: the table and its notes, wins / ties / losses, the bars, and the downloads' tables."""
    from ..export import paper_table

    measure, reference, cut = v["measure"], v["reference"], slice_of(v)
    view = overview_table(ws, measure, reference, v["sig"], cut, groups=tuple(v["groups"]) or None)
    paper = {f"paper_{fmt}": paper_table(ws, measure, reference, fmt, slice_by=cut, with_marks=v["sig"])
             for fmt in ("latex", "markdown")}
    return {"measure": measure, "reference": view["reference"], "slice": cut, "groups": strategy_groups(ws),
            "table": points(view["table"], measure=measure), "best": view["best"], "marks": view["marks"],
            "oracle_gap": points(view["gap"], measure=measure),
            "negative_gap": view["negative_gap"], "queries": view["queries"], "markdown": view["markdown"],
            "judged_notes": judged_split_notes(ws, measure), "zero_shot": ws.zero_shot_datasets,
            "win_tie_loss": win_tie_loss_table(ws, measure, reference, cut),
            "bars": sliced_bar_frame(ws, measure, list(v["cols"]), cut).dropna(subset=["score"]),
            "csv": sliced_overview_csv(ws, measure, cut), **paper}


PAGE = register_page(Page(
    "overview", "Overview", ":material/table_chart:", "explorer/ui/overview.py", data,
    (COMPARE, MEASURE, REFERENCE, SIG, SLICE, SLICE_VALUE, GROUPS, COLS, STRATEGY), default=True, compares=True,
    caption="Mean per-query score of every routing strategy on every dataset, significance against a reference, "
            "per-query wins / ties / losses, the oracle gap, a slice by query metadata, and downloads.", order=10))
