"""Adapter folders from elsewhere are data, not instructions: every hostile folder is refused with an AdapterError
naming the file and the fix, and the base model's embeddings stay bit-identical whatever was tried."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, PrefixTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file

from explorer.encoders import Encoder
from explorer.experts import AdapterError

TEXTS = ["how do black holes form", "a recipe for sourdough bread", "interest rates and inflation"]


@pytest.fixture(scope="module")
def enc(trains) -> Encoder:
    """A fresh encoder of its own (hostile loads must not be able to touch the session's shared one)."""
    return Encoder()


@pytest.fixture(scope="module")
def base_before(enc) -> np.ndarray:
    return enc.encode(TEXTS)


def _peft_folder(enc: Encoder, folder: Path, config) -> Path:
    """An adapter saved by plain peft from a copy of the base transformer, with non-zero weights."""
    model = get_peft_model(copy.deepcopy(enc.transformer), config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "prompt" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def lora_qv(enc, tmp_path_factory) -> Path:
    return _peft_folder(enc, tmp_path_factory.mktemp("qv") / "qv", LoraConfig(r=4, target_modules=["query", "value"]))


@pytest.fixture(scope="module")
def prefix_folder(enc, tmp_path_factory) -> Path:
    return _peft_folder(enc, tmp_path_factory.mktemp("prefix") / "p",
                        PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=4))


def _variant(src: Path, dst: Path, config_edit=None, weights=None) -> Path:
    shutil.copytree(src, dst)
    if config_edit is not None:
        raw = json.loads((dst / "adapter_config.json").read_text())
        out = config_edit(raw)
        (dst / "adapter_config.json").write_text(out if isinstance(out, str) else json.dumps(out))
    if weights is not None:
        weights(dst / "adapter_model.safetensors")
    return dst


def _set(**changes):
    return lambda raw: {**raw, **changes}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _add_base_weight(path: Path) -> None:
    tensors = load_file(str(path))
    tensors["base_model.model.encoder.layer.0.attention.self.query.weight"] = torch.zeros(384, 384)
    save_file(tensors, str(path))


def _nan(path: Path) -> None:
    tensors = load_file(str(path))
    first = next(iter(tensors))
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(path))


