"""Issue 11's study options: evaluate-only (zero-shot) datasets stay out of every router's training data; each
strategy's choice set is recorded in the manifest; the tie rule can be chosen by cross-validation on the pilot
queries; the classifier baselines' labels are balanced; a judged split trains on part of a collection's test
queries and evaluates the rest."""

from __future__ import annotations

import re

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer import analysis, pilot
from explorer.build import build
from explorer.config import ConfigError, load_config
from explorer.routing import classifiers

from .conftest import ROOT

SAMPLE = ROOT / "sample_data"


def config(folder: Path, cache: Path, routed: list[str], zero_shot: list[str], extra: str = "") -> Path:
    """Sample domains with one short expert each (`routed`), and evaluate-only ones (`zero_shot`)."""
    text = f'''title = "zero-shot"
cache_dir = "{cache}"
[training]
epochs = 1
[layout]
umap = false
[routing]
ties = "own-dataset"
[[routing.variants]]
name = "pilot-mean/with-base"
router = "pilot-mean"
base_as_candidate = true
{extra}
'''
    for name in routed + zero_shot:
        text += f'''[[datasets]]
name = "{name}"
path = "{SAMPLE / name}"
{'role = "evaluate"' if name in zero_shot else 'train_split = "train"'}
max_eval_queries = 12
'''
    for name in routed:
        text += f'''[[experts]]
name = "{name}"
sources = [{{dataset = "{name}", source = "qrels", max_pairs = 32}}]
'''
    path = folder / f"config-{'-'.join(routed + zero_shot)}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory, trains):
    root = tmp_path_factory.mktemp("zero-shot")
    cache = root / "cache"
    plain = build(config(root, cache, ["homefix", "pycode"], []), root / "plain", progress=False)
    with_zero = build(config(root, cache, ["homefix", "pycode"], ["glossary"]), root / "with", progress=False)
    return plain, with_zero


def test_a_zero_shot_dataset_has_no_pilots_and_changes_no_routing_elsewhere(builds):
    plain, ws = builds
    assert ws.zero_shot_datasets == ["glossary"] and plain.zero_shot_datasets == []
    q = ws.queries
    assert not ((q["dataset"] == "glossary") & (q["role"] == "pilot")).any()
    assert len(ws.eval_rows("glossary")) == 12
    assert "glossary" not in set(ws.pilots["dataset"]) and "glossary" not in ws.manifest["own_expert"]
    assert ws.dataset_info("glossary")["role"] == "evaluate" and ws.dataset_info("glossary")["pilot_source"] == "none"
    # every strategy decides the other datasets' queries exactly as without the zero-shot dataset
    assert ws.strategies == plain.strategies
    key = ["dataset", "qid"]
    for s in ws.strategies:
        mine = ws.decisions[ws.decisions["strategy"] == s].merge(ws.queries[["row", *key]], on="row")
        theirs = plain.decisions[plain.decisions["strategy"] == s].merge(plain.queries[["row", *key]], on="row")
        mine = mine[mine["dataset"] != "glossary"].drop(columns="row").sort_values(key).reset_index(drop=True)
        theirs = theirs.drop(columns="row").sort_values(key).reset_index(drop=True)
        # float32 embeddings of queries encoded in batches of another composition differ by ~1e-8: a margin (a
        # difference of two similarities near 0.5) can differ by more than rtol 1e-6 while every choice is equal
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-6, atol=1e-6, obj=s)
    # the zero-shot average is its own row, and the average over every dataset is still there
    table = analysis.summary(ws)
    assert list(table.index) == ["homefix", "pycode", "glossary", analysis.AVERAGE, analysis.ZERO_SHOT_AVERAGE]
    np.testing.assert_allclose(table.loc[analysis.ZERO_SHOT_AVERAGE], table.loc["glossary"])
    np.testing.assert_allclose(table.loc[analysis.AVERAGE], table.loc[["homefix", "pycode", "glossary"]].mean())
    assert analysis.summary_columns(plain) == ["homefix", "pycode", analysis.AVERAGE]


