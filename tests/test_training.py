"""Expert training: pair sources, the balanced multi-task union, and a loss that actually goes down."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.data import load_beir
from explorer.encoders import Encoder
from explorer.training import (Pair, balanced_union, contrastive_loss, graded_by_query, heldout_mrr, heldout_ndcg,
                               make_pairs, mine_hard_negatives, split_holdout, train_expert)

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


def test_sentences_are_whole_sentences_of_their_document(symptoms):
    """The inverse cloze task's query side: each query is one whole sentence of its passage (of at least
    crop_min_words words), at most crops_per_doc of them per passage, seeded."""
    params = {"crops_per_doc": 1, "crop_min_words": 5, "crop_max_words": 200, "max_pairs": 0}
    pairs = make_pairs(symptoms, "sentences", params, seed=3)
    texts = symptoms.corpus.texts
    long_enough = [i for i, t in enumerate(texts)
                   if any(len(s.split()) >= 5 for s in re.split(r"(?<=[.!?])\s+", t))]
    assert sorted(p.doc for p in pairs) == long_enough  # one sentence from every passage that has one
    for p in pairs:
        assert len(p.query.split()) >= 5 and p.query in " ".join(texts[p.doc].split())
        start = " ".join(texts[p.doc].split()).index(p.query)
        assert start == 0 or " ".join(texts[p.doc].split())[start - 2] in ".!?"  # begins a sentence
        assert p.query[-1] in ".!?" or p.query == " ".join(texts[p.doc].split())[start:]  # and ends one
    assert pairs == make_pairs(symptoms, "sentences", params, seed=3)
    two = make_pairs(symptoms, "sentences", {**params, "crops_per_doc": 2}, seed=3)
    assert len(two) > len(pairs) and max(np.bincount([p.doc for p in two])) == 2
    cut = make_pairs(symptoms, "sentences", {**params, "crop_max_words": 6}, seed=3)
    assert max(len(p.query.split()) for p in cut) == 6


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


@pytest.mark.slow
@pytest.mark.parametrize("negatives", ["corpus", "in-batch", "hard"])
def test_training_lowers_the_loss_and_only_touches_the_expert(symptoms, negatives):
    enc = Encoder()
    docs = enc.encode(symptoms.corpus.passages())
    pairs = make_pairs(symptoms, "qrels", {}, seed=0)
    before_emb = enc.encode([p.query for p in pairs[:8]])
    before = _loss(enc, None, pairs, docs)
    result = train_expert(enc, "sym", pairs, {"symptoms": docs},
                          {"epochs": 6, "batch_size": 16, "lr": 1e-3, "negatives": negatives, "seed": 0,
                           "holdout": 0.0}, {"target_modules": ["query", "key", "value"]})
    assert result.steps == 6 * -(-len(pairs) // 16) and result.trainable_parameters == 110592
    assert _loss(enc, "sym", pairs, docs) < 0.9 * before
    assert np.allclose(enc.encode([p.query for p in pairs[:8]]), before_emb, atol=1e-6)  # the base is untouched


@pytest.mark.slow
def test_training_is_reproducible_for_a_seed(symptoms):
    runs = []
    for _ in range(2):
        enc = Encoder()
        docs = enc.encode(symptoms.corpus.passages())
        pairs = make_pairs(symptoms, "qrels", {"max_pairs": 40}, seed=0)
        runs.append(train_expert(enc, "x", pairs, {"symptoms": docs}, {"epochs": 1, "seed": 5}).loss_curve)
    assert np.allclose(runs[0], runs[1], atol=1e-5)


def test_holdout_keeps_every_pair_of_a_query_on_one_side():
    pairs = [Pair(f"q{i // 3}", "a", i) for i in range(60)]  # 20 queries, 3 relevant documents each
    train, held = split_holdout(pairs, 0.25, seed=2)
    assert sorted(train + held) == list(range(60)) and len(held) == 15
    assert not {pairs[i].query for i in train} & {pairs[i].query for i in held}
    assert split_holdout(pairs, 0.25, seed=2) == (train, held) and split_holdout(pairs, 0.25, seed=3) != (train, held)
    assert split_holdout(pairs, 0.0, seed=2) == (list(range(60)), [])


@pytest.mark.slow
def test_hard_negatives_are_the_base_ranking_without_the_relevant_documents(symptoms):
    import torch

    enc = Encoder()
    docs = enc.encode(symptoms.corpus.passages())
    pairs = make_pairs(symptoms, "qrels", {"max_pairs": 30}, seed=0)
    targets = [p.doc for p in pairs]
    hard = mine_hard_negatives(enc, pairs, targets, torch.from_numpy(docs), 5).numpy()
    sims = enc.encode([p.query for p in pairs]) @ docs.T
    for i, p in enumerate(pairs):
        relevant = {q.doc for q in pairs if q.query == p.query}
        expected = [d for d in np.argsort(-sims[i], kind="stable") if d not in relevant][:5]
        assert set(hard[i]) == set(expected) and not relevant & set(hard[i])
    # the loss over the batch's positives and the hard negatives is a softmax over exactly those documents
    q = torch.from_numpy(enc.encode([pairs[0].query, pairs[1].query]))
    gold = torch.tensor(targets[:2])
    pool = sorted(set(targets[:2]) | set(hard[:2].ravel().tolist()))
    logits = q @ torch.from_numpy(docs[pool]).T / 0.05
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([pool.index(t) for t in targets[:2]]))
    got = contrastive_loss(q, gold, torch.from_numpy(docs), "hard", 0.05, torch.from_numpy(hard[:2]))
    assert torch.isclose(got, expected)


@pytest.mark.slow
def test_early_stopping_keeps_the_best_held_out_epoch(symptoms):
    import torch

    enc = Encoder()
    docs = enc.encode(symptoms.corpus.passages())
    pairs = make_pairs(symptoms, "qrels", {}, seed=0)
    result = train_expert(enc, "sym", pairs, {"symptoms": docs},
                          {"epochs": 5, "batch_size": 8, "lr": 2e-3, "holdout": 0.25, "patience": 2, "seed": 0})
    s = result.settings
    curve, best = s["holdout_mrr10"], s["best_epoch"]
    assert len(curve) == s["epochs_trained"] + 1 and curve[best] == max(curve) and s["holdout_queries"] >= 5
    assert s["epochs_trained"] == 5 or s["epochs_trained"] - best == 2  # ran out of budget, or of patience
    assert result.steps == s["epochs_trained"] * s["steps_per_epoch"]
    # the expert keeps the best epoch's weights: its held-out score is that epoch's
    _, held = split_holdout(pairs, 0.25, 0)
    texts = list(dict.fromkeys(pairs[i].query for i in held))
    relevant = [{pairs[i].doc for i in held if pairs[i].query == t} for t in texts]
    with enc.using("sym"):
        again = heldout_mrr(enc, (texts, relevant), torch.from_numpy(docs))
    assert again == pytest.approx(curve[best], abs=1e-5)


@pytest.mark.parametrize("negatives", ["corpus", "in-batch", "hard"])
def test_masked_loss_drops_only_the_other_relevant_documents_of_each_query(negatives):
    """mask_relevant: a query judged relevant to several documents is not pushed away from its other relevant ones;
    every other negative stays, so the loss is a softmax over exactly the remaining columns."""
    import torch

    gen = torch.Generator().manual_seed(0)
    docs = torch.nn.functional.normalize(torch.randn(12, 8, generator=gen), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(3, 8, generator=gen), dim=-1)
    gold = torch.tensor([0, 1, 5])  # rows 0 and 1: one query with relevant documents 0, 1 and 7
    hard = torch.tensor([[7, 9], [9, 10], [2, 3]]) if negatives == "hard" else None
    relevant = [{0, 1, 7}, {0, 1, 7}, {5}]
    columns = {"corpus": list(range(12)), "in-batch": [0, 1, 5], "hard": [0, 1, 2, 3, 5, 7, 9, 10]}[negatives]
    expected = []
    for i in range(3):
        keep = [c for c in columns if c == gold[i] or c not in relevant[i]]
        logits = q[i] @ docs[keep].T / 0.05
        expected.append(-torch.log_softmax(logits, 0)[keep.index(int(gold[i]))])
    got = contrastive_loss(q, gold, docs, negatives, 0.05, hard, relevant)
    assert torch.isclose(got, torch.stack(expected).mean())
    plain = contrastive_loss(q, gold, docs, negatives, 0.05, hard)
    assert got < plain  # the other relevant documents only ever added to the loss


@pytest.mark.slow
def test_the_stopping_score_of_judged_queries_is_trec_evals_graded_ndcg(symptoms):
    """stop_split's criterion: graded nDCG@10 of the judged queries over the whole corpus, as the build scores."""
    import torch

    from explorer.evaluation import per_query, run_dict
    from explorer.index import build_index, search

    enc = Encoder()
    docs = enc.encode(symptoms.corpus.passages())
    pairs = make_pairs(symptoms, "qrels", {"max_pairs": 0, "split": "test"}, seed=0)
    assert {p.grade for p in pairs} == {g for q in symptoms.qrels["test"].values() for g in q.values() if g > 0}
    texts, graded = graded_by_query(pairs, [p.doc for p in pairs])
    got = heldout_ndcg(enc, (texts, graded), torch.from_numpy(docs))
    qid = {symptoms.queries[q]: q for q in symptoms.qrels["test"]}
    qids = [qid[t] for t in texts]
    run = search(build_index(docs), enc.encode(texts), 10, symptoms.corpus.ids, qids)
    expected = per_query(symptoms.qrels["test"], run_dict(qids, symptoms.corpus.ids, run.docs, run.scores),
                         ["nDCG@10"], qids)["nDCG@10"].mean()
    assert got == pytest.approx(expected, abs=1e-6) and 0 < got < 1
