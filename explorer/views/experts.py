"""The Experts page's data: expert cards and the what-if with experts switched off."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import WhatIf, summary
from ..workspace import Workspace
from .base import Page, UrlParam, register_page
from .common import MEASURE, MIXTURE, default_strategy, fixed_strategy


def expert_cards(ws: Workspace, measure: str | None = None) -> list[dict]:
    """One dict per expert: name, kind, datasets, sources, pairs, steps, hyper-parameters, loss curve, and the
    in-domain / out-of-domain means of `measure` of its fixed strategy (with the base's on the same datasets)."""
    measure = ws.measure(measure)
    table = summary(ws, measure).reindex(ws.datasets)
    cards = []
    for e in ws.experts:
        card = {**e.get("card", {}), **ws.expert_card(e["name"])}
        strat = fixed_strategy(ws, e["name"])
        own = [d for d in e.get("datasets", []) if d in table.index]
        other = [d for d in table.index if d not in own]

        def mean(rows, col):
            return float(table.loc[rows, col].mean()) if rows and col in table.columns else float("nan")

        cards.append({
            "name": e["name"], "kind": e.get("kind", card.get("kind", "")), "multi_task": e.get("multi_task", False),
            "candidate": e.get("candidate", True), "datasets": e.get("datasets", []),
            "sources": card.get("sources", []), "pairs": card.get("pairs"), "steps": card.get("steps"),
            "origin": card.get("origin", ""), "seconds": card.get("seconds"),
            "trainable_parameters": card.get("trainable_parameters"),
            "base_parameters": ws.manifest.get("base_model", {}).get("parameters"),
            "hyper_parameters": card.get("hyper_parameters", {}), "loss_curve": card.get("loss_curve", []),
            "strategy": strat, "in_domain": mean(own, strat), "out_of_domain": mean(other, strat),
            "base_in_domain": mean(own, "base"), "base_out_of_domain": mean(other, "base"),
        })
    return cards


def whatif_compare(whatif: WhatIf, enabled: list[str], measure: str | None = None) -> dict:
    """The what-if table for `enabled` experts, the all-on table, their difference, and the choices."""
    measure = whatif.ws.measure(measure)
    ws = whatif.ws
    all_on = [e["name"] for e in ws.experts]
    full, _ = whatif.run(all_on, measure)
    now, choices = whatif.run(list(enabled), measure)
    cols = [c for c in full.columns if c in now.columns]
    diff = now[cols] - full[cols]
    return {"now": now, "all_on": full, "diff": diff, "choices": choices, "dropped": [c for c in full.columns
                                                                                       if c not in now.columns]}


def whatif_pilots(whatif: WhatIf, enabled: list[str]) -> pd.DataFrame:
    """The recomputed pilot library for `enabled`: per (dataset, expert) the number of pilot queries."""
    ctx = whatif.context(list(enabled))
    lib = ctx.library
    names = [ctx.encoders[int(c)] for c in lib.expert]
    return pd.DataFrame({"dataset": lib.dataset, "expert": names, "size": lib.size})


def whatif_shares(whatif: WhatIf, choices: dict, strategy: str) -> pd.DataFrame:
    """Dataset x encoder share of evaluated queries for one strategy's what-if choices (-1 = stored mixture)."""
    ws = whatif.ws
    if strategy not in choices:
        return pd.DataFrame()
    chosen = np.asarray(choices[strategy])
    names = np.array([ws.systems[c] if c >= 0 else MIXTURE for c in chosen], dtype=object)
    ds = ws.eval_rows()["dataset"].to_numpy()
    t = pd.crosstab(pd.Series(ds, name="dataset"), pd.Series(names, name="expert"), normalize="index")
    cols = [e for e in ws.systems if e in t.columns] + ([MIXTURE] if MIXTURE in t.columns else [])
    return t.reindex(index=ws.datasets, columns=cols, fill_value=0)


# --- the page -------------------------------------------------------------------------------------------------
def whatif_of(ws: Workspace) -> WhatIf:
    """The workspace's what-if engine, made once per opened workspace (its arrays are read once)."""
    if "_whatif" not in ws.__dict__:
        ws.__dict__["_whatif"] = WhatIf(ws)
    return ws.__dict__["_whatif"]


def _expert_names(ws: Workspace, _values: dict) -> list[str]:
    return [e["name"] for e in ws.experts]


def data(ws: Workspace, v: dict) -> dict:
    """The expert cards, the what-if with the experts in `off` switched off (scores now, with all on, the
    difference, the strategies left out), the pilot library left, and where `routing` now sends each dataset."""
    whatif = whatif_of(ws)
    enabled = [n for n in _expert_names(ws, v) if n not in v["off"]]
    result = whatif_compare(whatif, enabled, v["measure"])
    pilots = whatif_pilots(whatif, enabled) if enabled else pd.DataFrame(columns=["dataset", "expert", "size"])
    routing = v["routing"] if v["routing"] in result["choices"] else None
    return {"measure": v["measure"], "off": list(v["off"]), "enabled": enabled,
            "cards": expert_cards(ws, v["measure"]), "whatif": result, "pilots": pilots, "routing": routing,
            "shares": whatif_shares(whatif, result["choices"], routing) if routing else pd.DataFrame()}


PAGE = register_page(Page(
    "experts", "Experts", ":material/school:", "explorer/ui/experts.py", data,
    (MEASURE, UrlParam("off", "multi", _expert_names, [], "experts switched off in the what-if"),
     UrlParam("routing", choices=lambda ws, v: ws.strategies, doc="the strategy whose routing the what-if shows",
              default=lambda ws, v: default_strategy(ws))),
    caption="A card per expert, and the what-if: switch experts off and see routing and metrics recomputed.", order=60))