def test_the_cli_and_paper_table_show_the_zero_shot_average(builds, capsys):
    from explorer.cli import main
    from explorer.export import paper_table

    _, ws = builds
    assert main(["eval", str(ws.path)]) == 0
    out = capsys.readouterr().out
    assert "zero-shot a" in out and "zero-shot (no expert, no pilot queries): glossary" in out
    base = analysis.summary(ws).at[analysis.ZERO_SHOT_AVERAGE, "base"]
    assert f"{100 * base:.1f}" in out.splitlines()[3]  # the base row's last column
    csv = paper_table(ws, fmt="csv").splitlines()
    assert csv[0].split(",")[:6] == ["strategy", "homefix", "pycode", "glossary", "average", "zero-shot average"]
    assert "Zero-shot average: over glossary" in paper_table(ws, fmt="markdown")


def test_each_strategy_s_choice_set_is_recorded_and_read(builds):
    _, ws = builds
    info = {s["name"]: s for s in ws.manifest["strategies"]}
    assert info["pilot-mean"]["choices"] == ["homefix", "pycode"] == ws.candidates
    assert info["pilot-mean/with-base"]["choices"] == ["base", "homefix", "pycode"]
    assert analysis.choice_set(ws, "pilot-mean/with-base") == ["base", "homefix", "pycode"]
    # the instance oracle a strategy is judged against is over its own choice set
    t = analysis.query_table(ws, "pilot-mean/with-base")
    m = ws.metrics.pivot(index="row", columns="system", values="nDCG@10")
    np.testing.assert_allclose(t["oracle_score"], m.loc[t.index, ["base", "homefix", "pycode"]].max(axis=1))


def test_zero_shot_datasets_and_no_pilots_are_declared_settings(tmp_path):
    cache = tmp_path / "cache"
    bad = config(tmp_path, cache, ["homefix"], ["glossary"])
    bad.write_text(bad.read_text().replace('sources = [{dataset = "homefix"',
                                           'sources = [{dataset = "glossary", source = "titles"}, {dataset = "homefix"'))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "'glossary' is a zero-shot dataset" in str(err.value) and 'role = "route"' in str(err.value)
    bad.write_text(bad.read_text().replace('role = "evaluate"', 'role = "evaluate"\nmax_pilot_queries = 5'))
    with pytest.raises(ConfigError, match="has no pilot queries"):
        load_config(bad)
    none = config(tmp_path, cache, ["homefix"], [])
    none.write_text(none.read_text().replace('train_split = "train"', 'train_split = "train"\nmax_pilot_queries = 0'))
    assert load_config(none).datasets[0].pilot_source == "none"
    worse = config(tmp_path, cache, ["homefix"], [])
    worse.write_text(worse.read_text().replace('train_split = "train"', 'train_split = "train"\nrole = "judge"'))
    with pytest.raises(ConfigError, match="role"):
        load_config(worse)


