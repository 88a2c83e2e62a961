"""Read-side helpers that shape workspace data for the app's pages.

Pure functions over a `Workspace` (and the `explorer.analysis` results): no Streamlit, no model work. The pages
format and draw what these return; tests compare both against `explorer.analysis`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import AVERAGE, ZERO_SHOT_AVERAGE, WhatIf, query_table, summary
from .ui.safe import code, md
from .workspace import Workspace

MIXTURE = "mixture"


def x100(value) -> str:
    """A score as papers show it: ×100, one decimal ('—' when missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{100 * float(value):.1f}"


def strategy_families(ws: Workspace) -> dict[str, str]:
    return {s["name"]: s.get("family", "") for s in ws.manifest["strategies"]}


def oracle_strategies(ws: Workspace) -> list[str]:
    return [s["name"] for s in ws.manifest["strategies"] if s.get("uses_oracle")]


def real_strategies(ws: Workspace) -> list[str]:
    """Strategies that do not read the evaluated queries' own judgements."""
    return [s["name"] for s in ws.manifest["strategies"] if not s.get("uses_oracle")]


def default_strategy(ws: Workspace) -> str:
    for name in ("pilot-mean", "pilot-nearest", "prototype"):
        if name in ws.strategies:
            return name
    return real_strategies(ws)[0] if real_strategies(ws) else ws.strategies[0]


def instance_oracle(ws: Workspace) -> str | None:
    if "instance-oracle" in ws.strategies:
        return "instance-oracle"
    oracles = oracle_strategies(ws)
    return oracles[0] if oracles else None


# --- Overview -----------------------------------------------------------------------------------------------------
# --- Routing map --------------------------------------------------------------------------------------------------
def layout_methods(ws: Workspace) -> list[str]:
    methods = list(pd.unique(ws.layout["method"]))
    return sorted(methods, key=lambda m: (m != "umap", m))


def map_points(ws: Workspace, method: str, strategy: str, measure: str = "nDCG@10") -> dict[str, pd.DataFrame]:
    """{'queries': every query with x, y, role, dataset, qid, text, label (pilot queries: their best-expert
    label), and for evaluated ones routed, oracle, correct, regret, margin; 'pilots': centroids with x, y}."""
    lay = ws.layout[ws.layout["method"] == method]
    q = ws.queries.set_index("row")
    pts = lay[lay["item"] == "query"].set_index("ref")[["x", "y"]]
    queries = q.loc[pts.index, ["qid", "dataset", "role", "text", "kind"]].join(pts)
    labels = ws.pilot_labels.set_index("row")["label"]
    queries["label"] = labels.reindex(queries.index)
    qt = query_table(ws, strategy, measure)
    for col in ("routed", "oracle", "correct", "regret", "margin", "routed_score", "oracle_score", "base_score"):
        queries[col] = qt[col].reindex(queries.index)
    queries.index.name = "row"
    queries = queries.reset_index()
    pil = lay[lay["item"] == "pilot"].set_index("ref")[["x", "y"]]
    pilots = ws.pilots.set_index("pilot").join(pil).reset_index()
    return {"queries": queries, "pilots": pilots}


def sample_points(frame: pd.DataFrame, limit: int, seed: int = 0) -> tuple[pd.DataFrame, bool]:
    """At most `limit` rows, a seeded sample (stable across reruns); returns (frame, sampled)."""
    if len(frame) <= limit:
        return frame, False
    return frame.sample(n=limit, random_state=seed).sort_index(), True


# --- Routing decisions --------------------------------------------------------------------------------------------
# --- Query inspector ----------------------------------------------------------------------------------------------
def query_info(ws: Workspace, row: int) -> dict:
    q = ws.queries.iloc[row]
    return {"row": int(row), "qid": q["qid"], "dataset": q["dataset"], "role": q["role"], "text": q["text"],
            "kind": q["kind"]}


def pilot_similarity(ws: Workspace, emb: np.ndarray) -> pd.DataFrame:
    """Similarity of one base embedding to every pilot centroid: pilot, dataset, expert, size, similarity."""
    return ws.pilots.assign(similarity=ws.pilot_centroids @ np.asarray(emb, dtype=np.float32))


def query_pilot_similarity(ws: Workspace, row: int) -> pd.DataFrame:
    return pilot_similarity(ws, ws.embeddings("base")[row])


def query_decisions(ws: Workspace, row: int, measure: str = "nDCG@10") -> pd.DataFrame:
    """Every strategy's decision on one evaluated query: strategy, family, chosen, margin, score, best."""
    d = ws.decisions[ws.decisions["row"] == row].set_index("strategy")
    sm = ws.strategy_metrics[ws.strategy_metrics["row"] == row].set_index("strategy")[measure]
    fam = strategy_families(ws)
    out = pd.DataFrame({"strategy": ws.strategies})
    out["family"] = out["strategy"].map(fam)
    out["chosen"] = out["strategy"].map(d["chosen"])
    out["margin"] = out["strategy"].map(d["margin"])
    out["score"] = out["strategy"].map(sm)
    weights = [c for c in d.columns if c.startswith("weight:")]
    out["weights"] = [", ".join(f"{c[7:]} {d.loc[s, c]:.2f}" for c in weights if d.loc[s, c] > 0)
                      if s in d.index else "" for s in out["strategy"]]
    return out


def encoder_scores(ws: Workspace, row: int) -> pd.DataFrame:
    """Each encoder's per-query metrics on one query (index = encoder)."""
    m = ws.metrics[ws.metrics["row"] == row].set_index("system")
    return m[ws.measures].reindex(ws.encoders)


def oracle_expert(ws: Workspace, row: int, measure: str = "nDCG@10") -> str | None:
    s = encoder_scores(ws, row)[measure].reindex(ws.candidates)
    return None if s.isna().all() else str(s.idxmax())


def column_options(ws: Workspace, row: int, strategy: str) -> dict[str, tuple[str, str]]:
    """Column key -> (label, system) for the side-by-side rankings: 'routed' (by `strategy`), 'base', 'oracle'
    (the query's best expert), then every encoder by name. Keys are stable, so they can live in the URL."""
    out = {}
    if row in set(ws.decisions.loc[ws.decisions["strategy"] == strategy, "row"]):
        system = ws.strategy_system(strategy, row)
        out["routed"] = (f"routed by {strategy} → {system.replace('mix:', 'merge of ')}", system)
    out["base"] = ("base", "base")
    oracle = oracle_expert(ws, row)
    if oracle:
        out["oracle"] = (f"oracle expert ({oracle})", oracle)
    for e in ws.encoders[1:]:
        out[e] = (e, e)
    return out


def column_score(ws: Workspace, system: str, row: int, measure: str) -> float:
    if system.startswith("mix:"):
        sm = ws.strategy_metrics
        hit = sm[(sm["strategy"] == system[4:]) & (sm["row"] == row)]
    else:
        m = ws.metrics
        hit = m[(m["system"] == system) & (m["row"] == row)]
    return float(hit[measure].iloc[0]) if len(hit) else float("nan")


def side_by_side(ws: Workspace, row: int, systems: dict[str, str], depth: int = 10, measure: str = "nDCG@10"
                 ) -> dict:
    """Rankings of one query under several systems: {'rankings': label -> frame (rank, doc_id, title, text,
    score, grade), 'scores': label -> per-query metrics, 'moves': long frame of every judged-relevant document's
    rank in each column (rank = None when it is below the stored run depth)}."""
    rankings, scores, moves = {}, {}, []
    q = ws.queries.iloc[row]
    judged = ws.qrels(q["dataset"], q["role"]).get(q["qid"], {})
    docs = ws.docs(q["dataset"]).set_index("doc_id")
    full_depth = int(ws.manifest.get("index", {}).get("depth", 100))
    for label, system in systems.items():
        full = ws.ranking(system, row, depth=full_depth)
        rankings[label] = full.head(depth)
        scores[label] = {m: column_score(ws, system, row, m) for m in ws.measures}
        where = dict(zip(full["doc_id"], full["rank"]))
        for doc, grade in judged.items():
            if grade <= 0:
                continue
            title = docs["title"].get(doc, "") if doc in docs.index else ""
            text = docs["text"].get(doc, "") if doc in docs.index else ""
            moves.append({"column": label, "doc_id": doc, "grade": int(grade), "rank": where.get(doc),
                          "title": title, "text": text})
    return {"rankings": rankings, "scores": scores, "moves": pd.DataFrame(moves), "judged": judged,
            "depth": full_depth}


def document(ws: Workspace, dataset: str, doc_id: str) -> dict:
    d = ws.docs(dataset)
    hit = d[d["doc_id"] == doc_id]
    if hit.empty:
        return {}
    r = hit.iloc[0]
    return {"doc_id": doc_id, "title": r["title"], "text": r["text"]}


# --- Error analysis -----------------------------------------------------------------------------------------------
def error_table(ws: Workspace, strategy: str, measure: str = "nDCG@10", datasets: list[str] | None = None,
                wrong_only: bool = False, margin_below: float | None = None, hurt_only: bool = False,
                skip_all_ties: bool = False) -> pd.DataFrame:
    """query_table filtered: datasets, routed != oracle (not among the tied best), margin below x, routed worse
    than base, every-expert-tie rows left out. Index = row."""
    t = query_table(ws, strategy, measure)
    if datasets:
        t = t[t["dataset"].isin(datasets)]
    if wrong_only:
        t = t[~t["correct"]]
    if margin_below is not None:
        t = t[t["margin"].fillna(np.inf) < margin_below]
    if hurt_only:
        t = t[t["routed_score"] < t["base_score"] - 1e-12]
    if skip_all_ties:
        t = t[~t["all_tie"]]
    t = t.assign(delta_base=t["routed_score"] - t["base_score"])
    return t


# --- Experts ------------------------------------------------------------------------------------------------------
def fixed_strategy(ws: Workspace, expert: str) -> str | None:
    for name in (f"fixed:{expert}", expert):
        if name in ws.strategies:
            return name
    return None


def expert_cards(ws: Workspace, measure: str = "nDCG@10") -> list[dict]:
    """One dict per expert: name, kind, datasets, sources, pairs, steps, hyper-parameters, loss curve, and the
    in-domain / out-of-domain means of `measure` of its fixed strategy (with the base's on the same datasets)."""
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


def whatif_compare(whatif: WhatIf, enabled: list[str], measure: str = "nDCG@10") -> dict:
    """The what-if table for `enabled` experts, the all-on table, their difference, and the choices."""
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
    names = np.array([ws.encoders[c] if c >= 0 else MIXTURE for c in chosen], dtype=object)
    ds = ws.eval_rows()["dataset"].to_numpy()
    t = pd.crosstab(pd.Series(ds, name="dataset"), pd.Series(names, name="expert"), normalize="index")
    cols = [e for e in ws.encoders if e in t.columns] + ([MIXTURE] if MIXTURE in t.columns else [])
    return t.reindex(index=ws.datasets, columns=cols, fill_value=0)


# --- Playground ---------------------------------------------------------------------------------------------------
def live_decisions(ws: Workspace, result, choice_of) -> pd.DataFrame:
    """A LiveResult's decisions as a table: strategy, family, choice (an encoder, or 'a 0.6 + b 0.4'), margin."""
    fam = strategy_families(ws)
    rows = []
    for name, dec in result.decisions.items():
        choice = choice_of(dec)
        if choice is None:
            text = "base"
        elif isinstance(choice, str):
            text = choice
        else:
            text = " + ".join(f"{k} {v:.2f}" for k, v in choice.items())
        margin = float(dec.margin[0]) if len(dec.margin) else float("nan")
        rows.append({"strategy": name, "family": fam.get(name, ""), "choice": text, "margin": margin})
    return pd.DataFrame(rows)


def choice_label(choice) -> str:
    if choice is None:
        return "base"
    if isinstance(choice, str):
        return choice
    return " + ".join(f"{k} {v:.2f}" for k, v in choice.items())


# --- Query inspector: decision table, URL rows, two strategies (issue 13) ------------------------------------------
DASH = "–"


def strategy_order(ws: Workspace) -> list[str]:
    """Strategies as the inspector lists them: routers first (manifest order), then the oracles, then the fixed
    experts (base, multi-task, fixed:<expert>)."""
    fam = strategy_families(ws)
    oracles = set(oracle_strategies(ws))
    fixed = [s for s in ws.strategies if fam.get(s) == "fixed" and s not in oracles]
    routers = [s for s in ws.strategies if s not in oracles and s not in fixed]
    return routers + [s for s in ws.strategies if s in oracles] + fixed


def margin_text(value) -> str:
    """A routing margin as shown in tables: three decimals, '–' when the strategy has none (fixed experts)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return DASH
    return f"{float(value):.3f}"


def decision_table(ws: Workspace, row: int, measure: str = "nDCG@10") -> pd.DataFrame:
    """query_decisions in strategy_order: strategy, chosen, score (×100, one decimal), margin (text, '–' when
    none), weights, family."""
    d = query_decisions(ws, row, measure).set_index("strategy").reindex(strategy_order(ws)).reset_index()
    return pd.DataFrame({"strategy": d["strategy"], "chosen": d["chosen"], "score": (100 * d["score"]).round(1),
                         "margin": [margin_text(m) for m in d["margin"]], "weights": d["weights"].fillna(""),
                         "family": d["family"]})


def inspect_row(ws: Workspace, raw) -> tuple[int | None, str | None]:
    """The test query a URL's `row` names: (row, None), or (None, why not) for a value that is not a number, a
    row the workspace does not have, or a pilot (training) query's row."""
    if raw is None or str(raw).strip() == "":
        return None, None
    shown = str(raw).strip()[:40]
    try:
        row = int(shown)
    except (TypeError, ValueError, OverflowError):
        return None, f"row {shown!r} is not a row number"
    q = ws.queries
    hit = q[q["row"] == row]
    if hit.empty:
        return None, f"row {row} is not a test query of this workspace (it has rows 0–{len(q) - 1})"
    if hit["role"].iloc[0] != "eval":
        return None, (f"row {row} is a pilot query ({hit['qid'].iloc[0]} of {hit['dataset'].iloc[0]}), not a test "
                      "query of this workspace: pilot queries have no evaluated rankings")
    return row, None


def showcase_row(ws: Workspace, dataset: str, strategy: str, measure: str | None = None) -> int:
    """The test query of `dataset` the Query inspector opens on: the one where `strategy` gains most over base (the
    demo's point, that the choice of expert matters), the first such row on ties; the first test query where there
    is no base to compare with."""
    from .analysis import per_query_matrix

    first = int(ws.eval_rows(dataset)["row"].iloc[0])
    if "base" not in ws.strategies or strategy not in ws.strategies:
        return first
    m = per_query_matrix(ws, measure or ws.measures[0], dataset).sort_index()
    gain = (m[strategy] - m["base"]).fillna(0.0)
    return int(gain.index[int(np.argmax(gain.to_numpy()))]) if len(gain) else first


def strategy_pair(ws: Workspace, a: str, b: str, measure: str = "nDCG@10") -> pd.DataFrame:
    """Every evaluated query under two strategies: row, qid, dataset, kind, text, chosen_a, chosen_b (an
    encoder, or 'mixture'), score_a, score_b (fractions), delta = score_b − score_a, and outcome ('B better',
    'A better', 'tie')."""
    q = ws.eval_rows().set_index("row")[["qid", "dataset", "kind", "text"]]
    sm, d = ws.strategy_metrics, ws.decisions
    out = q.copy()
    for side, s in (("a", a), ("b", b)):
        out[f"chosen_{side}"] = d[d["strategy"] == s].set_index("row")["chosen"].reindex(q.index)
        out[f"score_{side}"] = sm[sm["strategy"] == s].set_index("row")[measure].reindex(q.index)
    out["delta"] = out["score_b"] - out["score_a"]
    out["outcome"] = np.where(out["delta"] > 1e-9, "B better", np.where(out["delta"] < -1e-9, "A better", "tie"))
    out.index.name = "row"
    return out.reset_index()


def pair_counts(pair: pd.DataFrame) -> dict[str, int]:
    """How many queries B wins, A wins and they tie."""
    counts = pair["outcome"].value_counts()
    return {k: int(counts.get(k, 0)) for k in ("B better", "A better", "tie")}


def query_strategy(ws: Workspace, strategy: str, row: int, measure: str = "nDCG@10") -> dict:
    """One strategy on one query: chosen, margin (text), weights, score (fraction), system (its run)."""
    d = query_decisions(ws, row, measure).set_index("strategy")
    if strategy not in d.index or row not in set(ws.decisions.loc[ws.decisions["strategy"] == strategy, "row"]):
        return {}
    r = d.loc[strategy]
    return {"strategy": strategy, "chosen": r["chosen"], "margin": margin_text(r["margin"]), "weights": r["weights"],
            "score": float(r["score"]), "system": ws.strategy_system(strategy, row)}


# --- Routing map: selections and query metadata (issue 13) ---------------------------------------------------------
def metadata_filter(ws: Workspace, chosen: dict[str, list[str]] | tuple) -> set[int]:
    """Rows of the queries whose metadata matches every field's chosen values (Workspace.metadata, as strings;
    '' = no value); a field with nothing chosen keeps every query. `chosen`: field -> values, or (field, values)
    pairs."""
    items = chosen.items() if isinstance(chosen, dict) else chosen
    keep = np.ones(len(ws.queries), dtype=bool)
    for field, values in items:
        if values and field in ws.metadata_fields:
            keep &= ws.metadata(field).isin([str(v) for v in values]).to_numpy()
    return set(ws.queries.loc[keep, "row"].astype(int))


def selected_queries(ws: Workspace, rows, strategy: str, measure: str = "nDCG@10") -> pd.DataFrame:
    """The evaluated queries among `rows` (in that order): row, qid, dataset, kind, text, routed, oracle,
    regret (fraction), routed_score, oracle_score."""
    t = query_table(ws, strategy, measure)
    keep = [int(r) for r in dict.fromkeys(rows) if int(r) in t.index]
    out = t.loc[keep, ["qid", "dataset", "kind", "text", "routed", "oracle", "regret", "routed_score",
                       "oracle_score"]]
    out.index.name = "row"
    return out.reset_index()


# --- Playground: how far a typed query is from the pilots (issue 13) -----------------------------------------------
def pilot_best_similarity(ws: Workspace, role: str = "pilot") -> np.ndarray:
    """Each query of `role` (pilot or eval): its best cosine similarity to any pilot centroid (base embeddings).
    A pilot query is part of its own group's centroid, which would flatter it against a new query; so with one
    centroid per group (pilot_k = 1) its own centroid is recomputed without it (leave one out)."""
    rows = ws.queries.loc[ws.queries["role"] == role, "row"].to_numpy()
    if not len(rows) or not len(ws.pilot_centroids):
        return np.zeros(0, dtype=np.float32)
    emb = np.asarray(ws.embeddings("base")[rows], dtype=np.float32)
    sims = emb @ ws.pilot_centroids.T
    if role != "pilot" or int(ws.manifest["routing"].get("pilot_k", 1)) != 1:
        return sims.max(axis=1)
    labels = ws.pilot_labels.set_index("row")["label"].reindex(rows).fillna("").to_numpy()
    datasets = ws.queries.set_index("row").loc[rows, "dataset"].to_numpy()
    pilots = ws.pilots
    for j, (ds, expert) in enumerate(zip(pilots["dataset"], pilots["expert"])):
        members = np.flatnonzero((datasets == ds) & (labels == expert))
        if len(members) < 2:
            continue
        total = emb[members].sum(axis=0)
        rest = total[None, :] - emb[members]  # the group's sum without each member
        rest /= np.maximum(np.linalg.norm(rest, axis=1, keepdims=True), 1e-12)
        sims[members, j] = (emb[members] * rest).sum(axis=1)
    return sims.max(axis=1)


OOD_PERCENTILE = 5.0


def out_of_domain(ws: Workspace, best: float, low: float = OOD_PERCENTILE) -> dict:
    """A typed query's best similarity to any pilot centroid against the pilot queries' own best similarities:
    best, percentile (share of pilot queries at or below it, %), the `low`-th percentile, the test queries'
    percentile too, and `likely_ood` (below the `low`-th percentile of pilot queries)."""
    ref = pilot_best_similarity(ws, "pilot")
    test = pilot_best_similarity(ws, "eval")
    if not len(ref):
        return {"best": float(best), "percentile": float("nan"), "threshold": float("nan"),
                "test_percentile": float("nan"), "likely_ood": False, "pilots": 0}
    threshold = float(np.percentile(ref, low))
    return {"best": float(best), "percentile": float(100 * np.mean(ref <= best)), "threshold": threshold,
            "test_percentile": float(100 * np.mean(test <= best)) if len(test) else float("nan"),
            "likely_ood": bool(best < threshold), "pilots": int(len(ref)), "low": float(low),
            "median": float(np.median(ref))}


# --- Slices, wins/ties/losses, and the pages' consistent views (issue 13) -----------------------------------------
def slice_options(ws: Workspace) -> dict[str, pd.DataFrame]:
    """Every metadata field a slice can be taken by (`kind`, then the workspace's `meta:` fields) -> its values on
    the evaluated queries with their counts (analysis.metadata_values)."""
    from .analysis import metadata_values

    return {f: metadata_values(ws, f) for f in ws.metadata_fields}


def slice_label(slice_by: tuple[str, str] | None) -> str:
    """A slice in words for the page (plain text: escape it before drawing)."""
    if not slice_by:
        return "all test queries"
    field, value = slice_by
    return f"{field} = {value}" if value != "" else f"no {field}"


def overview_table(ws: Workspace, measure: str, reference: str | None = None, with_marks: bool = True,
                   slice_by: tuple[str, str] | None = None, resamples: int = 2000) -> dict:
    """The Overview: the dataset x strategy table (on a slice of the queries if given) with every real strategy
    tied for best in bold (at the shown precision), the significance marks, the instance-oracle gap (negative
    where the oracle, which picks each query's expert by nDCG@10, scores below a real strategy under `measure`:
    marked †), the number of queries per column, and its Markdown (names escaped). Keys: table, best, gap,
    negative_gap, queries, marks, markdown."""
    from .analysis import marks as sig_marks
    from .analysis import significance_table, slice_rows, tied_best

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
    for s in table.columns:
        cells = [code(s)]
        for col in table.index:
            text = x100(table.loc[col, s]) + marks.get((col, s), "")
            cells.append(f"**{text}**" if s in best[col] else text)
        lines.append("| " + " | ".join(cells) + " |")
    if oracle:
        lines.append("| *gap: " + md(oracle) + " − best* | " + " | ".join(
            x100(gap[c]) + (" †" if c in negative else "") for c in table.index) + " |")
    return {"table": table, "best": best, "gap": gap, "negative_gap": negative, "queries": queries, "marks": marks,
            "reference": reference, "markdown": "\n".join(lines)}


def win_tie_loss_table(ws: Workspace, measure: str, reference: str | None = None,
                       slice_by: tuple[str, str] | None = None) -> dict:
    """Per-query wins / ties / losses of every strategy against `reference` (analysis.win_tie_loss), as a wide
    frame (strategies x datasets + all queries, cells 'W / T / L') and as Markdown (names escaped)."""
    from .analysis import ALL_QUERIES, win_tie_loss

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
    rows = [{"dataset": d, "strategy": s, "score": 100 * t.loc[d, s], "description": desc.get(s, "")}
            for d in t.index for s in strategies if s in t.columns]
    return pd.DataFrame(rows, columns=["dataset", "strategy", "score", "description"])


def sliced_overview_csv(ws: Workspace, measure: str, slice_by: tuple[str, str] | None = None) -> str:
    t = summary(ws, measure, slice_by=slice_by).T * 100
    t.index.name = "strategy"
    return t.round(1).to_csv()


def decisions_view(ws: Workspace, strategy: str, skip_all_ties: bool = False, measure: str = "nDCG@10") -> dict:
    """Everything the Routing decisions page draws, over one set of queries (all test queries, or those where not
    every expert of the strategy's choice set ties): `queries` (analysis.query_table rows kept), `experts` (the
    choice set, analysis.choice_set), `shares` (dataset x encoder share of the kept queries sent to each encoder,
    mixtures by weight), `oracle_shares` (dataset x expert: the instance oracle over the same choice set, a query's
    share split equally among its tied-best experts, analysis.oracle_weights), `report` (per dataset accuracy, regret, all_tie share, queries; the
    average row: the mean over datasets, and the total of queries), `confusion` (oracle x routed counts, a
    mixture by its largest weight), `pairs` (every (oracle, routed) pair of wrongly routed queries, most frequent
    first), `left_out` (queries where every expert ties, when they are left out)."""
    from .analysis import choice_set, oracle_weights

    t = query_table(ws, strategy, measure)
    left_out = int(t["all_tie"].sum()) if skip_all_ties else 0
    if skip_all_ties:
        t = t[~t["all_tie"]]
    experts = choice_set(ws, strategy)
    d = ws.decisions[ws.decisions["strategy"] == strategy].set_index("row").reindex(t.index)
    weights = d[[f"weight:{e}" for e in ws.encoders]].set_axis(ws.encoders, axis=1).assign(dataset=t["dataset"])
    shares = weights.groupby("dataset").mean().reindex(ws.datasets)
    shares = shares.loc[:, [e for e in ws.encoders if e in experts or (shares[e] > 0).any()]].fillna(0.0)
    oracle = oracle_weights(ws, strategy, measure).reindex(t.index).assign(dataset=t["dataset"])
    oracle_shares = oracle.groupby("dataset").mean().reindex(index=ws.datasets, columns=experts).fillna(0.0)
    g = t.groupby("dataset", sort=False)
    report = pd.DataFrame({"accuracy": g["correct"].mean(), "regret": g["regret"].mean(),
                           "all_tie": g["all_tie"].mean(), "queries": g.size()}).reindex(ws.datasets)
    report["queries"] = report["queries"].fillna(0).astype(int)
    average = report[["accuracy", "regret", "all_tie"]].mean(axis=0)
    report.loc[AVERAGE] = [average["accuracy"], average["regret"], average["all_tie"], int(report["queries"].sum())]
    report["queries"] = report["queries"].astype(int)
    order = [e for e in ws.encoders if e in set(t["oracle"]) | set(t["primary"])]
    conf = pd.crosstab(t["oracle"], t["primary"]).reindex(index=order, columns=order, fill_value=0)
    wrong = t[~t["correct"]].drop(columns="routed").rename(columns={"primary": "routed"})
    if wrong.empty:
        pairs = pd.DataFrame(columns=["oracle", "routed", "queries", "mean_regret", "example"])
    else:
        pg = wrong.groupby(["oracle", "routed"], sort=False)
        pairs = pd.DataFrame({"queries": pg.size(), "mean_regret": pg["regret"].mean(),
                              "example": pg["text"].first()}).reset_index()
        pairs = pairs.sort_values(["queries", "mean_regret"], ascending=False, kind="stable").reset_index(drop=True)
    return {"queries": t, "experts": experts, "shares": shares, "oracle_shares": oracle_shares, "report": report,
            "confusion": conf, "pairs": pairs, "left_out": left_out}


def metadata_columns(ws: Workspace) -> dict[str, str]:
    """Column name in the error table -> metadata field: `kind`, then `meta:<field>` for every other field."""
    return {("kind" if f == "kind" else f"meta:{f}"): f for f in ws.metadata_fields}


def error_view(ws: Workspace, strategy: str, measure: str = "nDCG@10", datasets: list[str] | None = None,
               wrong_only: bool = False, margin_below: float | None = None, hurt_only: bool = False,
               skip_all_ties: bool = False, metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> pd.DataFrame:
    """error_table with every metadata field as a column (`kind`, `meta:<field>`) and filtered by `metadata`:
    ((field, (value, ...)), ...) keeps the queries whose field takes one of the values (an empty tuple: any)."""
    t = error_table(ws, strategy, measure, datasets, wrong_only, margin_below, hurt_only, skip_all_ties)
    for column, field in metadata_columns(ws).items():
        if column != "kind":
            t[column] = ws.metadata(field).to_numpy()[t.index.to_numpy()]
    for field, values in metadata:
        if values and field in ws.metadata_fields:
            column = "kind" if field == "kind" else f"meta:{field}"
            t = t[t[column].astype(str).isin([str(v) for v in values])]
    return t

