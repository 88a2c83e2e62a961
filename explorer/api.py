"""The notebook face of a workspace: `explorer.open(path)` gives every page of the app as a method returning what
that page shows, as pandas DataFrames, plus the runs in TREC columns and paired tests of any two strategies.

One data path: a page's method calls the page's own `data(ws, params)` from the page registry (explorer.pages),
the function the app and `explorer view` call, so a page registered later appears here without an edit. Opening a
workspace imports no model library (torch, sentence-transformers, peft, faiss): nothing here needs one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .workspace import Workspace

TREC_COLUMNS = ["qid", "Q0", "docid", "rank", "score", "tag"]


class PageData(dict):
    """What one page shows: its data as the page's `data` returns it (tables as DataFrames), keys also as
    attributes (`ov.table`)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"this page shows no {key!r}; it shows: {', '.join(self)}") from None

    def __dir__(self):
        return [*super().__dir__(), *self]


class Notebook:
    """A workspace opened for analysis: `nb.overview(measure="R@100")`, `nb.inspector(row=12)`, one method per
    page of the app (its URL parameters as keyword arguments), `nb.runs(system, dataset)`, `nb.compare(a, b)`."""

    def __init__(self, path: str | Path, compare: str | Path | None = None):
        from .compare import compared

        self.workspace = compared(Workspace(path), compare)

    def __repr__(self) -> str:
        ws = self.workspace
        return (f"<explorer workspace {str(ws.path)!r}: {len(ws.datasets)} datasets, {len(ws.strategies)} strategies; "
                f"pages: {', '.join(_pages())}>")

    def __dir__(self):
        return [*super().__dir__(), *(k.replace("-", "_") for k in _pages())]

    def __getattr__(self, name: str):
        pages = _pages()
        key = next((k for k in pages if k.replace("-", "_") == name), None)
        if key is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__} has no {name!r}; pages: {', '.join(pages)}")

        def show(**params: Any) -> PageData:
            return self.page(key, **params)

        page = pages[key]
        show.__name__ = name
        show.__doc__ = (f"What the {page.title} page shows, for its URL parameters as keywords "
                        f"({', '.join(p.name for p in page.params) or 'none'}).")
        return show

    def page(self, key: str, **params: Any) -> PageData:
        """What page `key` shows for `params` (keyword arguments named as its URL parameters)."""
        from .pages import page_frames

        return PageData(page_frames(key, self.workspace, params))  # typed values, or text as a URL gives them

    def runs(self, system: str, dataset: str, role: str = "eval") -> pd.DataFrame:
        """A system's run on a dataset's queries in TREC columns (qid, Q0, docid, rank, score, tag), ranks in
        trec_eval's order. `system`: an encoder, a run read from a file, or a strategy (each evaluated query from
        the run it chose); `role`: "eval" or "pilot" (a strategy decides evaluated queries only)."""
        from .export import strategy_hits

        ws = self.workspace
        ws.dataset_info(dataset)
        if system in ws.systems:
            rows = ws.queries.loc[(ws.queries["dataset"] == dataset) & (ws.queries["role"] == role), "row"]
            hits = ws.run_rows([system], rows.tolist())[["row", "rank", "doc", "score"]]
        else:
            ws.strategy_info(system)  # a clear error naming the strategies
            hits = strategy_hits(ws, system, dataset)
        hits = hits.sort_values(["row", "rank"], kind="stable")
        doc_ids = ws.docs(dataset)["doc_id"].to_numpy()
        docs = hits["doc"].to_numpy().astype(np.int64)
        return pd.DataFrame({
            "qid": ws.queries.set_index("row")["qid"].reindex(hits["row"]).to_numpy(), "Q0": "Q0",
            "docid": np.where(docs >= 0, doc_ids[np.maximum(docs, 0)], [f"unknown-{r}" for r in hits["rank"]]),
            "rank": hits["rank"].to_numpy().astype(np.int64), "score": hits["score"].to_numpy(), "tag": system})

    def compare(self, a: str, b: str, measure: str | None = None, resamples: int = 2000, seed: int = 0
                ) -> pd.DataFrame:
        """B against A on the evaluated queries both score: per dataset and over every query, n, mean_a, mean_b,
        delta (b − a), and the paired t-test and randomization test p-values (explorer.evaluation.paired_tests)."""
        from .analysis import ALL_QUERIES, per_query_matrix
        from .evaluation import paired_tests

        ws = self.workspace
        for name in (a, b):
            ws.strategy_info(name)
        measure = ws.measure(measure)
        rows = []
        for dataset in [*ws.datasets, ALL_QUERIES]:
            m = per_query_matrix(ws, measure, None if dataset == ALL_QUERIES else dataset)[[a, b]].dropna()
            test = paired_tests(m[a].to_numpy(), m[b].to_numpy(), resamples, seed)
            rows.append({"dataset": dataset, "a": a, "b": b, "measure": measure, "n": test["n"],
                         "mean_a": m[a].mean(), "mean_b": m[b].mean(), "delta": test["delta"], "p_t": test["p_t"],
                         "p_rand": test["p_rand"]})
        return pd.DataFrame(rows)


def _pages() -> dict:
    from .pages import PAGES

    return PAGES
