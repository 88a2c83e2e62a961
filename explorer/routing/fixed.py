"""Fixed choices: the base model, the multi-task expert, and one strategy per single expert."""

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
        return "lexical" if LEXICAL in ctx.expert_capabilities.get(col, ()) else "fixed"

    def decide(self, ctx, emb, rows=None):
        col = ctx.encoders.index(self.column_name)
        weights = np.zeros((len(emb), len(ctx.encoders)))
        weights[:, col] = 1.0
        return Decision(weights, weights.copy(), np.full(len(emb), np.nan))

    def what_if(self, ctx, emb, stored, off):
        """Always its own column; left out when that expert is switched off."""
        col = ctx.encoders.index(self.column_name)
        return None if col in off else np.full(len(emb), col)


def fixed_strategies(encoders: list[str], multitask: str | None) -> list[Fixed]:
    out = [Fixed("base", "base", "the base encoder alone, no expert")]
    if multitask:
        out.append(Fixed("multi-task", multitask, "one expert trained on the balanced union of all training data"))
    out += [Fixed(str(SystemName.fixed(e)), e, f"always the expert {e!r}") for e in encoders[1:] if e != multitask]
    return out
