"""Real BEIR data from ../shared/data: subsamples of scifact and arguana built, evaluated and checked against an
independent computation. The subsamples are written to a temporary folder, never into the repository."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from explorer.analysis import summary
from explorer.build import build
from explorer.export import strategy_run

from .test_evaluation import reference_metrics


def subsample(src: Path, dst: Path, splits: dict[str, int], extra_docs: int, seed: int = 0,
              keep_query_docs: bool = False) -> Path:
    """A smaller BEIR folder: `n` judged queries per split, their judged documents, and `extra_docs` others."""
    rng = random.Random(seed)
    qrels = {}
    for split, n in splits.items():
        with open(src / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))[1:]
        by_q: dict[str, list] = {}
        for q, d, g in rows:
            by_q.setdefault(q, []).append((q, d, g))
        chosen = rng.sample(sorted(by_q), min(n, len(by_q)))
        qrels[split] = [r for q in chosen for r in by_q[q]]
    wanted_q = {r[0] for rows in qrels.values() for r in rows}
    docs = [json.loads(line) for line in open(src / "corpus.jsonl", encoding="utf-8")]
    judged = {r[1] for rows in qrels.values() for r in rows} | (wanted_q if keep_query_docs else set())
    keep = [d for d in docs if d["_id"] in judged]
    others = [d for d in docs if d["_id"] not in judged]
    keep += rng.sample(others, min(extra_docs, len(others)))
    (dst / "qrels").mkdir(parents=True)
    with open(dst / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in keep)
    with open(dst / "queries.jsonl", "w", encoding="utf-8") as f:
        for line in open(src / "queries.jsonl", encoding="utf-8"):
            if json.loads(line)["_id"] in wanted_q:
                f.write(line)
    for split, rows in qrels.items():
        with open(dst / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows))
    return dst


@pytest.fixture(scope="module")
def real_workspace(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    subsample(shared_data / "scifact", root / "scifact", {"test": 40, "train": 120}, extra_docs=600)
    subsample(shared_data / "arguana", root / "arguana", {"test": 40, "train": 150}, extra_docs=600,
              keep_query_docs=True)
    config = root / "real.toml"
    config.write_text(f'''title = "real subsample"
cache_dir = "{root / 'cache'}"
[training]
epochs = 2
[layout]
umap = false
[[datasets]]
name = "scifact"
path = "{root / 'scifact'}"
train_split = "train"
[[datasets]]
name = "arguana"
path = "{root / 'arguana'}"
train_split = "train"
ignore_identical_ids = true
[[experts]]
name = "scifact"
sources = [{{dataset = "scifact", source = "qrels"}}]
[[experts]]
name = "arguana"
sources = [{{dataset = "arguana", source = "generated"}}]
[[experts]]
name = "multi-task"
multi_task = true
''')
    return build(config, root / "ws", progress=False)


def test_every_strategy_matches_an_independent_computation(real_workspace):
    ws = real_workspace
    for strategy in ws.strategies:
        for ds in ws.datasets:
            run = strategy_run(ws, strategy, ds)
            qrels = ws.qrels(ds)
            assert set(run) == set(qrels)
            mean = sum(reference_metrics(qrels[q], run[q])["nDCG@10"] for q in qrels) / len(qrels)
            assert summary(ws).at[ds, strategy] == pytest.approx(mean, abs=1e-9), (strategy, ds)


def test_identical_id_rule_is_per_dataset(real_workspace):
    ws = real_workspace
    info = {d["name"]: d["ignore_identical_ids"] for d in ws.manifest["datasets"]}
    assert info == {"scifact": False, "arguana": True}
    docs = set(ws.docs("arguana")["doc_id"])
    qids = list(ws.qrels("arguana"))
    assert sum(q in docs for q in qids) >= 0.9 * len(qids)  # the rule has something to drop
    for strategy in ("base", "pilot-mean"):
        run = strategy_run(ws, strategy, "arguana")
        assert all(q not in run[q] for q in qids)
        assert all(len(run[q]) == 100 for q in qids)


def test_base_scores_are_plausible_for_minilm(real_workspace):
    table = summary(real_workspace)
    # a misaligned id mapping gives scores near zero; a subsample has fewer distractors than the full corpus
    # (full corpora: MiniLM 64.5 on scifact, 50.2 on arguana), so only a wide band is meaningful here
    assert 0.45 < table.at["scifact", "base"] < 0.98
    assert 0.3 < table.at["arguana", "base"] < 0.98


def test_experts_record_their_real_training_data(real_workspace):
    card = real_workspace.expert_card("arguana")
    assert card["sources"] == [{"dataset": "arguana", "source": "generated"}]
    assert card["pairs"] == 150


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "bench").glob("*.toml")))
def test_every_bench_config_is_valid_against_the_shared_data(shared_data, name):
    """The studies' configs (core, seeds, zero-shot, judged) name real datasets, splits and settings: checked as a
    build checks them, before any model loads."""
    from explorer.config import ConfigError, load_config

    try:
        cfg = load_config(Path(__file__).parents[1] / "bench" / name)
    except ConfigError as err:  # every problem is listed at once: only the optional ERA encoder may be missing
        problems = [line for line in str(err).splitlines() if line.startswith("  - ")]
        assert problems and all("is not installed" in p and "make mpnet" in p for p in problems), str(err)
        return
    assert cfg.datasets and cfg.experts
    assert {d.path.resolve().parent for d in cfg.datasets} == {shared_data.resolve()}
