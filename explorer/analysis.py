"""Read-side analysis over a workspace: aggregate tables, significance, routing diagnostics and the what-if engine.

Hard routing is a selection among runs computed at build time, so every function here is array arithmetic over
stored tables: no model is touched.
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

import numpy as np
import pandas as pd

from .cohort import COHORT_FIELD, cohort_rows
from .data import JUDGED_TRAIN
from .evaluation import per_query, run_dict, significance
from .fusion import pool_of, run_arrays
from .pilot import FIXED_RULES
from .rankmetrics import evaluate_ranks, judged_columns, judgements_for, supported
from .routing import Decision, RoutingContext, all_strategies, chosen_settings, routing_context
from .workspace import Workspace

AVERAGE = "average"
ZERO_SHOT_AVERAGE = "zero-shot average"  # a summary row only in workspaces with evaluate-only datasets


Slice = tuple[str, str]  # (metadata field, value): the evaluated queries whose field has that value


def metadata_values(ws: Workspace, field: str) -> pd.DataFrame:
    """The values one metadata field takes on the evaluated queries: value, queries (count), most frequent first
    ("" = queries without the field)."""
    values = ws.metadata(field)[ws.queries["role"] == "eval"]
    counts = values.value_counts(sort=False)
    out = pd.DataFrame({"value": counts.index.astype(str), "queries": counts.to_numpy()})
    return out.sort_values(["queries", "value"], ascending=[False, True], kind="stable").reset_index(drop=True)


def slice_rows(ws: Workspace, field: str, value: str) -> np.ndarray:
    """Rows (positions in queries.parquet) of the evaluated queries whose metadata `field` equals `value` (a
    string, as the workspace stores it; "" selects the queries without the field). KeyError for an unknown field.
    The field cohort.COHORT_FIELD takes a cohort's text as its value: the cohort's rows (CohortError if unreadable)."""
    if field == COHORT_FIELD:
        return cohort_rows(ws, value)
    values = ws.metadata(field)
    keep = (ws.queries["role"] == "eval").to_numpy() & (values == str(value)).to_numpy()
    return ws.queries["row"].to_numpy()[keep]


def _sliced(frame: pd.DataFrame, ws: Workspace, slice_by: Slice | None) -> pd.DataFrame:
    if not slice_by:
        return frame
    return frame[frame["row"].isin(slice_rows(ws, *slice_by))]


def summary(ws: Workspace, measure: str | None = None, slice_by: Slice | None = None) -> pd.DataFrame:
    """Mean per dataset (rows, plus the macro average over datasets) for every strategy (columns). With
    `slice_by` (field, value), over those evaluated queries only: a dataset without any is NaN, and the average is
    over the datasets that have some."""
    measure = ws.measure(measure)
    sm = _sliced(ws.strategy_metrics, ws, slice_by).merge(ws.queries[["row", "dataset"]], on="row")
    table = sm.pivot_table(index="dataset", columns="strategy", values=measure, aggfunc="mean")
    table = table.reindex(index=ws.datasets, columns=ws.strategies)
    zero_shot = ws.zero_shot_datasets
    table.loc[AVERAGE] = macro_average(table)
    if zero_shot:
        table.loc[ZERO_SHOT_AVERAGE] = macro_average(table.loc[zero_shot])
    return table


def macro_average(table: pd.DataFrame) -> pd.Series:
    """The mean over datasets (rows) of every column; NaN for a column without a score on a dataset where others
    have one (a run read from a file that ranks only some datasets: its mean would not be over the same ones)."""
    empty = table.isna().all(axis=1).to_numpy()[:, None]  # a dataset nobody scores on (a slice without its queries)
    partial = ~(table.notna().to_numpy() | empty).all(axis=0)
    return table.mean(axis=0).where(~partial)


def summary_columns(ws: Workspace) -> list[str]:
    """The columns of a score table: every dataset, the average, and the zero-shot average where there is one."""
    return [*ws.datasets, AVERAGE, *([ZERO_SHOT_AVERAGE] if ws.zero_shot_datasets else [])]


def judged_split_notes(ws: Workspace, measure: str | None = None) -> list[str]:
    """One line per dataset evaluated on part of its judged queries (judged_split), for every score table: how it
    was divided, and the base model on every judged query that has a score (both parts) beside the table's."""
    measure = ws.measure(measure)
    notes = []
    for d in ws.manifest["datasets"]:
        split = d.get("judged_split")
        if not split:
            continue
        rows = ws.queries.loc[ws.queries["dataset"] == d["name"], "row"]
        m = ws.metrics
        base = m[(m["system"] == "base") & m["row"].isin(rows)][measure]
        notes.append(f"{d['name']}: evaluated on {split['test']} of its {split['train'] + split['test']} judged "
                     f"{split['of']} queries; the other {split['train']} (a seeded {split['share']:.0%}, seed "
                     f"{split['seed']}) {_judged_part_use(ws, d['name'])}. Base on {len(base)} of them, "
                     f"both parts: {100 * base.mean():.1f} {measure}.")
    return notes


