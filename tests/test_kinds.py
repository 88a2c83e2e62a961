"""The DDR prefix kind and the ERA query-adapter kind: training, mixing, saving, loading, thread safety."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.data import load_beir
from explorer.encoders import Encoder
from explorer.experts import AdapterError
from explorer.experts.prefix import MIX
from explorer.experts.query_adapter import fit_least_squares, load_query_encoder
from explorer.training import make_pairs, train_expert

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["how do rockets reach orbit", "best way to bake sourdough bread", "symptoms of a vitamin deficiency"]
SMALL_ENCODER = "bundled:layers=3"  # a second, weaker query encoder made from the bundled MiniLM


@pytest.fixture(scope="module")
def homefix():
    ds = load_beir(ROOT / "sample_data" / "homefix", "homefix", splits=("test", "train"))
    return ds, make_pairs(ds, "qrels", {"split": "train"}, 0)


@pytest.fixture(scope="module")
def kinds(homefix, trains):
    """One encoder holding a trained LoRA expert, two trained prefix modules and an ERA adapter."""
    ds, pairs = homefix
    enc = Encoder()
    docs = {"homefix": enc.encode(ds.corpus.passages())}
    every_epoch = {"holdout": 0.0, "negatives": "corpus"}  # these tests are about the kinds, not the recipe
    results = {"lora": train_expert(enc, "lora", pairs, docs, {"epochs": 1, **every_epoch}, {})}
    lora_before = enc.encode(TEXTS, "lora")
    for name, seed in (("p1", 1), ("p2", 2)):
        results[name] = train_expert(enc, name, pairs, docs, {"epochs": 2, "seed": seed, **every_epoch},
                                     {"virtual_tokens": 4},
                                     kind="prefix")
    results["era"] = train_expert(enc, "era", pairs, docs, {"epochs": 2}, {"encoder": SMALL_ENCODER},
                                  kind="query-adapter", corpora={"homefix": ds.corpus.passages()})
    return enc, docs, results, lora_before


def test_prefix_training_learns_only_the_prefix(kinds):
    enc, _, results, _ = kinds
    curve = results["p1"].loss_curve
    assert np.mean(curve[-3:]) < np.mean(curve[:3])
    assert results["p1"].trainable_parameters == 4 * 6 * 2 * 384  # tokens x layers x (key, value) x hidden
    assert all(not p.requires_grad for p in enc.model.parameters())


def test_prefix_experts_change_queries_and_leave_base_and_lora_alone(kinds):
    enc, _, _, lora_before = kinds
    base = enc.encode(TEXTS)
    p1, p2 = enc.encode(TEXTS, "p1"), enc.encode(TEXTS, "p2")
    assert not np.allclose(p1, base, atol=1e-3) and not np.allclose(p1, p2, atol=1e-4)
    assert np.allclose(enc.encode(TEXTS), base, atol=1e-6)  # nothing left switched on
    assert np.allclose(enc.encode(TEXTS, "lora"), lora_before, atol=1e-5)  # wrapping for prefixes kept LoRA intact


def test_a_prefix_mixture_uses_the_weighted_prefix(kinds):
    enc, _, _, _ = kinds
    kind = enc.experts["p1"]
    assert np.allclose(enc.encode(TEXTS, {"p1": 1.0, "p2": 0.0}), enc.encode(TEXTS, "p1"), atol=1e-5)
    mixed = enc.encode(TEXTS, {"p1": 0.3, "p2": 0.7})
    expected = 0.3 * kind._table("p1").weight + 0.7 * kind._table("p2").weight
    assert torch.allclose(kind._table(MIX).weight, expected)
    assert not np.allclose(mixed, enc.encode(TEXTS, "p1"), atol=1e-4)
    with pytest.raises(ValueError, match="one kind"):
        enc.encode(TEXTS, {"p1": 0.5, "lora": 0.5})


def test_prefix_and_era_round_trip_through_their_folders(kinds, tmp_path):
    enc, _, _, _ = kinds
    fresh = Encoder()
    for name, kind in (("p2", "prefix"), ("era", "query-adapter")):
        enc.save_expert(name, tmp_path / name)
        fresh.load_expert(name, tmp_path / name, kind)
        assert np.allclose(fresh.encode(TEXTS, name), enc.encode(TEXTS, name), atol=1e-5), name
    with pytest.raises(AdapterError, match="is not PREFIX_TUNING"):
        fresh.load_expert("wrong", tmp_path / "era", "prefix")


def test_concurrent_encodes_under_every_kind_match_serial_ones(kinds):
    enc, _, _, _ = kinds
    choices = [None, "lora", "p1", "p2", {"p1": 0.5, "p2": 0.5}, "era"] * 3
    serial = [enc.encode(TEXTS, c) for c in choices]
    out: list = [None] * len(choices)

    def work(i):
        out[i] = enc.encode(TEXTS, choices[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(choices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, c in enumerate(choices):
        assert np.allclose(out[i], serial[i], atol=1e-5), c


def test_era_maps_the_other_encoder_into_the_base_space(kinds, homefix):
    enc, docs, _, _ = kinds
    ds, pairs = homefix
    era = enc.encode(TEXTS, "era")
    assert era.shape == (3, 384) and np.allclose(np.linalg.norm(era, axis=1), 1, atol=1e-5)
    # each passage embedded by the other encoder and mapped lands nearest its own base embedding far more often
    # than chance (1 in 101): that is what the alignment stage is for
    mapped = enc.encode(ds.corpus.passages(), "era")
    hits = np.mean((mapped @ docs["homefix"].T).argmax(axis=1) == np.arange(len(mapped)))
    assert hits > 0.5


@pytest.mark.slow
def test_era_stages_differ_and_alignment_only_needs_no_labels(homefix):
    ds, pairs = homefix
    enc = Encoder()
    docs = {"homefix": enc.encode(ds.corpus.passages())}
    runs = {s: train_expert(enc, s, pairs, docs, {"epochs": 1}, {"encoder": SMALL_ENCODER, "stages": s},
                            kind="query-adapter", corpora={"homefix": ds.corpus.passages()})
            for s in ("alignment-only", "labels-only", "both")}
    assert runs["alignment-only"].steps == 1  # one least-squares solve
    assert runs["labels-only"].steps == runs["both"].steps - 1
    # the card tells where the alignment part of the curve ends, so the two losses are drawn apart
    assert [runs[s].settings["alignment_steps"] for s in ("alignment-only", "labels-only", "both")] == [1, 0, 1]
    maps = {s: enc.experts[s].adapters[s].map.weight.detach().numpy() for s in runs}
    assert not np.allclose(maps["both"], maps["alignment-only"]) and not np.allclose(maps["both"], maps["labels-only"])
    assert runs["alignment-only"].trainable_parameters == 384 * 384


def test_a_missing_stronger_encoder_says_how_to_install_it(monkeypatch, tmp_path):
    import explorer.experts.query_adapter as qa

    monkeypatch.setattr(qa, "MODELS_DIR", tmp_path)
    with pytest.raises(AdapterError, match="make mpnet"):
        load_query_encoder("all-mpnet-base-v2")


def test_the_small_test_encoder_is_a_different_encoder():
    small = load_query_encoder(SMALL_ENCODER)
    assert len(small[0].auto_model.encoder.layer) == 3


def test_the_affine_map_is_the_least_squares_fit_with_an_unpenalised_bias():
    """ERA's setting: W and b minimise ||xW^T + b - y||^2; checked against numpy's least squares on [x, 1]."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 8)).T + 3.0 + 0.05 * rng.normal(size=(300, 4))).astype(np.float32)
    residual = {}
    for bias in (True, False):
        linear = torch.nn.Linear(8, 4, bias=bias)
        fit_least_squares(linear, torch.from_numpy(x), torch.from_numpy(y), ridge=0.0)
        design = np.hstack([x, np.ones((300, 1), np.float32)]) if bias else x
        solution = np.linalg.lstsq(design, y, rcond=None)[0]
        assert np.allclose(linear.weight.detach().numpy(), solution[:8].T, atol=1e-4)
        if bias:
            assert np.allclose(linear.bias.detach().numpy(), solution[8], atol=1e-4)
        with torch.no_grad():
            residual[bias] = float(((linear(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean())
    assert residual[True] < 0.01 < residual[False]  # the offset of 3 is what a map through the origin cannot fit


def test_era_with_bias_and_query_alignment_trains_saves_and_loads(homefix, tmp_path):
    """align_queries adds each distinct training query to the passages; bias makes the map affine; both are
    recorded on the card and survive a save and a load."""
    ds, pairs = homefix
    enc = Encoder()
    docs = {"homefix": enc.encode(ds.corpus.passages())}
    result = train_expert(enc, "era-b", pairs, docs, {"epochs": 1},
                          {"encoder": SMALL_ENCODER, "bias": True, "align_queries": True, "stages": "alignment-only",
                           "align_passages": 40}, kind="query-adapter", corpora={"homefix": ds.corpus.passages()})
    distinct = len({pair.query for pair in pairs})
    assert result.settings["bias"] is True and result.settings["align_texts"] == 40 + distinct
    assert result.trainable_parameters == 384 * 384 + 384
    adapter = enc.experts["era-b"].adapters["era-b"]
    assert float(adapter.map.bias.abs().sum()) > 0
    # the training queries were aligned on: each lands nearer its own base embedding than without them
    queries = sorted({pair.query for pair in pairs})
    target = enc.encode(queries)
    with_queries = np.mean(np.sum(enc.encode(queries, "era-b") * target, axis=1))
    train_expert(enc, "era-p", pairs, docs, {"epochs": 1}, {"encoder": SMALL_ENCODER, "bias": True,
                 "stages": "alignment-only", "align_passages": 40}, kind="query-adapter",
                 corpora={"homefix": ds.corpus.passages()})
    assert with_queries > np.mean(np.sum(enc.encode(queries, "era-p") * target, axis=1))
    enc.save_expert("era-b", tmp_path / "era-b")
    assert json.loads((tmp_path / "era-b" / "adapter_config.json").read_text())["bias"] is True
    fresh = Encoder()
    assert fresh.load_expert("era-b", tmp_path / "era-b", "query-adapter") == 384 * 384 + 384
    assert np.allclose(fresh.encode(TEXTS, "era-b"), enc.encode(TEXTS, "era-b"), atol=1e-5)
