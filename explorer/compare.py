"""Two workspaces side by side: a second workspace built on the same datasets (another base model, another recipe)
read beside the first, its systems and strategies under a prefix (`B:pilot-mean`), every query paired by its
dataset and query id.

`Compared(a, b)` is a read-only Workspace whose tables are A's with B's rows added: B's evaluated queries take the
row of the same (dataset, qid) in A, so every read-side function (the Overview's table, its significance marks and
wins / ties / losses, paper tables, the Query inspector's decisions and rankings) works on it unchanged and pairs by
query id. Workspaces over other datasets, other data or other evaluated queries are refused with the reason.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .names import SystemName
from .workspace import Workspace

PREFIX = "B:"


class CompareError(ValueError):
    """Two workspaces that cannot be compared query by query; the message says why and what would fix it."""


def comparable_problem(a: Workspace, b: Workspace) -> str | None:
    """Why B cannot be paired query by query with A (other datasets, other data, other evaluated queries, no
    measure in common), or None."""
    if set(a.datasets) != set(b.datasets):
        return (f"{b.path} is built on datasets {', '.join(b.datasets)}; {a.path} on {', '.join(a.datasets)}: a "
                "comparison needs the same datasets")
    for name in a.datasets:
        ha, hb = a.dataset_info(name).get("hash"), b.dataset_info(name).get("hash")
        if ha and hb and ha != hb:
            return f"dataset {name!r} holds other data in {b.path} (content hash {hb} against {ha})"
        qa, qb = set(a.eval_rows(name)["qid"]), set(b.eval_rows(name)["qid"])
        if qa != qb:
            return (f"dataset {name!r}: {a.path} evaluates {len(qa)} queries, {b.path} {len(qb)}, {len(qa & qb)} of "
                    "them the same (another max_eval_queries, judged_split or test split): queries cannot be paired")
    if not set(a.measures) & set(b.measures):
        return f"{a.path} and {b.path} share no measure ({', '.join(a.measures)} against {', '.join(b.measures)})"
    return None


def compared(a: Workspace, other: str | Path | Workspace | None, prefix: str = PREFIX) -> Workspace:
    """`a`, or `a` with `other` beside it (a path or a workspace); CompareError when they cannot be paired."""
    if other is None or other == "":
        return a
    return Compared(a, other if isinstance(other, Workspace) else Workspace(other), prefix)


class Compared(Workspace):
    """Workspace A's files, with workspace B's systems and strategies added under `prefix` on A's rows."""

    def __init__(self, a: Workspace, b: Workspace, prefix: str = PREFIX):
        problem = comparable_problem(a, b)
        if problem:
            raise CompareError(f"cannot compare: {problem} (fix: compare with a workspace built from the same "
                               "datasets and evaluated queries)")
        self.a, self.b, self.prefix, self.path = a, b, prefix, a.path
        self.manifest = self._merged_manifest()
        self.compared_with = f"{b.path.resolve()}|{b.manifest.get('created', '')}|{b.manifest.get('updated', '')}"

    def name_of(self, system: str) -> str:
        """B's name of a prefixed system or strategy (mix:B:x -> mix:x), else None."""
        name = SystemName.parse(system)
        if name.kind == "mix" and name.target.startswith(self.prefix):
            return str(SystemName.mix(name.target[len(self.prefix):]))
        return system[len(self.prefix):] if system.startswith(self.prefix) else None

    def _merged_manifest(self) -> dict:
        p = self.prefix
        measures = [m for m in self.a.measures if m in self.b.measures]
        strategies = [{**s, "name": p + s["name"], "description": f"{self.b.title}: {s.get('description', '')}",
                       "choices": [p + c for c in s.get("choices") or self.b.candidates]}
                      for s in self.b.manifest["strategies"]]
        label = self.a.label_measure if self.a.label_measure in measures else measures[0]
        return {**self.a.manifest, "measures": measures, "label_measure": label,
                "strategies": [*self.a.manifest["strategies"], *strategies],
                "title": f"{self.a.title} against {p}{self.b.title}"}

    @property
    def systems(self) -> list[str]:
        return self.a.systems + [self.prefix + s for s in self.b.systems]

    @property
    def external_datasets(self) -> dict[str, list[str]]:
        return {**self.a.external_datasets, **{self.prefix + k: v for k, v in self.b.external_datasets.items()}}

    @cached_property
    def b_rows(self) -> pd.Series:
        """B's evaluated rows -> the row of the same (dataset, qid) in A."""
        key = self.a.eval_rows().set_index(["dataset", "qid"])["row"]
        b = self.b.eval_rows()
        return pd.Series(key.reindex(pd.MultiIndex.from_frame(b[["dataset", "qid"]])).to_numpy(), index=b["row"])

    def _b_frame(self, frame: pd.DataFrame, key: str) -> pd.DataFrame:
        """Rows of a B table on its evaluated queries, moved to A's rows, the key column's names prefixed."""
        frame = frame[frame["row"].isin(self.b_rows.index)]
        out = frame.assign(row=self.b_rows.reindex(frame["row"]).to_numpy().astype(np.int64))
        out[key] = [self._prefixed(s) for s in out[key]]
        return out

    def _prefixed(self, name: str) -> str:
        parsed = SystemName.parse(name)
        if parsed.kind == "mix":
            return str(SystemName.mix(self.prefix + parsed.target))
        return self.prefix + name

    def _columns_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        """B's score:<system> and weight:<system> columns under their prefixed names; B's chosen system prefixed."""
        renamed = {c: f"{c.split(':', 1)[0]}:{self.prefix}{c.split(':', 1)[1]}" for c in frame.columns
                   if c.startswith(("score:", "weight:"))}
        out = frame.rename(columns=renamed)
        out["chosen"] = [c if c == "mixture" else self.prefix + c for c in out["chosen"]]
        return out

    @cached_property
    def strategy_metrics(self) -> pd.DataFrame:
        measures = self.measures
        a = self.a.strategy_metrics[["strategy", "row", *measures]]
        return pd.concat([a, self._b_frame(self.b.strategy_metrics[["strategy", "row", *measures]], "strategy")],
                         ignore_index=True)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        measures = self.measures
        a = self.a.metrics[["system", "row", *measures]]
        return pd.concat([a, self._b_frame(self.b.metrics[["system", "row", *measures]], "system")], ignore_index=True)

    @cached_property
    def decisions(self) -> pd.DataFrame:
        b = self._columns_of(self._b_frame(self.b.decisions, "strategy"))
        out = pd.concat([self.a.decisions, b], ignore_index=True)
        weights = [c for c in out.columns if c.startswith("weight:")]
        out[weights] = out[weights].fillna(0.0)  # a system of the other workspace has no weight in a decision
        return out

    def stored_significance(self, measure: str, reference: str, resamples: int):
        return None  # the pair's table is computed: neither workspace stored it

    def select(self, name: str, values: list[str] | None = None, rows=None) -> pd.DataFrame:
        """Rows of a merged per-query table (in memory); runs are read from each workspace (run_rows)."""
        if name == "runs.parquet":
            return self.run_rows(values, rows)
        table = getattr(self, name.removesuffix(".parquet"))
        key = "system" if "system" in table.columns else "strategy"
        keep = np.ones(len(table), bool)
        if values is not None:
            keep &= table[key].isin(values).to_numpy()
        if rows is not None:
            keep &= table["row"].isin([int(r) for r in rows]).to_numpy()
        return table[keep]

    def run_rows(self, systems: list[str] | None = None, rows=None) -> pd.DataFrame:
        """A's runs of A's systems; B's runs of its systems on the same queries, moved to A's rows."""
        systems = list(self.systems) if systems is None else list(systems)
        own = [s for s in systems if self.name_of(s) is None]
        theirs = [self.name_of(s) for s in systems if self.name_of(s) is not None]
        a_runs = self.a.run_rows(own, rows) if own else None
        b_runs = None
        if theirs:
            wanted = None if rows is None else set(int(r) for r in rows)
            back = self.b_rows[self.b_rows.isin(wanted)] if wanted is not None else self.b_rows
            b_runs = self._b_frame(self.b.run_rows(theirs, back.index.tolist()), "system")
        parts = [f for f in (a_runs, b_runs) if f is not None]
        return pd.concat(parts, ignore_index=True) if parts else self.a.run_rows([], rows)

    @cached_property
    def a_rows(self) -> pd.Series:
        """A's evaluated rows -> B's row of the same query."""
        return pd.Series(self.b_rows.index.to_numpy(), index=self.b_rows.to_numpy())

    def ranking(self, system: str, row: int, depth: int = 10) -> pd.DataFrame:
        """A system's ranking of A's query `row`; a prefixed one is B's ranking of the same query (B's documents)."""
        theirs = self.name_of(system)
        if theirs is None:
            return self.a.ranking(system, row, depth)
        return self.b.ranking(theirs, int(self.a_rows[int(row)]), depth)