def _judged_part_use(ws: Workspace, dataset: str) -> str:
    """What the training part of a judged split did, from the card of the dataset's own expert: trained it, chose
    its stopping epoch (stop_split), or neither; it is always the dataset's pilot queries."""
    card = ws.expert_card(ws.own_expert[dataset]) if dataset in ws.own_expert else {}
    sources = card.get("sources") if isinstance(card.get("sources"), list) else []
    hp = card.get("hyper_parameters") if isinstance(card.get("hyper_parameters"), dict) else {}
    if any(isinstance(s, dict) and s.get("dataset") == dataset and s.get("split") == JUDGED_TRAIN for s in sources):
        return "trained its expert and are its pilot queries"
    if hp.get("stop_split") == JUDGED_TRAIN:
        return "chose its expert's stopping epoch and are its pilot queries"
    return "are its pilot queries"


def per_query_matrix(ws: Workspace, measure: str, dataset: str | None = None, slice_by: Slice | None = None
                     ) -> pd.DataFrame:
    """Rows = evaluated queries (by row), columns = strategies: the aligned per-query scores."""
    sm = _sliced(ws.strategy_metrics, ws, slice_by)
    if dataset is not None:
        rows = ws.eval_rows(dataset)["row"]
        sm = sm[sm["row"].isin(rows)]
    return sm.pivot(index="row", columns="strategy", values=measure).reindex(columns=ws.strategies)


SIGNIFICANCE_RESAMPLES = 2000  # what every table and page asks for by default, and what the build stores


