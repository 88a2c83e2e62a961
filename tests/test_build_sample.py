"""End to end on the sample benchmark: one build, then everything read back from the workspace."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import ir_measures
import numpy as np
import pytest

from explorer.analysis import WhatIf, query_table, routing_report, selection_matrix, summary
from explorer.cli import main
from explorer.export import strategy_run
from tests.conftest import ROOT
from explorer.routing import ROUTERS

from .test_evaluation import reference_metrics


def _cli(*args) -> str:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(list(args)) == 0
    return buffer.getvalue()


def test_eval_json_has_every_strategy_on_every_dataset(sample_workspace):
    ws = sample_workspace
    out = json.loads(_cli("eval", str(ws.path), "--json"))
    assert set(out) == set(ws.datasets) and len(out) >= 5
    variants = {v["name"] for v in ws.manifest["routing"]["variants"]}
    assert variants == {"pilot-mean/first", "pilot-mean/skip-all", "pilot-mean/soft", "pilot-mean/hybrid"}
    singles = [e["name"] for e in ws.experts if not e["multi_task"]]  # every expert, routing candidate or not
    expected = set(ROUTERS) | {"base", "multi-task"} | {f"fixed:{e}" for e in singles} | variants
    for ds, by_strategy in out.items():
        assert set(by_strategy) == expected
        for values in by_strategy.values():
            assert set(values) == {"nDCG@10", "R@100", "RR@10", "AP"}
            assert all(0.0 <= v <= 1.0 for v in values.values())


def test_eval_table_prints_scores_x100(sample_workspace):
    text = _cli("eval", str(sample_workspace.path), "--resamples", "200")
    table = summary(sample_workspace, "nDCG@10")
    assert "x100" in text and "pilot-mean" in text
    assert f"{100 * table.at['average', 'base']:.1f}" in text


def test_metrics_equal_an_independent_computation_on_the_stored_runs(sample_workspace):
    ws = sample_workspace
    for strategy in ("base", "pilot-mean", "prototype-merge"):
        for ds in ws.datasets[:3]:
            run = strategy_run(ws, strategy, ds)
            qrels = ws.qrels(ds)
            stored = ws.strategy_metrics[ws.strategy_metrics["strategy"] == strategy].merge(
                ws.queries[["row", "qid", "dataset"]], on="row")
            stored = stored[stored["dataset"] == ds].set_index("qid")
            for qid in qrels:
                ref = reference_metrics(qrels[qid], run[qid])
                for m, v in ref.items():
                    assert stored.at[qid, m] == pytest.approx(v, abs=1e-9), (strategy, ds, qid, m)
            agg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)
            assert summary(ws).at[ds, strategy] == pytest.approx(agg[ir_measures.nDCG @ 10], abs=1e-9)


def test_manifest_records_the_build(sample_workspace):
    m = sample_workspace.manifest
    assert m["format_version"] == 3 and m["base_model"]["name"] == "bundled"
    assert {d["name"] for d in m["datasets"]} == set(sample_workspace.datasets)
    assert all(not d["ignore_identical_ids"] for d in m["datasets"])
    assert "torch" in m["versions"] and "peft" in m["versions"]
    assert m["candidates"] == [e["name"] for e in m["experts"] if not e["multi_task"] and e["candidate"]]
    assert {e["kind"] for e in m["experts"]} == {"lora", "prefix", "query-adapter", "bm25"}


def test_expert_cards_and_adapters(sample_workspace):
    ws = sample_workspace
    for e in ws.experts:
        card = ws.expert_card(e["name"])
        if "lexical" in e["capabilities"]:  # BM25: nothing trained, no adapter, its settings on its card
            assert card["origin"] == "indexed" and card["hyper_parameters"]["stemmer"] == "english"
            assert not (ws.adapter_dir(e["name"]) / "adapter_model.safetensors").exists()
            continue
        assert card["pairs"] > 0 and card["steps"] > 0 and len(card["loss_curve"]) == card["steps"]
        hp = card["hyper_parameters"]
        if e["kind"] == "lora":  # r=8 on query/key/value of 6 layers: 6 * 3 * 2 * 8 * 384
            assert hp["r"] == 8 and card["trainable_parameters"] == 110592
        elif e["kind"] == "prefix":  # a key and a value per virtual token in each of 6 layers
            assert card["trainable_parameters"] == hp["virtual_tokens"] * 6 * 2 * 384 == 36864
        else:  # ERA: only the linear map from its own encoder into the base space is trained
            assert card["trainable_parameters"] == hp["encoder_dim"] * 384 and hp["encoder"] == "bundled:layers=3"
        assert (ws.adapter_dir(e["name"]) / "adapter_model.safetensors").is_file()
    multi = ws.expert_card("multi-task")
    assert set(multi["datasets"]) == set(ws.datasets)


def test_hard_routing_is_a_selection_of_precomputed_runs(sample_workspace):
    ws = sample_workspace
    d = ws.decisions[ws.decisions["strategy"] == "pilot-mean"]
    metrics = ws.metrics.set_index(["system", "row"])["nDCG@10"]
    sm = ws.strategy_metrics[ws.strategy_metrics["strategy"] == "pilot-mean"].set_index("row")["nDCG@10"]
    for row, chosen in zip(d["row"], d["chosen"]):
        assert sm[row] == metrics[(chosen, row)]


def test_oracles_bound_the_routers(sample_workspace):
    table = summary(sample_workspace)
    routers = [s for s in sample_workspace.strategies if s != "instance-oracle"]
    assert (table["instance-oracle"].to_numpy()[:, None] >= table[routers].to_numpy() - 1e-12).all()
    report = routing_report(sample_workspace, "instance-oracle")
    assert (report["accuracy"] == 1.0).all() and (report["regret"].abs() < 1e-12).all()
    assert report["queries"].iloc[-1] == len(sample_workspace.eval_rows())  # the average row counts every query


def test_selection_matrix_rows_sum_to_one(sample_workspace):
    for strategy in ("pilot-mean", "prototype-merge", "base"):
        m = selection_matrix(sample_workspace, strategy)
        assert np.allclose(m.sum(axis=1), 1.0)
    assert list(selection_matrix(sample_workspace, "base").columns) == ["base"]


def test_query_table_regret_is_oracle_minus_routed(sample_workspace):
    t = query_table(sample_workspace, "pilot-mean")
    assert np.allclose(t["regret"], t["oracle_score"] - t["routed_score"])
    assert (t["regret"] >= -1e-12).all()
    assert set(t["kind"]) >= {"plain", "ambiguous", "cross-domain"}


def test_whatif_with_every_expert_reproduces_the_build(sample_workspace):
    ws = sample_workspace
    table, _ = WhatIf(ws).run([e["name"] for e in ws.experts])
    built = summary(ws)
    for strategy in table.columns:
        assert np.allclose(table[strategy], built[strategy], atol=1e-12), strategy


def test_whatif_without_an_expert_never_uses_it(sample_workspace):
    ws = sample_workspace
    off = ws.candidates[0]
    table, choices = WhatIf(ws).run([e["name"] for e in ws.experts if e["name"] != off])
    column = ws.encoders.index(off)
    assert f"fixed:{off}" not in table.columns
    for strategy, chosen in choices.items():
        assert column not in chosen.tolist(), strategy
    assert (table["instance-oracle"] <= summary(ws)["instance-oracle"] + 1e-12).all()


def test_whatif_with_every_domain_expert_off_falls_back_to_the_base_model(sample_workspace):
    ws = sample_workspace
    multitask = [e["name"] for e in ws.experts if e["multi_task"]]
    table, choices = WhatIf(ws).run(multitask)
    base = summary(ws)["base"]
    for strategy, chosen in choices.items():
        if not strategy.startswith("fixed:") and strategy not in ("multi-task",):
            assert set(chosen.tolist()) <= {0}, strategy
            assert np.allclose(table[strategy], base, atol=1e-12), strategy


def test_export_writes_trec_runs_that_trec_eval_scores_identically(sample_workspace, tmp_path):
    _cli("export", str(sample_workspace.path), "--out", str(tmp_path))
    ws = sample_workspace
    ds = ws.datasets[1]
    run = ir_measures.read_trec_run(str(tmp_path / "runs" / f"{ds}.pilot-mean.trec"))
    agg = ir_measures.calc_aggregate([ir_measures.AP, ir_measures.RR @ 10], ws.qrels(ds), run)
    table_ap, table_rr = summary(ws, "AP"), summary(ws, "RR@10")
    assert agg[ir_measures.AP] == pytest.approx(table_ap.at[ds, "pilot-mean"], abs=1e-9)
    assert agg[ir_measures.RR @ 10] == pytest.approx(table_rr.at[ds, "pilot-mean"], abs=1e-9)
    assert (tmp_path / "per_query.pilot-mean.csv").is_file()
    assert (tmp_path / "runs" / f"{ds}.pilot-mean_skip-all.trec").is_file()
    assert len(list((tmp_path / "runs").glob("*.trec"))) == len(ws.strategies) * len(ws.datasets)


def test_eval_routing_view_reports_accuracy_and_regret(sample_workspace):
    text = _cli("eval", str(sample_workspace.path), "--routing")
    oracle = next(line for line in text.splitlines() if line.startswith("instance-oracle"))
    assert oracle.count("100.0 /  0.0") == len(sample_workspace.datasets) + 1
    merged = query_table(sample_workspace, "prototype-merge")
    mixtures = merged[merged["routed"] == "mixture"]
    assert (mixtures["primary"].isin(sample_workspace.candidates)).all()


def test_ddr_is_judged_against_the_oracle_over_its_prefix_modules(sample_workspace):
    """DDR mixes prefix modules, never the LoRA candidates: its accuracy is against the best prefix module."""
    ws = sample_workspace
    prefixes = [e["name"] for e in ws.experts if e["kind"] == "prefix"]
    t = query_table(ws, "ddr-soft")
    scores = ws.metrics[ws.metrics["system"].isin(prefixes)].pivot(index="row", columns="system", values="nDCG@10")
    scores = scores.loc[t.index, prefixes]
    assert set(t["primary"]) <= set(prefixes) and set(t["oracle"]) <= set(prefixes)
    best = scores.to_numpy() >= scores.max(axis=1).to_numpy()[:, None] - 1e-9
    expected = best[np.arange(len(t)), [prefixes.index(p) for p in t["primary"]]]
    assert (t["correct"].to_numpy() == expected).all() and 0 < expected.mean() < 1
    assert np.allclose(t["regret"], scores.max(axis=1) - t["routed_score"])


def test_the_config_given_to_build_is_not_changed(sample_workspace, tmp_path):
    """build() fills the multi-task expert's sources into a copy: the BuildConfig it was given is as it was (a
    second build from the same object is the same build)."""
    import copy
    from dataclasses import asdict

    from explorer.build import build
    from explorer.config import load_config

    cfg = load_config(ROOT / "sample_data" / "sample.toml")
    multi = next(e for e in cfg.experts if e.multi_task)
    assert multi.sources == []  # the config names no sources for it: the build gives it the union
    before = copy.deepcopy(asdict(cfg))
    ws = build(cfg, tmp_path / "again", progress=False)
    assert asdict(cfg) == before
    card = ws.expert_card(multi.name)
    assert {s["dataset"] for s in card["sources"]} == {d.name for d in cfg.datasets}
