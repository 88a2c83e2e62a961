"""The statistics a reviewer asks for, per cell of a score table: the paired tests' p-values before and after Holm,
the mean difference to the reference with its 95% confidence interval, and an effect size (Cohen's d_z).

Per dataset, every strategy is compared with the reference on the dataset's evaluated queries (the significance
table's tests, evaluation.significance). The average column is compared on every evaluated query at once, each
query's difference weighted so that the mean is the macro average the column shows (analysis.macro_differences).
Pure functions over a Workspace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import (AVERAGE, SIGNIFICANCE_RESAMPLES, Slice, macro_differences, per_query_matrix,
                       significance_table)
from .evaluation import mean_difference
from .workspace import Workspace

CONFIDENCE = 0.95
COLUMNS = ["dataset", "strategy", "delta", "low", "high", "d_z", "p_t", "p_t_holm", "p_rand", "p_rand_holm",
           "significant", "n"]


def _differences(ws: Workspace, measure: str, reference: str, slice_by: Slice | None, confidence: float
                 ) -> pd.DataFrame:
    """dataset, strategy, delta, low, high, d_z of every strategy but the reference, per dataset and the average
    (a run read from a file only on the datasets it ranks, and not on the average: it has none)."""
    m = per_query_matrix(ws, measure, slice_by=slice_by)
    datasets = ws.queries.set_index("row")["dataset"].reindex(m.index).to_numpy()
    frames = []
    for ds in ws.datasets:
        part = m[datasets == ds]
        others = [s for s in part.columns if s != reference and part[s].notna().any()]  # a run ranks some datasets
        if len(part) and part[reference].notna().all():
            d = mean_difference(part[reference].to_numpy(), part[others].to_numpy().T, confidence)
            frames.append(pd.DataFrame({"dataset": ds, "strategy": others, **d}))
    if frames:
        diffs = macro_differences(ws, measure, reference, slice_by, m)  # the strategies that score every query
        d = mean_difference(np.zeros(len(diffs)), diffs.to_numpy().T, confidence)
        frames.append(pd.DataFrame({"dataset": AVERAGE, "strategy": list(diffs.columns), **d}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS[:6])


def cell_statistics(ws: Workspace, measure: str | None = None, reference: str | None = None,
                    resamples: int = SIGNIFICANCE_RESAMPLES, slice_by: Slice | None = None,
                    confidence: float = CONFIDENCE, sig: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset or AVERAGE, strategy other than the reference): COLUMNS. delta, low and high are
    fractions (shown x100); p_t / p_rand are the paired t-test's and randomization test's p-values, *_holm after
    Holm's correction across strategies; significant = both Holm-corrected p-values below 0.05. `sig`: the
    significance_table of these arguments, when the caller has it."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    if sig is None:
        sig = significance_table(ws, measure, reference, resamples, slice_by=slice_by)
    sig = sig.rename(columns={"system": "strategy"})
    diffs = _differences(ws, measure, reference, slice_by, confidence)
    out = diffs.merge(sig.drop(columns="delta"), on=["dataset", "strategy"], how="left")
    order = {d: i for i, d in enumerate([*ws.datasets, AVERAGE])}
    rank = {s: i for i, s in enumerate(ws.strategies)}
    out = out.sort_values(["dataset", "strategy"], key=lambda c: c.map(order if c.name == "dataset" else rank),
                          kind="stable").reset_index(drop=True)
    return out[COLUMNS]


def saturated(table: pd.DataFrame, decimals: int = 1) -> dict[str, float]:
    """The columns of a summary table (rows: datasets and averages; columns: strategies) where every strategy shows
    the same score at the shown precision (x100, `decimals`): column -> that score. Nothing can differ there, so no
    test can be significant (e.g. R@100 when every strategy finds every relevant document in its top 100)."""
    out = {}
    for col in table.index:
        shown = (100 * table.loc[col]).round(decimals).dropna()
        if len(shown) > 1 and shown.nunique() == 1:
            out[str(col)] = float(shown.iloc[0])
    return out