def significance_table(ws: Workspace, measure: str | None = None, reference: str | None = None,
                       resamples: int = SIGNIFICANCE_RESAMPLES, slice_by: Slice | None = None) -> pd.DataFrame:
    """Per dataset, every strategy against `reference` (paired t and randomization tests, Holm across strategies).
    Columns: dataset, system, delta, p_t, p_rand, p_t_holm, p_rand_holm, significant. With `slice_by`, on that
    slice's queries of each dataset. Without a slice, the table the build stored is read when it has this measure,
    reference and number of resamples (the same function made it: seconds at 50,000 queries become milliseconds).
    Its rows with dataset = AVERAGE test the average column (average_significance)."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    if reference not in ws.strategies:
        raise ValueError(f"reference {reference!r} is not a strategy of this workspace")
    stored = None if slice_by else ws.stored_significance(measure, reference, resamples)
    if stored is None:
        return compute_significance(ws, measure, reference, resamples, slice_by)
    if not (stored["dataset"] == AVERAGE).any():  # stored by a build from before the average's rows
        stored = pd.concat([stored, average_significance(ws, measure, reference, resamples)], ignore_index=True)
    return stored


def significance_tables(ws: Workspace, reference: str) -> list[tuple[str, str, int, pd.DataFrame]]:
    """What the build stores: the significance table of every measure against the configured reference."""
    return [(m, reference, SIGNIFICANCE_RESAMPLES, compute_significance(ws, m, reference, SIGNIFICANCE_RESAMPLES))
            for m in ws.measures]


def compute_significance(ws: Workspace, measure: str, reference: str, resamples: int = SIGNIFICANCE_RESAMPLES,
                         slice_by: Slice | None = None, datasets: list[str] | None = None) -> pd.DataFrame:
    """significance_table computed from the per-query scores (what the build stores for every measure); only for
    `datasets` when given (each dataset's table is its own: Holm corrects across strategies within it), else with
    the average column's rows (average_significance)."""
    matrix = per_query_matrix(ws, measure, slice_by=slice_by)  # read once, split by dataset
    of_row = ws.queries.set_index("row")["dataset"].reindex(matrix.index).to_numpy()
    frames = []
    for ds in datasets or ws.datasets:
        m = matrix[of_row == ds]
        scored = [c for c in m.columns if m[c].notna().any()]  # a run from a file is tested where it ranks
        if reference not in scored:
            continue
        t = significance({c: m[c].to_numpy() for c in scored}, reference, resamples=resamples)
        frames.append(t.reset_index().assign(dataset=ds))
    if not frames:
        return significance({reference: np.zeros(0)}, reference).reset_index().assign(dataset=[])
    if datasets is None:
        frames.append(average_significance(ws, measure, reference, resamples, slice_by, matrix))
    return pd.concat(frames, ignore_index=True)


def macro_differences(ws: Workspace, measure: str, reference: str, slice_by: Slice | None = None,
                      matrix: pd.DataFrame | None = None) -> pd.DataFrame:
    """Evaluated rows x strategies (the reference left out): each query's difference to the reference weighted by
    N / (D n_d) (N queries, D datasets with queries, n_d those of its dataset), so that a column's plain mean is the
    macro average difference the score tables' average row shows. Only the strategies that score every query: a run
    from a file that ranks some datasets has no average (analysis.macro_average), so nothing to test there; none
    at all when the reference is such a run. `matrix`: per_query_matrix(ws, measure, slice_by=slice_by), when the
    caller has it."""
    m = per_query_matrix(ws, measure, slice_by=slice_by) if matrix is None else matrix
    m = m.loc[:, m.notna().all(axis=0)]
    if reference not in m.columns:
        return m.iloc[:, :0]
    datasets = ws.queries.set_index("row")["dataset"].reindex(m.index)
    weight = len(m) / (datasets.nunique() * datasets.map(datasets.value_counts()))
    return m.drop(columns=reference).sub(m[reference], axis=0).mul(weight.to_numpy(), axis=0)


def average_significance(ws: Workspace, measure: str, reference: str, resamples: int = SIGNIFICANCE_RESAMPLES,
                         slice_by: Slice | None = None, matrix: pd.DataFrame | None = None) -> pd.DataFrame:
    """The significance rows of the average column (dataset = AVERAGE): the paired t-test and randomization test
    over every evaluated query of every dataset at once, on the macro-weighted differences (macro_differences),
    so both test the difference the average row shows; Holm across strategies, as per dataset."""
    diffs = macro_differences(ws, measure, reference, slice_by, matrix)
    scores = {c: diffs[c].to_numpy() for c in diffs.columns}
    scores[reference] = np.zeros(len(diffs))
    return significance(scores, reference, resamples=resamples).reset_index().assign(dataset=AVERAGE)


def marks(sig: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(dataset, strategy) -> '▲' significantly better / '▼' significantly worse than the reference."""
    out = {}
    for r in sig.itertuples():
        if r.significant:
            out[(r.dataset, r.system)] = "▲" if r.delta > 0 else "▼"
    return out


ALL_QUERIES = "all queries"


def win_tie_loss(ws: Workspace, measure: str | None = None, reference: str | None = None,
                 slice_by: Slice | None = None, tolerance: float = 1e-9) -> pd.DataFrame:
    """Per dataset (and ALL_QUERIES, the sum over datasets) and strategy: on how many evaluated queries the
    strategy scores above (`wins`), level with (`ties`, within `tolerance`) and below (`losses`) the reference, as
    PyTerrier's improved/degraded counts and ranx's win-tie-loss count them. Columns: dataset, strategy, wins,
    ties, losses, queries. The reference itself is left out."""
    measure = ws.measure(measure)
    reference = reference or ws.manifest.get("reference", "base")
    if reference not in ws.strategies:
        raise ValueError(f"reference {reference!r} is not a strategy of this workspace")
    m = per_query_matrix(ws, measure, slice_by=slice_by)
    datasets = ws.queries.set_index("row")["dataset"].reindex(m.index)
    others = [s for s in ws.strategies if s != reference]
    diff = m[others].to_numpy() - m[[reference]].to_numpy()
    sign = np.where(diff > tolerance, 1, np.where(diff < -tolerance, -1, np.where(np.isnan(diff), 2, 0)))
    rows = []  # sign 2: no pair (a run read from a file on a dataset it does not rank) counts nowhere
    for ds in [*ws.datasets, ALL_QUERIES]:
        pick = np.ones(len(m), bool) if ds == ALL_QUERIES else (datasets == ds).to_numpy()
        s = sign[pick]
        for j, name in enumerate(others):
            rows.append({"dataset": ds, "strategy": name, "wins": int((s[:, j] == 1).sum()),
                         "ties": int((s[:, j] == 0).sum()), "losses": int((s[:, j] == -1).sum()),
                         "queries": int((s[:, j] != 2).sum())})
    return pd.DataFrame(rows, columns=["dataset", "strategy", "wins", "ties", "losses", "queries"])


def tied_best(table: pd.DataFrame, strategies: list[str], decimals: int = 1) -> dict[str, list[str]]:
    """Per row of `table` (a summary: rows datasets + average, columns strategies): every one of `strategies`
    whose score, as shown (x100 rounded to `decimals`), equals the best shown score; [] when none has a score."""
    out = {}
    for col in table.index:
        values = (100 * table.loc[col, [s for s in strategies if s in table.columns]]).round(decimals).dropna()
        out[col] = [s for s, v in values.items() if v == values.max()] if len(values) else []
    return out


def choice_set(ws: Workspace, strategy: str) -> list[str]:
    """The experts a strategy chooses among, against whose instance oracle it is judged, as the build recorded
    them (a workspace from before the record: the routing candidates)."""
    return list(ws.strategy_info(strategy).get("choices") or ws.candidates)


def _choice_scores(ws: Workspace, experts: list[str], measure: str | None = None) -> pd.DataFrame:
    """Evaluated rows x `experts`: each expert's own per-query score."""
    measure = ws.measure(measure)
    m = ws.metric_rows(list(experts))
    rows = pd.Index(ws.eval_rows()["row"], name="row")  # every evaluated query, even with no expert to choose
    m = m[m["row"].isin(rows)]
    return m.pivot(index="row", columns="system", values=measure).reindex(index=rows, columns=experts)


def oracle_weights(ws: Workspace, strategy: str, measure: str | None = None) -> pd.DataFrame:
    """Evaluated rows x the strategy's choice set: the instance oracle over that same choice set as weights, each
    query's weight split equally among its tied-best experts (a query where every expert ties counts for each)."""
    measure = ws.measure(measure)
    cand = _choice_scores(ws, choice_set(ws, strategy), measure)
    values = cand.to_numpy()
    best = np.isclose(values, np.nanmax(values, axis=1, keepdims=True), atol=1e-9) & ~np.isnan(values)
    return pd.DataFrame(best / np.maximum(best.sum(axis=1, keepdims=True), 1), index=cand.index, columns=cand.columns)


def weights_label(weights: Mapping[str, float]) -> str:
    """One expert's name for a hard choice; 'mix: a 0.60 · b 0.40' (largest first; '<0.01' for a weight that
    rounds to 0) for a mixture: a mixed decision is never shown as a single choice."""
    kept = sorted(((n, float(w)) for n, w in weights.items() if w > 0), key=lambda kv: -kv[1])
    if len(kept) == 1 and np.isclose(kept[0][1], 1.0):
        return kept[0][0]
    return "mix: " + " · ".join(f"{n} {w:.2f}" if w >= 0.005 else f"{n} <0.01" for n, w in kept)


def decision_labels(ws: Workspace, decisions: pd.DataFrame) -> pd.Series:
    """Each decision row (strategy, row, weight:<encoder>...) as weights_label text, indexed like `decisions`."""
    values = decisions[[f"weight:{e}" for e in ws.systems]].to_numpy(dtype=float)
    return pd.Series([weights_label(dict(zip(ws.systems, np.nan_to_num(w)))) for w in values],
                     index=decisions.index, dtype=object)


def query_table(ws: Workspace, strategy: str, measure: str | None = None) -> pd.DataFrame:
    """One row per evaluated query: routed choice (an encoder or "mixture"; `primary` is a mixture's largest-weight
    expert), its score, the oracle's over the experts it chooses among, the base's, regret, margin, and whether the
    choice is among the best."""
    measure = ws.measure(measure)
    cand = _choice_scores(ws, choice_set(ws, strategy), measure)
    best = cand.max(axis=1)
    d = ws.decision_rows([strategy]).set_index("row")
    sm = ws.strategy_metric_rows([strategy]).set_index("row")[measure]
    base = ws.metric_rows(["base"]).set_index("row")[measure]
    q = ws.eval_rows().set_index("row")
    q = q[q.index.isin(d.index)]  # the queries it decides (a run read from a file: those of its datasets)
    d = d.reindex(q.index)
    cand = cand.reindex(q.index)
    best = best.reindex(q.index)
    out = pd.DataFrame({
        "dataset": q["dataset"], "qid": q["qid"], "text": q["text"], "kind": q["kind"],
        "routed": d["chosen"], "oracle": cand.idxmax(axis=1) if cand.shape[1] else None, "routed_score": sm,
        "oracle_score": best,
        "base_score": base.reindex(q.index), "margin": d["margin"]})
    out["regret"] = out["oracle_score"] - out["routed_score"]
    weights = d[[f"weight:{e}" for e in ws.systems]].to_numpy()
    out["primary"] = np.asarray(ws.systems)[weights.argmax(axis=1)]  # a mixture is judged by its largest weight
    out["decision"] = decision_labels(ws, d)  # in words: the expert, or the mixture's weights
    is_best = np.isclose(cand.to_numpy(), best.to_numpy()[:, None], atol=1e-9)
    col = {c: j for j, c in enumerate(cand.columns)}
    out["correct"] = [bool(is_best[i, col[c]]) if c in col else False for i, c in enumerate(out["primary"])]
    out["all_tie"] = is_best.all(axis=1)
    return out


def routing_report(ws: Workspace, strategy: str, measure: str | None = None) -> pd.DataFrame:
    """Per dataset: routing accuracy against the instance oracle (any tied-best expert counts as right), mean
    regret, and the share of queries where every expert ties (accuracy is trivially 1 there)."""
    measure = ws.measure(measure)
    t = query_table(ws, strategy, measure)
    g = t.groupby("dataset", sort=False)
    out = pd.DataFrame({"accuracy": g["correct"].mean(), "regret": g["regret"].mean(),
                        "all_tie": g["all_tie"].mean(), "queries": g.size()}).reindex(ws.datasets)
    out.loc[AVERAGE] = out.mean(axis=0)  # the macro average over datasets, as the score tables do...
    out.loc[AVERAGE, "queries"] = out["queries"].drop(AVERAGE).sum()  # ...but the number of queries is their total
    return out


def selection_matrix(ws: Workspace, strategy: str) -> pd.DataFrame:
    """Dataset x encoder: the share of each dataset's queries sent to each encoder (mixtures count by weight)."""
    d = ws.decision_rows([strategy]).merge(ws.queries[["row", "dataset"]], on="row")
    cols = [f"weight:{e}" for e in ws.systems]
    m = d.groupby("dataset")[cols].mean().reindex(ws.datasets)
    m.columns = ws.systems
    return m.loc[:, (m > 0).any(axis=0)]


class WhatIf:
    """Recompute the pilot library, every hard routing decision and the per-dataset metrics for any subset of
    experts, from the stored per-encoder per-query results. Arrays are prepared once; each call is numpy only."""

    def __init__(self, ws: Workspace):
        self.ws = ws

    @cached_property
    def _arrays(self) -> dict:
        ws = self.ws
        q = ws.queries
        roles = q["role"].to_numpy()
        measures = ws.measures
        cube = np.zeros((len(ws.systems), len(q), len(measures)))
        m = ws.metrics
        enc_index = {e: i for i, e in enumerate(ws.systems)}
        cube[m["system"].map(enc_index).to_numpy(), m["row"].to_numpy()] = m[measures].to_numpy()
        ev = np.flatnonzero(roles == "eval")
        ds = q["dataset"].to_numpy().astype(object)
        base = ws.embeddings("base")
        nd = measures.index(ws.label_measure)  # the measure the build labelled pilots and chose oracles by
        stored = {}
        for name, frame in ws.decisions.groupby("strategy", sort=False):
            frame = frame.set_index("row").reindex(ev)
            stored[name] = Decision(weights=frame[[f"weight:{e}" for e in ws.systems]].to_numpy(dtype=float),
                                    scores=frame[[f"score:{e}" for e in ws.systems]].to_numpy(dtype=float),
                                    margin=frame["margin"].to_numpy(dtype=float))
        sm = ws.strategy_metrics
        strat_values = {n: f.set_index("row").reindex(ev)[measures].to_numpy() for n, f in sm.groupby("strategy")}
        return {"cube": cube, "eval": ev, "base": base, "nd": nd, "stored": stored,
                "strat_values": strat_values,
                "multitask": next((e["name"] for e in ws.experts if e["multi_task"]), None),
                "datasets_eval": ds[ev]}

    def context(self, enabled: list[str], typed: bool = False) -> RoutingContext:
        """The build's routing context with only the `enabled` experts (and the base) as candidates and own
        experts; every expert's record stays, so strategies keep their stored columns (masked ones stay masked).
        Runs read from files stay candidates, except for a `typed` query (live routing), which they never ranked."""
        a, ws = self._arrays, self.ws
        q = ws.queries
        routing = dict(ws.manifest["routing"])
        if routing.get("ties") == "auto" and routing.get("ties_chosen") in FIXED_RULES:
            routing["ties"] = routing["ties_chosen"]  # the build chose it on the pilot queries: not chosen again
        experts = set(ws.encoders[1:])
        keep = [c for c in ws.candidates if c == "base" or c in enabled or (c not in experts and not typed)]
        return routing_context(ws.systems, ws.experts, keep,
                               {d: e for d, e in ws.own_expert.items() if e in enabled}, a["base"],
                               q["dataset"].to_numpy(), q["role"].to_numpy(), a["cube"][:, :, a["nd"]].T, routing)

    @cached_property
    def _pool(self) -> dict:
        """For strategies that fuse runs: every encoder's run of the evaluated queries, gathered once (pool
        position = evaluated query), and their judgements (the what-if scores fused rankings, it routes nothing)."""
        ws, ev = self.ws, self._arrays["eval"]
        depth = int(ws.manifest.get("index", {}).get("depth", 100))
        docs, scores = run_arrays(ws.run_rows(ws.systems, ev), ws.systems, len(ws.queries), depth)
        datasets = ws.queries["dataset"].to_numpy().astype(object)[ev]
        ids = {d: ws.docs(d)["doc_id"].tolist() for d in dict.fromkeys(datasets.tolist())}
        queries = ws.queries.iloc[ev][["qid", "dataset", "role"]].assign(row=np.arange(len(ev)))
        return {"pool": pool_of(docs[:, ev], scores[:, ev], datasets, ids), "depth": depth,
                "judged": judgements_for(ws.qrels_table, queries, ids, ("eval",)), "ids": ids, "queries": queries}

    def _fused_values(self, dec: Decision, measure: str, stored: Decision, stored_values: np.ndarray) -> np.ndarray:
        """`measure` of every evaluated query under a decision whose mixtures fuse runs: a hard choice reads the
        stored metrics, a mixture the build stored as it is reads its stored value, any other mixture is fused
        here and scored from where its judged documents land (on arrays; ir_measures for other measures)."""
        a, p = self._arrays, self._pool
        chosen = dec.chosen
        values = a["cube"][np.maximum(chosen, 0), a["eval"], self.ws.measures.index(measure)].copy()
        same = np.all(dec.weights == stored.weights, axis=1)
        values[(chosen < 0) & same] = stored_values[(chosen < 0) & same]
        mixed = np.flatnonzero((chosen < 0) & ~same)
        if not len(mixed):
            return values
        if not supported(measure):
            docs, scores = p["pool"].run(dec.weights[mixed], dec.fusion, p["depth"], mixed)
            values[mixed] = self._per_query(measure, mixed, docs, scores)
            return values
        if "relevant" not in p:  # each evaluated query's judged documents among its runs' documents
            p["relevant"] = judged_columns(p["judged"], np.arange(p["pool"].shape[0]), p["pool"].union)
        cols, grades = p["relevant"]
        fused = p["pool"].fuse(dec.weights[mixed], dec.fusion, None if len(mixed) == len(chosen) else mixed)
        ranks = p["pool"].ranks_of(fused, cols[mixed])
        values[mixed] = evaluate_ranks(measure, ranks, grades[mixed], p["judged"], mixed, p["depth"])
        return values

    def _per_query(self, measure: str, at: np.ndarray, docs: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """ir_measures on fused runs, for a measure not computed on arrays."""
        q = self._pool["queries"].iloc[at]
        out = np.zeros(len(at))
        for name in dict.fromkeys(q["dataset"].tolist()):
            mine = np.flatnonzero(q["dataset"].to_numpy() == name)
            qids = q["qid"].to_numpy()[mine].tolist()
            run = run_dict(qids, self._pool["ids"][name], docs[mine], np.nan_to_num(scores[mine]))
            out[mine] = per_query(self.ws.qrels(name), run, [measure], qids)[measure].reindex(qids).fillna(0).to_numpy()
        return out

    def run(self, enabled: list[str], measure: str | None = None) -> tuple[pd.DataFrame, dict]:
        """(dataset x strategy table of `measure` with the average row, {strategy: chosen encoder column per
        evaluated query, -1 for a mixture}). Strategies whose fixed expert is switched off are left out; those
        that fuse runs fuse the experts still on again."""
        measure = self.ws.measure(measure)
        a, ws = self._arrays, self.ws
        ctx = self.context(enabled)
        mi = ws.measures.index(measure)
        ev = a["eval"]
        emb = a["base"][ev]
        cols, choices = {}, {}
        routers = all_strategies(ws.encoders, a["multitask"], ws.strategies,
                                 ws.manifest["routing"].get("variants"), chosen=chosen_settings(ws.manifest),
                                 external=ws.external_datasets)
        off = [ws.encoders.index(e) for e in ws.encoders[1:] if e not in enabled]
        for router in routers:
            if not router.available(ctx):
                continue
            if router.fusion(ctx) is not None:
                dec = router.what_if_decision(ctx, emb, a["stored"][router.name], off)
                if dec is None:
                    continue
                stored = a["stored"][router.name]
                cols[router.name] = self._fused_values(dec, measure, stored, a["strat_values"][router.name][:, mi])
                choices[router.name] = dec.chosen
                continue
            chosen = router.what_if(ctx, emb, a["stored"][router.name], off)
            if chosen is None:
                continue
            values = np.where(chosen >= 0, a["cube"][np.maximum(chosen, 0), ev, mi], a["strat_values"][router.name][:, mi])
            cols[router.name] = np.where(router.covers(a["datasets_eval"]), values, np.nan)  # a run from a file
            choices[router.name] = chosen
        frame = pd.DataFrame(cols)
        frame["dataset"] = a["datasets_eval"]
        table = frame.groupby("dataset", sort=False).mean().reindex(ws.datasets)
        table.loc[AVERAGE] = macro_average(table)
        if ws.zero_shot_datasets:
            table.loc[ZERO_SHOT_AVERAGE] = macro_average(table.loc[ws.zero_shot_datasets])
        return table, choices
