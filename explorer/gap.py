"""Where the instance-oracle gap goes, and how much of it each strategy closes.

The oracle is the workspace's instance oracle (the best expert of each query, as the Overview's gap row uses it). For
a strategy S, each evaluated query's gap is oracle − S under the measure, and falls into exactly one part:

- `ties`: every expert the oracle chooses among scores the same on the query (no choice could matter);
- `no expert helps`: the oracle's expert is no better than base on it;
- `routing error`: an expert beats base there and S stays below the oracle;
- `at or above the oracle`: S reaches the oracle (its gap is 0, or negative for a mixture or another measure).

A part's share of a dataset's gap is the sum of its queries' gaps over the dataset's queries, so the parts add up to
the dataset's oracle gap (mean oracle − mean S) exactly, up to float rounding; the average is the mean over datasets,
as every score table's. "% of the gap closed" is (S − reference) / (oracle − reference), with a percentile bootstrap
interval: queries resampled with replacement within each dataset (so the macro average keeps its datasets), seeded,
GAP_RESAMPLES times. Pure functions over a Workspace: no model, no Streamlit.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import pandas as pd

from .analysis import AVERAGE, choice_set, per_query_matrix
from .workspace import Workspace

ROUTING_ERROR, NO_EXPERT_HELPS, TIES, AT_ORACLE = "routing error", "no expert helps", "ties", "at or above the oracle"
GAP_PARTS = (ROUTING_ERROR, NO_EXPERT_HELPS, TIES, AT_ORACLE)
GAP_RESAMPLES = 1000  # bootstrap resamples of "% of the gap closed" (every page and `explorer view gap`)
GAP_SEED = 0
GAP_CONFIDENCE = 0.95
REGION_GRID = 4  # map regions: the layout's extent cut into REGION_GRID x REGION_GRID cells
TOLERANCE = 1e-9  # two scores closer than this are equal (as analysis.query_table's ties)


def oracle_name(ws: Workspace) -> str:
    """The instance oracle the gap is measured to (ValueError when the workspace has none)."""
    from .views.common import instance_oracle

    name = instance_oracle(ws)
    if name is None:
        raise ValueError("this workspace has no oracle strategy, so there is no oracle gap to decompose (fix: build "
                         "it with the instance oracle among its strategies)")
    return name


def _rows(ws: Workspace, rows: Iterable[int] | None) -> np.ndarray:
    """The evaluated rows kept: all of them, or those of `rows` (a cohort) that are evaluated."""
    ev = ws.eval_rows()["row"].to_numpy()
    return ev if rows is None else np.intersect1d(ev, np.fromiter((int(r) for r in rows), dtype=np.int64))


def query_gaps(ws: Workspace, strategy: str, measure: str | None = None, rows: Iterable[int] | None = None
               ) -> pd.DataFrame:
    """One row per evaluated query (index: row): dataset, score (the strategy's), oracle, base (the base encoder's
    score), gap (oracle − score) and part (one of GAP_PARTS). A query the strategy does not score (a run read from
    a file, on a dataset it does not rank) is left out; a routing candidate read from a file counts among the
    experts where it ranks."""
    measure = ws.measure(measure)
    oracle = oracle_name(ws)
    keep = _rows(ws, rows)
    ws.strategy_info(strategy)  # a clear error naming the strategies
    sm = ws.strategy_metric_rows([strategy, oracle], keep)
    wide = sm.pivot(index="row", columns="strategy", values=measure).reindex(keep)
    experts = choice_set(ws, oracle)
    m = ws.metric_rows(list(dict.fromkeys(["base", *experts])), keep)
    scores = m.pivot(index="row", columns="system", values=measure).reindex(index=keep)
    values = scores[experts].to_numpy(dtype=float)
    with warnings.catch_warnings():  # a query no candidate scores (none here: base always does) has no maximum
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanmax(values, axis=1, keepdims=True)
    tie = np.all((np.abs(values - best) <= TOLERANCE) | np.isnan(values), axis=1)
    q = ws.queries.set_index("row")["dataset"].reindex(keep)
    out = pd.DataFrame({"dataset": q, "score": wide[strategy], "oracle": wide[oracle], "base": scores["base"]})
    out["gap"] = out["oracle"] - out["score"]
    out["part"] = np.select([tie, out["oracle"] <= out["base"] + TOLERANCE, out["gap"] > TOLERANCE],
                            [TIES, NO_EXPERT_HELPS, ROUTING_ERROR], AT_ORACLE)
    out.index.name = "row"
    return out[out["score"].notna()]


def _parts(frame: pd.DataFrame) -> dict:
    """The gap of a set of queries split by part: each part's sum of gaps over the number of queries, its count."""
    n = len(frame)
    sums = frame.groupby("part")["gap"].sum().reindex(GAP_PARTS, fill_value=0.0)
    counts = frame["part"].value_counts().reindex(GAP_PARTS, fill_value=0)
    out = {"queries": n, "gap": (frame["oracle"].mean() - frame["score"].mean()) if n else np.nan}
    out.update({p: (sums[p] / n if n else np.nan) for p in GAP_PARTS})
    out.update({f"{p} queries": int(counts[p]) for p in GAP_PARTS})
    return out