def _tied_pilots(seed: int = 0):
    """Two datasets, two experts: in each dataset the own expert wins a third of the queries and every query ties
    otherwise (as on real data, where about half of all pilot queries tie)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:2] * 3
    datasets = np.array(["a"] * 30 + ["b"] * 30, dtype=object)
    emb = np.concatenate([centres[0] + rng.normal(size=(30, 8)), centres[1] + rng.normal(size=(30, 8))])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = np.zeros((60, 3))
    scores[:, 1:] = 0.5
    scores[:10, 1] = 0.9  # dataset a: expert 1 wins ten, ties elsewhere
    scores[30:40, 2] = 0.9  # dataset b: expert 2 wins ten
    scores[40:60, 1] = 0.6  # ...but expert 1 is a little better on the rest of b
    return emb, scores, datasets


def test_auto_tie_rule_is_the_best_held_out_rule_on_pilot_queries():
    emb, scores, datasets = _tied_pilots()
    own = {"a": 1, "b": 2}
    rule, cv = pilot.choose_tie_rule(emb, scores, [1, 2], datasets, own, seed=3)
    assert set(cv) == set(pilot.FIXED_RULES) and rule == max(cv, key=cv.get)
    # a rule's score is the mean held-out score of pilot-mean routing with its library
    rows = np.arange(60)
    half = rows % 2 == 0
    one = pilot.held_out_score(emb, scores, [1, 2], datasets, own, "own-dataset", rows[half], rows[~half])
    assert 0.5 <= one <= 0.9
    with pytest.raises(ValueError, match="auto"):
        pilot.best_labels(scores, [1, 2], datasets, own, "auto")


def test_auto_ties_are_resolved_and_recorded_by_the_build(builds, tmp_path):
    plain, _ = builds
    cfg = config(tmp_path, Path(plain.manifest["config"]).parent / "cache", ["homefix", "pycode"], [])
    cfg.write_text(cfg.read_text().replace('ties = "own-dataset"', 'ties = "auto"'))
    ws = build(cfg, tmp_path / "auto", progress=False)
    routing = ws.manifest["routing"]
    assert routing["ties"] == "auto" and set(routing["ties_cv"]) == set(pilot.FIXED_RULES)
    assert routing["ties_chosen"] == max(routing["ties_cv"], key=routing["ties_cv"].get)
    assert routing["tie_rule"] == pilot.TIE_RULES[routing["ties_chosen"]]
    pilots = ws.queries[ws.queries["role"] == "pilot"]
    scores = ws.metrics.pivot(index="row", columns="system", values="nDCG@10").loc[pilots["row"], ws.encoders]
    expected = pilot.best_labels(scores.to_numpy(), [1, 2], pilots["dataset"].to_numpy(dtype=object),
                                 {"homefix": 1, "pycode": 2}, routing["ties_chosen"], 0)
    labels = ws.pilot_labels.set_index("row").loc[pilots["row"], "label"]
    assert list(labels) == [ws.encoders[c] if c >= 0 else "" for c in expected]


def test_balanced_keeps_as_many_of_each_label_as_the_rarest():
    y = np.array([1] * 12 + [2] * 3 + [3] * 5)
    rows = np.arange(100, 120)
    kept = classifiers.balanced(rows, y, seed=0)
    assert len(kept) == 9 and list(kept) == sorted(kept)
    assert sorted(np.unique(y[kept - 100], return_counts=True)[1]) == [3, 3, 3]
    assert list(classifiers.balanced(rows, y, seed=0)) == list(kept)
    assert list(classifiers.balanced(rows[:12], y[:12], seed=0)) == list(rows[:12])  # one label: all kept


@pytest.mark.parametrize("balance", [True, False])
def test_classification_head_trains_on_balanced_labels(monkeypatch, balance):
    from explorer.routing import RoutingContext
    from explorer.routing.classifiers import ClassificationHead

    emb, scores, datasets = _tied_pilots()
    seen = {}
    real = classifiers._logistic

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        fit = model.fit

        def recording_fit(x, y):
            seen["counts"] = sorted(np.unique(y, return_counts=True)[1])
            return fit(x, y)
        model.fit = recording_fit
        return model

    monkeypatch.setattr(classifiers, "_logistic", spy)
    ctx = RoutingContext(encoders=["base", "e1", "e2"], candidates=[1, 2], own_expert={"a": 1, "b": 2},
                         pilot_emb=emb, pilot_dataset=datasets, pilot_scores=scores, eval_dataset=datasets,
                         eval_scores=scores, params={"ties": "first", "balance_labels": balance})
    ClassificationHead().decide(ctx, emb)
    labels = ctx.labels
    counts = sorted(np.unique(labels[labels >= 0], return_counts=True)[1])
    assert counts[0] < counts[-1]  # first-maximum ties make the labels unbalanced...
    assert seen["counts"] == ([counts[0]] * len(counts) if balance else counts)  # ...and balancing evens them


def judged_config(folder: Path, cache: Path, extra: str = "", source: str = "") -> Path:
    text = f'''title = "judged"
cache_dir = "{cache}"
[training]
epochs = 1
[layout]
umap = false
[[datasets]]
name = "homefix"
path = "{SAMPLE / 'homefix'}"
judged_split = 0.5             # no train_split named: half of the judged test queries train
{extra}
[[datasets]]
name = "pycode"
path = "{SAMPLE / 'pycode'}"
train_split = "train"
max_eval_queries = 8
[[experts]]
name = "homefix"
sources = [{{dataset = "homefix", source = "qrels"{source}}}]
[[experts]]
name = "pycode"
sources = [{{dataset = "pycode", source = "qrels", max_pairs = 16}}]
'''
    path = folder / "judged.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_judged_split_trains_on_part_of_the_test_queries_and_evaluates_the_rest(tmp_path, capsys):
    from explorer.cli import main
    from explorer.data import load_beir

    cfg = load_config(judged_config(tmp_path, tmp_path / "cache"))
    spec = cfg.datasets[0]
    assert (spec.train_split, spec.test_split, spec.judged_from) == ("judged-train", "judged-test", "test")
    assert cfg.experts[0].sources == [{"dataset": "homefix", "source": "qrels", "split": "judged-train"}]
    ws = build(cfg, tmp_path / "ws", progress=False)
    q = ws.queries[ws.queries["dataset"] == "homefix"]
    pilots, evals = set(q.loc[q["role"] == "pilot", "qid"]), set(q.loc[q["role"] == "eval", "qid"])
    test = load_beir(SAMPLE / "homefix").qrels["test"]
    assert not pilots & evals and pilots | evals == set(test) and len(pilots) == round(0.5 * len(test))
    qrels = ws.qrels("homefix", "pilot")
    assert all(qrels[qid] == test[qid] for qid in pilots)  # the pilot part keeps its judgements
    assert ws.dataset_info("homefix")["judged_split"] == {"share": 0.5, "seed": 13, "of": "test",
                                                          "train": len(pilots), "test": len(evals)}
    # the expert trained on the pilot part only: its card counts those pairs
    pairs = sum(1 for qid in pilots for g in test[qid].values() if g > 0)
    assert ws.expert_card("homefix")["pairs"] == pairs
    # every table says so, with the base on both parts beside it
    notes = analysis.judged_split_notes(ws)
    assert len(notes) == 1 and f"evaluated on {len(evals)} of its {len(test)} judged test queries" in notes[0]
    assert "trained its expert and are its pilot queries" in notes[0]
    base = ws.metrics[(ws.metrics["system"] == "base") & ws.metrics["row"].isin(q["row"])]["nDCG@10"].mean()
    assert f"both parts: {100 * base:.1f} nDCG@10" in notes[0]
    assert main(["eval", str(ws.path)]) == 0
    assert notes[0] in capsys.readouterr().out
    from explorer.export import paper_table

    assert "homefix: evaluated on" in paper_table(ws, fmt="markdown")
    # another seed, another split
    other = load_config(judged_config(tmp_path, tmp_path / "cache", extra="judged_seed = 7"))
    ws7 = build(other, tmp_path / "ws7", progress=False)
    q7 = ws7.queries[(ws7.queries["dataset"] == "homefix") & (ws7.queries["role"] == "pilot")]
    assert set(q7["qid"]) != pilots and len(q7) == len(pilots)
    assert ws7.manifest["stages"]["expert:homefix"]["cached"] is False


def test_a_judged_split_never_trains_on_what_it_evaluates(tmp_path):
    cfg = judged_config(tmp_path, tmp_path / "cache", source=', split = "test"')
    with pytest.raises(ConfigError, match="trains on 'judged-train' only"):
        load_config(cfg)
    cfg = judged_config(tmp_path, tmp_path / "cache", extra='train_split = "train"')
    with pytest.raises(ConfigError, match="needs no split of its judged queries"):
        load_config(cfg)
    cfg.write_text(cfg.read_text().replace('train_split = "train"\n', "", 1).replace("judged_split = 0.5", "judged_split = 0.95"))
    with pytest.raises(ConfigError, match="`judged_split` is 0.95, out of range"):
        load_config(cfg)


def stop_config(folder: Path, expert: str) -> Path:
    """The judged config with homefix's expert trained on `expert` (its sources and settings)."""
    path = judged_config(folder, folder / "cache")
    text = path.read_text().replace('sources = [{dataset = "homefix", source = "qrels"}]', expert, 1)
    path.write_text(text)
    return path


