"""The Query inspector page's data: one query's decisions, scores and side-by-side rankings; two strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..scores import points
from ..names import SystemName
from ..workspace import Workspace
from .base import Page, UrlParam, register_page
from .common import COMPARE, MEASURE, STRATEGY, default_strategy, margin_text, strategy_families, strategy_order
from .mixing import contributions, decision_labels


def query_info(ws: Workspace, row: int) -> dict:
    q = ws.queries.iloc[row]
    return {"row": int(row), "qid": q["qid"], "dataset": q["dataset"], "role": q["role"], "text": q["text"],
            "kind": q["kind"]}


def pilot_similarity(ws: Workspace, emb: np.ndarray) -> pd.DataFrame:
    """Similarity of one base embedding to every pilot centroid: pilot, dataset, expert, size, similarity."""
    return ws.pilots.assign(similarity=ws.pilot_centroids @ np.asarray(emb, dtype=np.float32))


def query_pilot_similarity(ws: Workspace, row: int) -> pd.DataFrame:
    return pilot_similarity(ws, ws.embeddings("base")[row])


def query_decisions(ws: Workspace, row: int, measure: str | None = None) -> pd.DataFrame:
    """Every strategy's decision on one evaluated query: strategy, family, chosen (an encoder, or 'mixture'),
    decision (the chosen expert, or 'mix: a 0.60 · b 0.40' for a mixture), margin, score, weights."""
    measure = ws.measure(measure)
    d = ws.decision_rows(rows=[row]).set_index("strategy")
    sm = ws.strategy_metric_rows(rows=[row]).set_index("strategy")[measure]
    fam = strategy_families(ws)
    out = pd.DataFrame({"strategy": ws.strategies})
    out["family"] = out["strategy"].map(fam)
    out["chosen"] = out["strategy"].map(d["chosen"])
    out["decision"] = out["strategy"].map(decision_labels(ws, d)) if len(d) else None
    out["margin"] = out["strategy"].map(d["margin"])
    out["score"] = out["strategy"].map(sm)
    weights = [c for c in d.columns if c.startswith("weight:")]
    out["weights"] = [", ".join(f"{c[7:]} {d.loc[s, c]:.2f}" for c in weights if d.loc[s, c] > 0)
                      if s in d.index else "" for s in out["strategy"]]
    return out


def encoder_scores(ws: Workspace, row: int) -> pd.DataFrame:
    """Each system's per-query metrics on one query (index = encoder, then run read from a file)."""
    m = ws.metric_rows(rows=[row]).set_index("system")
    return m[ws.measures].reindex(ws.systems)


def oracle_expert(ws: Workspace, row: int, measure: str | None = None) -> str | None:
    measure = ws.measure(measure)
    s = encoder_scores(ws, row)[measure].reindex(ws.candidates)
    return None if s.isna().all() else str(s.idxmax())


def column_options(ws: Workspace, row: int, strategy: str) -> dict[str, tuple[str, str]]:
    """Column key -> (label, system) for the side-by-side rankings: 'routed' (by `strategy`), 'base', 'oracle'
    (the query's best expert), then every other system by name: the encoders, and every run read from a file that
    ranks the query's dataset (with a second workspace compared, its systems too, as B:<name>). Keys are stable, so
    they can live in the URL."""
    out = {}
    if len(ws.decision_rows([strategy], [row])):
        system = ws.strategy_system(strategy, row)
        what = ws.strategy_info(strategy).get("group") in ("mix", "lexical")  # runs fused, not adapters merged
        out["routed"] = (f"routed by {strategy} → {system.replace('mix:', 'fusion of ' if what else 'merge of ')}",
                         system)
    out["base"] = ("base", "base")
    oracle = oracle_expert(ws, row)
    if oracle:
        out["oracle"] = (f"oracle expert ({oracle})", oracle)
    dataset, files = ws.queries.iloc[row]["dataset"], ws.external_datasets
    for e in ws.systems[1:]:
        if e not in files:
            out[e] = (e, e)
        elif dataset in files[e]:
            out[e] = (f"{e} (run file)", e)
    return out


def column_score(ws: Workspace, system: str, row: int, measure: str) -> float:
    name = SystemName.parse(system, ws.systems)
    if name.kind == "mix":
        hit = ws.strategy_metric_rows([name.target], [row])
    else:
        hit = ws.metric_rows([system], [row])
    return float(hit[measure].iloc[0]) if len(hit) else float("nan")