def _forged_header(path: Path) -> None:
    """A header that claims a 2^31-row tensor with 16 bytes behind it."""
    header = json.dumps({"base_model.model.encoder.layer.0.attention.self.query.lora_A.weight":
                         {"dtype": "F32", "shape": [1 << 31, 384], "data_offsets": [0, 16]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)


def _wrong_shape(path: Path) -> None:
    tensors = load_file(str(path))
    first = next(k for k in tensors if "lora_A" in k)
    tensors[first] = torch.zeros(64, tensors[first].shape[1])
    save_file(tensors, str(path))


HOSTILE_LORA = {
    "olora init": (_set(init_lora_weights="olora"), None, "init_lora_weights"),
    "pissa init": (_set(init_lora_weights="pissa"), None, "rewrites the base weights"),
    "layer replication": (_set(layer_replication=[[0, 6], [0, 6]]), None, "layer_replication"),
    "modules_to_save": (_set(modules_to_save=["pooler"]), None, "modules_to_save"),
    "DoRA": (_set(use_dora=True), None, "use_dora"),
    "bias": (_set(bias="all"), None, "bias"),
    "lora bias": (_set(lora_bias=True), None, "lora_bias"),
    "regex targets": (_set(target_modules=".*"), None, "regular expression"),
    "embedding target": (_set(target_modules=["word_embeddings"]), None, "word_embeddings"),
    "rank as text": (_set(r="eight"), None, "r = \"eight\""),
    "huge rank": (_set(r=100000), None, "r = 100000"),
    "unknown option": (_set(shift_base_weights=1.5), None, "shift_base_weights"),
    "not an object": (lambda raw: "[1, 2, 3]", None, "not an object"),
    "not JSON": (lambda raw: "{r: 8", None, "not valid JSON"),
    "deeply nested": (lambda raw: "[" * 100000, None, "not valid JSON"),
    "empty weights": (None, lambda p: p.write_bytes(b""), "not a readable safetensors file"),
    "truncated weights": (None, _truncate, "not a readable safetensors file"),
    "garbage weights": (None, lambda p: p.write_bytes(b"\xff" * 64), "not a readable safetensors file"),
    "base weight inside": (None, _add_base_weight, "not a weight of this adapter kind"),
    "forged header": (None, _forged_header, "not a readable safetensors file"),
    "wrong shape": (None, _wrong_shape, "has shape (64, 384), expected (4, 384)"),
    "NaN weights": (None, _nan, "not finite"),
}


@pytest.mark.parametrize("case", list(HOSTILE_LORA))
def test_hostile_lora_folder_is_refused_and_base_is_unchanged(case, enc, base_before, lora_qv, tmp_path):
    edit, weights, message = HOSTILE_LORA[case]
    folder = _variant(lora_qv, tmp_path / "hostile", edit, weights)
    layers_before = len(enc.transformer.encoder.layer)
    with pytest.raises(AdapterError, match="fix:") as err:
        enc.load_expert("hostile", folder)
    assert message in str(err.value) and str(folder) in str(err.value)
    assert "hostile" not in enc.experts
    assert len(enc.transformer.encoder.layer) == layers_before == 6
    assert np.array_equal(enc.encode(TEXTS), base_before), f"{case} changed the base model"


HOSTILE_PREFIX = {
    "projection": (_set(prefix_projection=True), None, "prefix_projection"),
    "no tokens": (_set(num_virtual_tokens=0), None, "num_virtual_tokens"),
    "other base": (_set(token_dim=768), None, "token_dim = 768"),
    "truncated weights": (None, _truncate, "not a readable safetensors file"),
    "NaN weights": (None, _nan, "not finite"),
}


@pytest.mark.parametrize("case", list(HOSTILE_PREFIX))
def test_hostile_prefix_folder_is_refused_and_base_is_unchanged(case, enc, base_before, prefix_folder, tmp_path):
    edit, weights, message = HOSTILE_PREFIX[case]
    folder = _variant(prefix_folder, tmp_path / "hostile", edit, weights)
    with pytest.raises(AdapterError, match="fix:") as err:
        enc.load_expert("hostile", folder, "prefix")
    assert message in str(err.value)
    assert "hostile" not in enc.experts
    assert np.array_equal(enc.encode(TEXTS), base_before)


def _query_adapter_folder(folder: Path, **config) -> Path:
    folder.mkdir(parents=True)
    raw = {"peft_type": "ERA_QUERY_ADAPTER", "query_encoder": "bundled:layers=2", "in_dim": 384, "out_dim": 384,
           **config}
    (folder / "adapter_config.json").write_text(json.dumps(raw))
    save_file({"map.weight": torch.eye(384)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_hostile_query_adapter_folders_are_refused(enc, base_before, tmp_path):
    foreign = tmp_path / "foreign-model"
    foreign.mkdir()
    (foreign / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "os.system"}]))
    cases = {
        "foreign modules": ({"query_encoder": str(foreign)}, "outside sentence-transformers"),
        "not a model": ({"query_encoder": str(tmp_path)}, "local sentence-transformers folder"),
        "bad bundled option": ({"query_encoder": "bundled:layers=99"}, "layers=1..6"),
        "other base": ({"out_dim": 768}, "maps into 768 dimensions"),
        "bias without its tensor": ({"bias": True}, "1 tensor(s) missing (e.g. map.bias)"),
        "bias not a boolean": ({"bias": "yes"}, "bias = \"yes\" is refused: is not true or false"),
        "extra option": ({"scale_queries": 2.0}, "is not supported by kind 'query-adapter'"),
    }
    for case, (config, message) in cases.items():
        folder = _query_adapter_folder(tmp_path / case.replace(" ", "-"), **config)
        with pytest.raises(AdapterError, match="fix:") as err:
            enc.load_expert("hostile", folder, "query-adapter")
        assert message in str(err.value), case
        assert "hostile" not in enc.experts
    assert np.array_equal(enc.encode(TEXTS), base_before)


def test_unknown_kind_is_an_adapter_error(enc, lora_qv):
    with pytest.raises(AdapterError, match="unknown expert kind 'lora2'"):
        enc.load_expert("x", lora_qv, "lora2")


def test_plain_peft_query_value_adapter_works_beside_our_experts(enc, base_before, lora_qv, tmp_path):
    """A LoRA saved by plain peft on query+value only, loaded beside our query+key+value experts (either order):
    each encodes, a mixture of both encodes (no KeyError on the layers it does not target), base is unchanged."""
    fresh = Encoder()
    fresh.add_expert("ours")  # query, key, value
    with torch.no_grad():
        for name, p in fresh.transformer.named_parameters():
            if "lora_B" in name and ".ours." in name:
                p.fill_(0.01)
    fresh.load_expert("theirs", lora_qv)
    ours, theirs = fresh.encode(TEXTS, "ours"), fresh.encode(TEXTS, "theirs")
    mixed = fresh.encode(TEXTS, {"ours": 0.5, "theirs": 0.5})
    assert not np.allclose(ours, base_before) and not np.allclose(theirs, base_before)
    assert not np.allclose(mixed, ours) and not np.allclose(mixed, theirs)
    assert np.array_equal(fresh.encode(TEXTS), base_before)
    # loaded first, then ours: the same embeddings
    other = Encoder()
    other.load_expert("theirs", lora_qv)
    assert np.allclose(other.encode(TEXTS, "theirs"), theirs, atol=1e-6)
    folder = tmp_path / "ours"
    fresh.save_expert("ours", folder)
    other.load_expert("ours", folder)
    assert np.allclose(other.encode(TEXTS, {"ours": 0.5, "theirs": 0.5}), mixed, atol=1e-6)