def test_stop_split_names_judged_training_queries_the_expert_does_not_train_on(tmp_path):
    crops = 'sources = [{dataset = "homefix", source = "crops"}]\n'
    ok = load_config(stop_config(tmp_path, crops + 'stop_split = "judged-train"'))
    assert ok.experts[0].train["stop_split"] == "judged-train"
    for expert, message in [
        (crops + 'stop_split = "test"', "'test' holds the evaluated queries of 'homefix'"),
        (crops + 'stop_split = "judged-test"', "'judged-test' holds the evaluated queries"),
        (crops + 'stop_split = "dev"', "dataset 'homefix' has no split 'dev'"),
        ('sources = [{dataset = "homefix", source = "qrels"}]\nstop_split = "judged-train"',
         "the expert trains on 'judged-train' itself"),
        ('sources = [{dataset = "homefix", source = "crops"}, {dataset = "pycode", source = "crops"}]\n'
         'stop_split = "judged-train"', "needs an expert trained on one configured dataset"),
        ('kind = "query-adapter"\n' + crops + 'stop_split = "judged-train"', "brings its own training stages"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(stop_config(tmp_path, expert))


@pytest.mark.slow
def test_a_crop_expert_stops_on_the_judged_training_queries(tmp_path):
    """stop_split: every crop trains, and the judged training part (the pilots) chooses the epoch."""
    from explorer.data import load_beir

    cfg = load_config(stop_config(tmp_path, 'sources = [{dataset = "homefix", source = "crops", max_pairs = 64}]\n'
                                            'stop_split = "judged-train"\nepochs = 3\nbatch_size = 16'))
    ws = build(cfg, tmp_path / "ws", progress=False)
    card = ws.expert_card("homefix")
    q = ws.queries[(ws.queries["dataset"] == "homefix") & (ws.queries["role"] == "pilot")]
    test = load_beir(SAMPLE / "homefix").qrels["test"]
    judged = [qid for qid in q["qid"] if any(g > 0 for g in test[qid].values())]
    hp = card["hyper_parameters"]
    assert card["pairs"] == 64 and hp["steps_per_epoch"] == 4 and hp["stop_split"] == "judged-train"
    assert hp["holdout_queries"] == len(judged) > 0 and len(hp["stop_ndcg10"]) == hp["epochs_trained"] + 1
    assert "holdout_mrr10" not in hp  # judged queries are scored by graded nDCG@10, not MRR
    assert "chose its expert's stopping epoch and are its pilot queries" in analysis.judged_split_notes(ws)[0]


def test_a_changed_default_retrains_only_the_experts_that_rely_on_it(tmp_path):
    """The training recipe's defaults changed (10 epochs with a holdout, hard negatives, LoRA on the feed-forward
    layers too). An expert that relies on them gets a new cache key, one that set the old values explicitly keeps
    the key it had when those were the defaults, and writing a current default out changes nothing."""
    sample = ROOT / "sample_data" / "homefix"

    def key(training: str = "", expert: str = "") -> str:
        config = tmp_path / "k.toml"
        config.write_text(f'[training]\n{training}[[datasets]]\npath = "{sample}"\ntrain_split = "train"\n'
                          f'[[experts]]\nname = "homefix"\nsources = [{{dataset = "homefix"}}]\n{expert}')
        return load_config(config).experts[0].cache_key({}, "base")

    old = ('epochs = 3\nnegatives = "corpus"\nhard_negatives = 8\nholdout = 0.0\n',
           'target_modules = ["query", "key", "value"]\n')
    new = ('epochs = 10\nnegatives = "hard"\nhard_negatives = 16\nholdout = 0.1\n',
           'target_modules = ["query", "key", "value", "intermediate.dense", "output.dense"]\n')
    assert key() != key(*old)  # relying on the new defaults is not the old training
    assert key(*new) == key(new[0]) == key()  # writing the current defaults out changes nothing
    assert key(old[0]) == key(old[0], "") != key()  # the old training settings, as keys always had them
    assert key(new[0], old[1]) != key(new[0])  # attention only is not the new default