def side_by_side(ws: Workspace, row: int, systems: dict[str, str], depth: int = 10, measure: str | None = None
                 ) -> dict:
    """Rankings of one query under several systems: {'rankings': label -> frame (rank, doc_id, title, text,
    score, grade), 'scores': label -> per-query metrics, 'moves': long frame of every judged-relevant document's
    rank in each column (rank = None when it is below the stored run depth)}."""
    measure = ws.measure(measure)
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


def decision_table(ws: Workspace, row: int, measure: str | None = None) -> pd.DataFrame:
    """query_decisions in strategy_order: strategy, chosen (the expert, or the mixture's weights: 'mix: a 0.60 ·
    b 0.40'), score (×100, one decimal), margin (text, '–' when none), weights, family."""
    measure = ws.measure(measure)
    d = query_decisions(ws, row, measure).set_index("strategy").reindex(strategy_order(ws)).reset_index()
    return pd.DataFrame({"strategy": d["strategy"], "chosen": d["decision"], "score": points(d["score"]),
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
    from ..analysis import per_query_matrix

    first = int(ws.eval_rows(dataset)["row"].iloc[0])
    if "base" not in ws.strategies or strategy not in ws.strategies:
        return first
    m = per_query_matrix(ws, measure or ws.measures[0], dataset).sort_index()
    gain = (m[strategy] - m["base"]).fillna(0.0)
    return int(gain.index[int(np.argmax(gain.to_numpy()))]) if len(gain) else first


def strategy_pair(ws: Workspace, a: str, b: str, measure: str | None = None) -> pd.DataFrame:
    """Every evaluated query under two strategies: row, qid, dataset, kind, text, chosen_a, chosen_b (an
    encoder, or 'mixture'), score_a, score_b (fractions), delta = score_b − score_a, and outcome ('B better',
    'A better', 'tie')."""
    measure = ws.measure(measure)
    q = ws.eval_rows().set_index("row")[["qid", "dataset", "kind", "text"]]
    sm, d = ws.strategy_metric_rows([a, b]), ws.decision_rows([a, b])
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


def query_strategy(ws: Workspace, strategy: str, row: int, measure: str | None = None) -> dict:
    """One strategy on one query: chosen, decision (in words), margin (text), weights, score (fraction), system
    (its run)."""
    measure = ws.measure(measure)
    d = query_decisions(ws, row, measure).set_index("strategy")
    if strategy not in d.index or pd.isna(d.loc[strategy, "chosen"]):  # no decision of it on this query
        return {}
    r = d.loc[strategy]
    return {"strategy": strategy, "chosen": r["chosen"], "decision": r["decision"], "margin": margin_text(r["margin"]),
            "weights": r["weights"],
            "score": float(r["score"]), "system": ws.strategy_system(strategy, row)}


# --- the page -------------------------------------------------------------------------------------------------
VIEWS = {"rankings": "Rankings side by side", "compare": "Two strategies (A vs B)"}
COLOUR_BY = {"dataset": "dataset", "a": "expert routed by A", "b": "expert routed by B", "outcome": "who wins"}
COMPARE_DEPTH = 10


def _eval_rows(ws: Workspace, v: dict) -> list[int]:
    return ws.eval_rows(v["dataset"])["row"].astype(int).tolist() if v.get("dataset") else []


def _default_row(ws: Workspace, v: dict) -> int | None:
    rows = _eval_rows(ws, v)
    return showcase_row(ws, v["dataset"], v["strategy"]) if rows else None


def _columns(ws: Workspace, v: dict) -> list[str]:
    return list(column_options(ws, v["row"], v["strategy"])) if v.get("row") is not None else []


def _default_a(ws: Workspace, v: dict) -> str:
    reference = ws.manifest.get("reference", "base")
    return reference if reference in ws.strategies else ws.strategies[0]


def _default_b(ws: Workspace, v: dict) -> str:
    return v["strategy"] if v["strategy"] != v["a"] else default_strategy(ws)


def _row_number(text: str) -> int:
    return int(text.strip()[:40])


def _describe_row(ws: Workspace, row: int) -> str:
    q = ws.queries.iloc[int(row)]
    return f"{q['qid']} of {q['dataset']} (row {int(row)})"


def entering(ws: Workspace, raw: dict, url: dict) -> dict:
    """A row the page is opened on (by a link or from another page) picks its dataset."""
    row, _ = inspect_row(ws, raw.get("row"))
    if row is not None:
        raw = {**raw, "dataset": str(ws.queries.iloc[row]["dataset"])}
    return raw


def _rankings(ws: Workspace, v: dict) -> dict | None:
    options = column_options(ws, v["row"], v["strategy"])
    systems = {options[k][0]: options[k][1] for k in v["cols"] if k in options}
    if len(systems) < 2:
        return None
    return {"columns": {options[k][0]: k for k in v["cols"] if k in options},
            **side_by_side(ws, v["row"], systems, v["depth"], v["measure"])}


def _compare(ws: Workspace, v: dict) -> dict:
    sides = {side: query_strategy(ws, s, v["row"], v["measure"]) for side, s in (("A", v["a"]), ("B", v["b"]))}
    systems = {f"{side} · {v[side.lower()]}": d["system"] for side, d in sides.items() if d}
    pair = strategy_pair(ws, v["a"], v["b"], v["measure"])
    return {"sides": sides, "rankings": side_by_side(ws, v["row"], systems, COMPARE_DEPTH, v["measure"])
            if systems else None, "pair": pair, "counts": pair_counts(pair), "waterfall": _waterfall(ws, v)}


def _waterfall(ws: Workspace, v: dict) -> dict:
    """Every test query's B − A, sorted (views.waterfall; the queries both score: a run read from a file only on
    the datasets it ranks)."""
    from .waterfall import difference_waterfall

    return difference_waterfall(ws, v["a"], v["b"], v["measure"])


def data(ws: Workspace, v: dict) -> dict:
    """One test query: who it is, its similarity to every expert's pilots, every strategy's decision (scored by
    the page's measure), then the rankings side by side or the two strategies A and B (on it and on every query),
    and the document being read."""
    row = v["row"]
    if row is None:
        return {"query": None}
    out = {"query": query_info(ws, row), "similarity": query_pilot_similarity(ws, row),
           "decisions": decision_table(ws, row, v["measure"]),
           "routed": query_strategy(ws, v["strategy"], row, v["measure"]),
           "contributions": contributions(ws, v["strategy"], row, v["depth"])}
    if v["view"] == "compare":
        out["compare"] = _compare(ws, v)
        shown = out["compare"]["rankings"]
    else:
        out["rankings"] = shown = _rankings(ws, v)
    docs = [d for r in (shown["rankings"].values() if shown else []) for d in r["doc_id"]]
    judged = ws.qrels(out["query"]["dataset"], "eval").get(out["query"]["qid"], {})
    out["readable"] = list(dict.fromkeys([*docs, *judged]))
    out["judged"] = judged
    out["doc"] = document(ws, out["query"]["dataset"], v["doc"]) if v["doc"] in out["readable"] else None
    return out


PAGE = register_page(Page(
    "inspector", "Query inspector", ":material/search:", "explorer/ui/inspector.py", data,
    (COMPARE, UrlParam("dataset", choices=lambda ws, v: ws.datasets, default=lambda ws, v: ws.datasets[0], in_url=True,
              doc="the dataset whose test queries the query picker lists"),
     STRATEGY, MEASURE,
     UrlParam("row", choices=_eval_rows, default=_default_row, cast=_row_number, shared=True, in_url=True,
              doc="the test query (its row in queries.parquet); default: where the strategy gains most over base",
              explain=lambda ws, raw: inspect_row(ws, raw)[1], describe=_describe_row),
     UrlParam("view", choices=lambda ws, v: list(VIEWS), default="rankings", doc="rankings side by side, or A vs B"),
     UrlParam("cols", "multi", _columns, lambda ws, v: [k for k in ("routed", "base", "oracle")
                                                        if k in _columns(ws, v)],
              "the rankings side by side (2 to 4): routed, base, oracle or an expert's name", max_items=4),
     UrlParam("depth", "int", default=10, min=5, max=30, doc="documents per ranking"),
     UrlParam("a", choices=lambda ws, v: ws.strategies, default=_default_a, shared=True, doc="strategy A"),
     UrlParam("b", choices=lambda ws, v: ws.strategies, default=_default_b, shared=True, doc="strategy B"),
     UrlParam("by", choices=lambda ws, v: list(COLOUR_BY), default="dataset", doc="what colours the A/B scatter"),
     UrlParam("doc", "text", default=None, max_length=512, doc="the document open in the reader (its id)")),
    entering=entering, compares=True,
    caption="One test query: its pilots, every strategy's decision, rankings side by side, or A against B.", order=40))
