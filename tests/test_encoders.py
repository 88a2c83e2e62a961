"""Encoders and experts: base equals plain sentence-transformers; experts save, load (ours or peft's own folders),
mix exactly; and concurrent encodes under different experts equal serial ones."""

from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from explorer.base_model import resolve_base
from explorer.encoders import Encoder
from explorer.experts import AdapterError

from .conftest import ROOT

TEXTS = ["the orbit of mars", "how long to rest a steak", "symptoms of anemia", "binary search complexity",
         "what is an index fund", "coral reef bleaching"]


def _randomise(encoder: Encoder, name: str, seed: int) -> None:
    """Give a fresh adapter non-zero B matrices so it changes embeddings (LoRA starts as the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in encoder.experts[name].trainable_parameters(name):
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)


@pytest.fixture(scope="module")
def experts_encoder(trains):
    enc = Encoder()
    for i, name in enumerate(["a", "b", "c"]):
        enc.add_expert(name)
        _randomise(enc, name, i)
    return enc


def test_base_equals_plain_sentence_transformers(encoder):
    plain = SentenceTransformer(resolve_base("bundled"), device="cpu").encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(encoder.encode(TEXTS), plain, atol=1e-5)
    assert encoder.dim == 384


def test_experts_change_the_query_embedding_and_base_is_restored(experts_encoder):
    base = experts_encoder.encode(TEXTS)
    a = experts_encoder.encode(TEXTS, "a")
    assert np.abs(a - base).max() > 1e-3
    assert np.allclose(experts_encoder.encode(TEXTS), base, atol=1e-6)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_a_live_query_after_adding_an_expert_is_deterministic():
    """Live queries skip encode()'s eval(); new adapter modules (LoRA dropout) must not start in training mode."""
    enc = Encoder()
    enc.add_expert("fresh")
    _randomise(enc, "fresh", 7)
    first = enc.encode(TEXTS[:2], "fresh")
    assert np.array_equal(first, enc.encode(TEXTS[:2], "fresh"))
    assert np.allclose(first, enc.encode(TEXTS * 2, "fresh")[:2], atol=1e-6)  # the batched encode() path


def test_mixture_equals_explicitly_merged_weights(experts_encoder):
    mixed = experts_encoder.encode(TEXTS, {"a": 0.7, "b": 0.3})
    merged = SentenceTransformer(resolve_base("bundled"), device="cpu")
    from peft.tuners.lora import LoraLayer

    targets = dict(merged[0].auto_model.named_modules())
    with torch.no_grad():
        for name, module in experts_encoder.transformer.named_modules():
            if isinstance(module, LoraLayer):
                delta = sum(w * module.scaling[k] * (module.lora_B[k].weight @ module.lora_A[k].weight)
                            for k, w in (("a", 0.7), ("b", 0.3)))
                targets[name].weight += delta
    assert np.allclose(mixed, merged.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
    assert np.allclose(experts_encoder.encode(TEXTS, {"a": 1.0}), experts_encoder.encode(TEXTS, "a"), atol=1e-6)


def test_save_and_load_round_trip(experts_encoder, tmp_path):
    experts_encoder.save_expert("a", tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    fresh = Encoder()
    # r 8 on query, key, value, both output.dense layers and intermediate.dense of 6 layers (the default targets)
    assert fresh.load_expert("a2", tmp_path / "a") == 6 * (4 * 8 * (384 + 384) + 2 * 8 * (384 + 1536))
    assert np.allclose(fresh.encode(TEXTS, "a2"), experts_encoder.encode(TEXTS, "a"), atol=1e-6)


@pytest.mark.slow
def test_loads_an_adapter_saved_by_peft_itself(tmp_path):
    """A LoRA folder trained elsewhere: peft.get_peft_model on the same base, then save_pretrained."""
    from peft import LoraConfig, PeftModel, get_peft_model

    st = SentenceTransformer(resolve_base("bundled"), device="cpu")
    peft_model = get_peft_model(st[0].auto_model, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft_model.save_pretrained(str(tmp_path / "external"))
    expected = st.encode(TEXTS, normalize_embeddings=True)  # the wrapped model is used in place
    assert isinstance(peft_model, PeftModel)
    enc = Encoder()
    assert enc.load_expert("ext", tmp_path / "external") == 6 * 2 * (4 * 384 + 384 * 4)
    assert np.allclose(enc.encode(TEXTS, "ext"), expected, atol=1e-5)


def test_refuses_pickled_or_mismatched_adapters(experts_encoder, tmp_path):
    folder = tmp_path / "pickled"
    experts_encoder.save_expert("a", folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    enc = Encoder()
    with pytest.raises(AdapterError, match="pickle, which is never loaded"):
        enc.load_expert("x", folder)
    (folder / "adapter_model.bin").unlink()
    with pytest.raises(AdapterError, match="no adapter_model.safetensors"):
        enc.load_expert("x", folder)
    with pytest.raises(AdapterError, match="no adapter_config.json"):
        enc.load_expert("x", tmp_path)
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    experts_encoder.save_expert("a", bad)
    save_file({"base_model.model.encoder.layer.0.attention.self.query.lora_A.weight": torch.zeros(8, 100)},
              str(bad / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="does not fit this base model"):
        enc.load_expert("x", bad)
    assert "x" not in enc.experts


def test_duplicate_and_unknown_names(experts_encoder):
    with pytest.raises(ValueError, match="already loaded"):
        experts_encoder.add_expert("a")
    with pytest.raises(KeyError, match="unknown expert"):
        experts_encoder.encode(TEXTS, "zzz")


def test_concurrent_encodes_under_different_experts_equal_serial(experts_encoder):
    choices = [None, "a", "b", "c", {"a": 0.5, "c": 0.5}]
    serial = {i: experts_encoder.encode(TEXTS, c) for i, c in enumerate(choices)}
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            i = rng.randrange(len(choices))
            texts_idx = rng.sample(range(len(TEXTS)), 3)
            got = experts_encoder.encode([TEXTS[j] for j in texts_idx], choices[i], batch_size=2)
            if not np.allclose(got, serial[i][texts_idx], atol=1e-5):
                errors.append(f"thread {seed}: choice {choices[i]} differs")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_expert_kinds_do_not_import_the_encoder():
    """No import circle: a kind names the base model through explorer.base_model, which imports no torch."""
    import subprocess
    import sys

    code = ("import sys, explorer.base_model; assert 'torch' not in sys.modules; "
            "import explorer.experts.query_adapter; assert 'explorer.encoders' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_parsing_a_config_loads_no_model_library():
    """config.py reads the registries' declarations only: checking a whole config (the sample's, with its
    variants) imports no torch, peft, faiss or sentence-transformers."""
    import subprocess
    import sys

    code = ("import sys; from explorer.config import load_config; "
            "cfg = load_config('sample_data/sample.toml'); assert cfg.experts; "
            "heavy = [m for m in ('torch', 'peft', 'faiss', 'sentence_transformers', 'transformers') "
            "if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
