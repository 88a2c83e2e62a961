"""What the pages show of mixtures: a mixed decision as weights over experts (never a fake single choice), which
experts' runs held each document of a fused ranking and at which rank, and strategies grouped by how they decide
(choose / mix / post-retrieval / lexical / fixed / oracle) so a table of 40 strategies stays readable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import decision_labels, weights_label  # noqa: F401  (the pages' labels of a decision)
from ..capabilities import LEXICAL
from ..names import SystemName
from ..routing import GROUPS
from ..workspace import Workspace

GROUP_ORDER = GROUPS  # choose, mix, post-retrieval, lexical, fixed, oracle
def _group_of(record: dict, lexical: set[str]) -> str:
    """A strategy's group as its build recorded it; for a workspace built before groups, from its family."""
    if record.get("group"):
        return str(record["group"])
    family = record.get("family", "")
    if record.get("uses_oracle") or family == "oracle":
        return "oracle"
    if family == "fixed":
        target = SystemName.parse(record["name"]).expert
        return "lexical" if target in lexical else "fixed"
    return "mix" if family == "DDR" else "choose"


def strategy_groups(ws: Workspace) -> dict[str, str]:
    """strategy -> its group (GROUP_ORDER)."""
    lexical = {e["name"] for e in ws.experts if LEXICAL in e["capabilities"]}
    return {s["name"]: _group_of(s, lexical) for s in ws.manifest["strategies"]}


def grouped_strategies(ws: Workspace, groups: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """The strategies of `groups` (None: all), group by group in GROUP_ORDER, each group in manifest order."""
    of = strategy_groups(ws)
    wanted = GROUP_ORDER if groups is None else [g for g in GROUP_ORDER if g in groups]
    return [s for g in wanted for s in ws.strategies if of[s] == g]


def group_counts(ws: Workspace) -> dict[str, int]:
    of = strategy_groups(ws)
    return {g: sum(1 for s in of.values() if s == g) for g in GROUP_ORDER if g in of.values()}


def contributions(ws: Workspace, strategy: str, row: int, depth: int = 10) -> pd.DataFrame:
    """Which experts contributed each document of `strategy`'s ranking of one query: rank, doc_id, then one
    column per expert the decision weighs (its weight in the header text 'expert (0.50)') holding the rank of the
    document in that expert's own run (None: not in its run), and `held_by` in words. Empty for a hard choice."""
    d = ws.decision_rows([strategy], [row])
    if d.empty or d["chosen"].iloc[0] != "mixture":
        return pd.DataFrame(columns=["rank", "doc_id", "held_by"])
    weights = {e: float(d[f"weight:{e}"].iloc[0]) for e in ws.systems if d[f"weight:{e}"].iloc[0] > 0}
    mine = ws.ranking(str(SystemName.mix(strategy)), row, depth)
    full = int(ws.manifest.get("index", {}).get("depth", 100))
    runs = ws.run_rows(list(weights), [row])
    docs = ws.docs(ws.queries.iloc[row]["dataset"])["doc_id"].to_numpy()
    out = pd.DataFrame({"rank": mine["rank"], "doc_id": mine["doc_id"]})
    held = [[] for _ in range(len(out))]
    for expert, w in sorted(weights.items(), key=lambda kv: -kv[1]):
        r = runs[(runs["system"] == expert) & (runs["rank"] <= full)]
        at = dict(zip(docs[r["doc"].to_numpy()], r["rank"].to_numpy()))
        ranks = [at.get(doc) for doc in out["doc_id"]]
        out[f"{expert} ({w:.2f})"] = pd.array(ranks, dtype="Int64")
        for i, k in enumerate(ranks):
            if k is not None:
                held[i].append(f"{expert} #{k}")
    out["held_by"] = [" · ".join(h) if h else "none" for h in held]
    return out
