"""Fixed choices: the base model, the multi-task expert, one strategy per single expert, and one per run read from
a file (explorer.runs)."""

from __future__ import annotations

import numpy as np

from ..capabilities import LEXICAL
from ..names import SystemName
from .base import Decision, Router


class Fixed(Router):
    family = "fixed"
    group = "fixed"

    def __init__(self, name: str, column_name: str, description: str):
        self.name, self.column_name, self.description = name, column_name, description

    def available(self, ctx):
        return self.column_name in ctx.encoders

    def group_in(self, ctx):
        """A lexical expert alone (BM25) is grouped with the other lexical systems."""
        col = ctx.encoders.index(self.column_name)
        return "lexical" if LEXICAL in ctx.expert_capabilities.get(col, ()) else self.group

    def decide(self, ctx, emb, rows=None):
        return one_hot(len(emb), len(ctx.encoders), ctx.encoders.index(self.column_name))

    def what_if(self, ctx, emb, stored, off):
        """Always its own column; left out when that expert is switched off."""
        col = ctx.encoders.index(self.column_name)
        return None if col in off else np.full(len(emb), col)


def one_hot(n: int, columns: int, col: int) -> Decision:
    """`n` queries all sent to column `col` of `columns`: what a fixed choice decides (no margin)."""
    weights = np.zeros((n, columns))
    weights[:, col] = 1.0
    return Decision(weights, weights.copy(), np.full(n, np.nan))


def fixed_strategies(encoders: list[str], multitask: str | None) -> list[Fixed]:
    out = [Fixed("base", "base", "the base encoder alone, no expert")]
    if multitask:
        out.append(Fixed("multi-task", multitask, "one expert trained on the balanced union of all training data"))
    out += [Fixed(str(SystemName.fixed(e)), e, f"always the expert {e!r}") for e in encoders[1:] if e != multitask]
    return out


class ExternalRun(Fixed):
    """A run read from a file: always its own column, on the datasets its files rank. A query typed in the app has
    no line in any file, so it is never routed live."""

    family = group = "external"
    typed_queries = False

    def __init__(self, name: str, datasets: list[str]):
        super().__init__(name, name, f"a run read from a file ({', '.join(datasets)})")
        self.datasets = list(datasets)

    def covers(self, datasets: np.ndarray) -> np.ndarray:
        return np.isin(np.asarray(datasets, dtype=object), self.datasets)


def external_strategies(external: dict[str, list[str]] | None) -> list[ExternalRun]:
    """One strategy per run read from a file ({name: the datasets it ranks})."""
    return [ExternalRun(name, datasets) for name, datasets in (external or {}).items()]