def gap_decomposition(ws: Workspace, strategy: str, measure: str | None = None, rows: Iterable[int] | None = None
                      ) -> pd.DataFrame:
    """Per dataset (and the average, the mean over datasets): queries, gap (mean oracle − mean strategy), each
    part's share of it (GAP_PARTS, fractions that add up to gap) and each part's number of queries. A dataset
    without queries (in a cohort) is left out."""
    q = query_gaps(ws, strategy, measure, rows)
    table = pd.DataFrame({d: _parts(q[q["dataset"] == d]) for d in ws.datasets if (q["dataset"] == d).any()}).T
    if len(table):
        average = table.mean(axis=0)
        average["queries"] = table["queries"].sum()
        for p in GAP_PARTS:
            average[f"{p} queries"] = table[f"{p} queries"].sum()
        table.loc[AVERAGE] = average
    table.index.name = "dataset"
    return table


def layout_extent(ws: Workspace, method: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of every point of a layout: the map's fixed axes and the frame of its regions."""
    lay = ws.layout[ws.layout["method"] == method]
    if lay.empty:
        raise KeyError(f"layout {method!r} is not one of this workspace's: {', '.join(pd.unique(ws.layout['method']))}")
    return float(lay["x"].min()), float(lay["x"].max()), float(lay["y"].min()), float(lay["y"].max())


def query_regions(ws: Workspace, method: str, grid: int = REGION_GRID) -> pd.Series:
    """Each query's map region (index: row): the cell 'r<i>c<j>' of a grid x grid cut of the layout's extent (row
    i counts from the top)."""
    x0, x1, y0, y1 = layout_extent(ws, method)
    lay = ws.layout[(ws.layout["method"] == method) & (ws.layout["item"] == "query")]
    col = np.clip(((lay["x"] - x0) / ((x1 - x0) or 1) * grid).astype(int), 0, grid - 1)
    row = np.clip(((y1 - lay["y"]) / ((y1 - y0) or 1) * grid).astype(int), 0, grid - 1)
    return pd.Series([f"r{i}c{j}" for i, j in zip(row, col)], index=lay["ref"].to_numpy(), name="region")


def region_decomposition(ws: Workspace, strategy: str, method: str, measure: str | None = None,
                         rows: Iterable[int] | None = None, grid: int = REGION_GRID) -> pd.DataFrame:
    """Per map region holding evaluated queries: its cell (i, j), frame (x0, x1, y0, y1), and the gap of its
    queries split by part (as gap_decomposition, over the region's queries)."""
    q = query_gaps(ws, strategy, measure, rows)
    q = q.assign(region=query_regions(ws, method, grid).reindex(q.index))
    x0, x1, y0, y1 = layout_extent(ws, method)
    w, h = (x1 - x0) / grid, (y1 - y0) / grid
    out = []
    for region, part in q.groupby("region", sort=True):
        i, j = (int(v) for v in region[1:].split("c"))
        out.append({"region": region, "i": i, "j": j, "x0": x0 + j * w, "x1": x0 + (j + 1) * w,
                    "y0": y1 - (i + 1) * h, "y1": y1 - i * h, **_parts(part)})
    return pd.DataFrame(out)


def _resampled_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, k) column means of `x` (n, k) over queries drawn with replacement: resample b draws
    rng.integers(0, n, n), one call per resample; the means are one matrix product of the draws' counts."""
    n = len(x)
    out = np.empty((resamples, x.shape[1]))
    for start in range(0, resamples, 64):
        stop = min(start + 64, resamples)
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(start, stop)])
        out[start:stop] = counts @ x / n
    return out


