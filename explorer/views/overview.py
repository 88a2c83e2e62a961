"""The Overview page's data: the score table with significance marks, win/tie/loss, the sliced bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import AVERAGE, ZERO_SHOT_AVERAGE, judged_split_notes, metadata_values, summary
from ..reviewer_stats import saturated
from ..ui.safe import code, md
from ..workspace import Workspace
from .base import NO_VALUE, Page, UrlParam, register_page
from .common import (COHORT, COHORT_NAME, COMPARE, MEASURE, REFERENCE, STRATEGY, cohort_info, default_strategy,
                     instance_oracle, points, real_strategies, x100)
from .mixing import group_counts, grouped_strategies, strategy_groups

REFERENCE_MARK = "◆"  # beside the reference strategy's name in the Overview table


def overview_table(ws: Workspace, measure: str, reference: str | None = None, with_marks: bool = True,
                   slice_by: tuple[str, str] | None = None, resamples: int = 2000,
                   groups: tuple[str, ...] | None = None, sig: pd.DataFrame | None = None) -> dict:
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
    for s in grouped_strategies(ws, groups):
        cells = [code(s) + (f" {REFERENCE_MARK} *reference*" if s == reference else "")]
        for col in table.index:
            text = x100(table.loc[col, s], measure=measure) + marks.get((col, s), "")
            cells.append(f"**{text}**" if s in best[col] else text)
        lines.append("| " + " | ".join(cells) + " |")
    if oracle:
        lines.append("| *gap: " + md(oracle) + " − best* | " + " | ".join(
            x100(gap[c], measure=measure) + (" †" if c in negative else "") for c in table.index) + " |")
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
    """The Overview: the table and its notes, the per-cell statistics, wins / ties / losses, one strategy's
    per-query difference to the reference (`vs`), the bars, and the downloads' tables. A cohort replaces the
    metadata slice (the page computes everything on its queries)."""
    from ..analysis import significance_table
    from ..cohort import COHORT_FIELD
    from ..export import paper_table

    measure, reference, cohort = v["measure"], v["reference"], cohort_info(ws, v)
    cut = (COHORT_FIELD, cohort["text"]) if cohort else slice_of(v)
    sig = significance_table(ws, measure, reference, slice_by=cut)  # once, for the marks and the statistics
    view = overview_table(ws, measure, reference, v["sig"], cut, groups=tuple(v["groups"]) or None, sig=sig)
    paper = {f"paper_{fmt}": paper_table(ws, measure, reference, fmt, slice_by=cut, with_marks=v["sig"])
             for fmt in ("latex", "markdown")}
    return {"measure": measure, "reference": view["reference"], "slice": cut, "cohort": cohort,
            "groups": strategy_groups(ws), "table": points(view["table"], measure=measure), "best": view["best"],
            "marks": view["marks"], "oracle_gap": points(view["gap"], measure=measure),
            "negative_gap": view["negative_gap"], "queries": view["queries"], "markdown": view["markdown"],
            "judged_notes": judged_split_notes(ws, measure), "zero_shot": ws.zero_shot_datasets,
            "statistics": _statistics(ws, measure, reference, cut, sig), "saturated": view["saturated"],
            "saturation_note": saturation_note(view, measure),
            "win_tie_loss": win_tie_loss_table(ws, measure, reference, cut),
            "waterfall": _waterfall(ws, reference, v["vs"], measure, cohort),
            "bars": sliced_bar_frame(ws, measure, list(v["cols"]), cut).dropna(subset=["score"]),
            "csv": sliced_overview_csv(ws, measure, cut), **paper}


def _statistics(ws: Workspace, measure: str, reference: str, cut, sig: pd.DataFrame) -> pd.DataFrame:
    """reviewer_stats.cell_statistics, its differences and interval x100."""
    from ..reviewer_stats import cell_statistics

    stats = cell_statistics(ws, measure, reference, slice_by=cut, sig=sig)
    return stats.assign(**{c: points(stats[c], None, measure) for c in ("delta", "low", "high")})


def _waterfall(ws: Workspace, reference: str, vs: str, measure: str, cohort: dict | None) -> dict | None:
    """views.difference_waterfall of `vs` against the reference (fractions, as the inspector's A vs B; None when
    `vs` is the reference)."""
    from .waterfall import difference_waterfall

    return None if vs == reference else difference_waterfall(ws, reference, vs, measure,
                                                             cohort["rows"] if cohort else None)


VS = UrlParam("vs", choices=lambda ws, v: ws.strategies, default=lambda ws, v: default_strategy(ws),
              doc="the strategy whose per-query difference to the reference the waterfall draws (its own parameter: "
                  "the shared `strategy` names the run to download)")

PAGE = register_page(Page(
    "overview", "Overview", ":material/table_chart:", "explorer/ui/overview.py", data,
    (COMPARE, MEASURE, REFERENCE, SIG, SLICE, SLICE_VALUE, GROUPS, COLS, STRATEGY, VS, COHORT, COHORT_NAME),
    default=True, compares=True,
    caption="Mean per-query score of every routing strategy on every dataset, significance against a reference, "
            "per-query wins / ties / losses, the oracle gap, a slice by query metadata, and downloads.", order=10))
