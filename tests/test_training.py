"""Expert training: pair sources, the balanced multi-task union, and a loss that actually goes down."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.data import load_beir
from explorer.encoders import Encoder
from explorer.training import Pair, balanced_union, make_pairs, train_expert

from .conftest import ROOT

SYMPTOMS = ROOT / "sample_data" / "symptoms"


@pytest.fixture(scope="module")
def symptoms():
    return load_beir(SYMPTOMS)


def test_qrels_pairs_are_positive_judgements(symptoms):
    pairs = make_pairs(symptoms, "qrels", {"max_pairs": 0}, seed=1)
    expected = sum(1 for docs in symptoms.qrels["train"].values() for g in docs.values() if g > 0)
    assert len(pairs) == expected
    p = pairs[0]
    qid = next(q for q, t in symptoms.queries.items() if t == p.query)
    assert symptoms.qrels["train"][qid][symptoms.corpus.ids[p.doc]] > 0


def test_crops_are_spans_of_their_document_and_seeded(symptoms):
    pairs = make_pairs(symptoms, "crops", {"crops_per_doc": 2, "max_pairs": 0}, seed=3)
    assert len(pairs) == 2 * len(symptoms.corpus)
    passages = symptoms.corpus.passages()
    for p in pairs[:50]:
        assert 6 <= len(p.query.split()) <= 16 and p.query in passages[p.doc]
    assert pairs == make_pairs(symptoms, "crops", {"crops_per_doc": 2, "max_pairs": 0}, seed=3)
    assert pairs != make_pairs(symptoms, "crops", {"crops_per_doc": 2, "max_pairs": 0}, seed=4)


def test_titles_and_unknown_sources(symptoms):
    assert len(make_pairs(symptoms, "titles", {"max_pairs": 0}, seed=0)) == len(symptoms.corpus)
    with pytest.raises(ValueError, match="unknown pair source"):
        make_pairs(symptoms, "gpt", {}, seed=0)
    with pytest.raises(ValueError, match="no qrels/dev.tsv"):
        make_pairs(symptoms, "qrels", {"split": "dev"}, seed=0)


def test_multi_task_union_is_balanced():
    a = [Pair(f"a{i}", "a", i) for i in range(50)]
    b = [Pair(f"b{i}", "b", i) for i in range(20)]
    union = balanced_union([a, b], None, seed=0)
    assert sum(p.dataset == "a" for p in union) == sum(p.dataset == "b" for p in union) == 20


def _loss(enc, expert, pairs, docs, tau=0.05) -> float:
    """Mean cross-entropy of the pairs against the whole corpus, in eval mode (no dropout)."""
    q = enc.encode([p.query for p in pairs], expert)
    logits = q @ docs.T / tau
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(pairs)), [p.doc for p in pairs]].mean())


@pytest.mark.parametrize("negatives", ["corpus", "in-batch"])
def test_training_lowers_the_loss_and_only_touches_the_expert(symptoms, negatives):
    enc = Encoder()
    docs = enc.encode(symptoms.corpus.passages())
    pairs = make_pairs(symptoms, "qrels", {}, seed=0)
    before_emb = enc.encode([p.query for p in pairs[:8]])
    before = _loss(enc, None, pairs, docs)
    result = train_expert(enc, "sym", pairs, {"symptoms": docs},
                          {"epochs": 6, "batch_size": 16, "lr": 1e-3, "negatives": negatives, "seed": 0})
    assert result.steps == 6 * -(-len(pairs) // 16) and result.trainable_parameters == 110592
    assert _loss(enc, "sym", pairs, docs) < 0.9 * before
    assert np.allclose(enc.encode([p.query for p in pairs[:8]]), before_emb, atol=1e-6)  # the base is untouched


def test_training_is_reproducible_for_a_seed(symptoms):
    runs = []
    for _ in range(2):
        enc = Encoder()
        docs = enc.encode(symptoms.corpus.passages())
        pairs = make_pairs(symptoms, "qrels", {"max_pairs": 40}, seed=0)
        runs.append(train_expert(enc, "x", pairs, {"symptoms": docs}, {"epochs": 1, "seed": 5}).loss_curve)
    assert np.allclose(runs[0], runs[1], atol=1e-5)