def _closed(s: np.ndarray, ref: np.ndarray, orc: np.ndarray) -> np.ndarray:
    room = orc - ref
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(room) > TOLERANCE, (s - ref) / np.where(room == 0, 1, room), np.nan)


def gap_closed(ws: Workspace, measure: str | None = None, reference: str | None = None,
               rows: Iterable[int] | None = None, resamples: int = GAP_RESAMPLES, seed: int = GAP_SEED,
               confidence: float = GAP_CONFIDENCE) -> pd.DataFrame:
    """Every strategy's share of the gap between the reference and the instance oracle that it closes, per dataset
    and on the average (of the datasets' means): dataset, strategy, closed (a fraction: 0 = the reference, 1 = the
    oracle; NaN where the oracle is no better than the reference), low, high (the percentile bootstrap interval),
    score, reference_score, oracle_score (means), queries. The datasets are resampled in ws.datasets order, each
    from one seeded generator. A run read from a file is NaN on the datasets it does not rank and on the average
    (as analysis.macro_average); a fusion is a strategy like any other (it can close more than the whole gap)."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    oracle = oracle_name(ws)
    if reference not in ws.strategies:
        raise ValueError(f"reference {reference!r} is not a strategy of this workspace")
    keep = _rows(ws, rows)
    m = per_query_matrix(ws, measure).reindex(keep)
    datasets = ws.queries.set_index("row")["dataset"].reindex(keep).to_numpy()
    names = list(m.columns)
    ri, oi = names.index(reference), names.index(oracle)
    rng = np.random.default_rng(seed)
    points, boots, counts = {}, {}, {}
    for d in ws.datasets:
        x = m.to_numpy(dtype=float)[datasets == d]
        if len(x):
            points[d], boots[d], counts[d] = x.mean(axis=0), _resampled_means(x, resamples, rng), len(x)
    if points:
        points[AVERAGE] = np.mean([points[d] for d in counts], axis=0)
        boots[AVERAGE] = np.mean([boots[d] for d in counts], axis=0)
        counts[AVERAGE] = sum(counts.values())
    tail = 100 * (1 - confidence) / 2
    out = []
    for d, p in points.items():
        closed = _closed(p, p[ri], p[oi])
        b = _closed(boots[d], boots[d][:, [ri]], boots[d][:, [oi]])
        with warnings.catch_warnings():  # a strategy whose every resample is undefined has no interval
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(b, [tail, 100 - tail], axis=0)
        for j, s in enumerate(names):
            out.append({"dataset": d, "strategy": s, "closed": closed[j], "low": low[j], "high": high[j],
                        "score": p[j], "reference_score": p[ri], "oracle_score": p[oi], "queries": counts[d]})
    return pd.DataFrame(out, columns=["dataset", "strategy", "closed", "low", "high", "score", "reference_score",
                                      "oracle_score", "queries"])
