"""Hostile base-model folders: one rule for every loader (the build, `explorer train`, the Encoder itself, an ERA
query encoder), checked by the config before any model loads; the bundled model's embeddings are unchanged after
every refused case. And the base fingerprint: the weights' bytes, hashed once per file and remembered."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from explorer.base_model import base_fingerprint, resolve_base
from explorer.cli import main
from explorer.config import ConfigError, load_config
from explorer.model_folders import ModelFolderError, load_model, model_problem

from .conftest import write_beir

TEXTS = ["how do I fix a leaking tap", "python list comprehension", "a"]
TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"


def model_folder(root: Path, modules=None, files: dict | None = None, weights: bytes = b"\0" * 64) -> Path:
    """A small sentence-transformers-shaped folder: modules.json, a config, and model.safetensors (`weights`)."""
    root.mkdir(parents=True, exist_ok=True)
    modules = modules if modules is not None else [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER},
                                                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING}]
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8}))
    if weights is not None:
        (root / "model.safetensors").write_bytes(weights)
    for name, body in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body if isinstance(body, bytes) else json.dumps(body).encode())
    return root


def _module(kind: str, path: str = "") -> list:
    return [{"idx": 0, "name": "0", "path": path, "type": kind}]


HOSTILE = {
    "pickled-only": (lambda r: model_folder(r, weights=None, files={"pytorch_model.bin": b"\x80\x04pickle"}),
                     "holds pickled weights (pytorch_model.bin) without safetensors"),
    "pickled-dense": (lambda r: model_folder(r, _module(TRANSFORMER) + [
        {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}],
        files={"2_Dense/pytorch_model.bin": b"\x80\x04pickle"}), "holds pickled weights (pytorch_model.bin)"),
    "custom-class": (lambda r: model_folder(r, _module("modeling_evil.Encoder")),
                     "names 'modeling_evil.Encoder' in its modules.json, a module outside"),
    "st-namespace-not-a-module": (lambda r: model_folder(r, _module("sentence_transformers.util.import_from_string")),
                                  "a module outside sentence-transformers' own"),
    "absolute-path": (lambda r: model_folder(r, _module(TRANSFORMER, "/etc")), "'/etc' in its modules.json, which "
                      "leaves the folder"),
    "dotdot-path": (lambda r: model_folder(r, _module(TRANSFORMER, "../other")), "which leaves the folder"),
    "link-out": (lambda r: (model_folder(r, _module(TRANSFORMER, "sub")), (r / "sub").symlink_to("/tmp")),
                 "'sub' in its modules.json, which leaves the folder"),
    "auto-map": (lambda r: model_folder(r, files={"config.json": {"auto_map": {"AutoModel": "evil.Model"}}}),
                 "asks for custom code (auto_map / trust_remote_code in config.json)"),
    "trust-remote-code": (lambda r: model_folder(r, files={"sentence_bert_config.json": {
        "model_args": {"trust_remote_code": True}}}), "asks for custom code"),
    "no-modules": (lambda r: (model_folder(r), (r / "modules.json").unlink()), "no readable modules.json"),
    "modules-not-a-list": (lambda r: model_folder(r, {"type": TRANSFORMER}), "not a list of modules"),
    "hub-name": (lambda r: "sentence-transformers/all-MiniLM-L6-v2", "is not a folder, nor 'bundled' or "
                 "'all-mpnet-base-v2': models are never downloaded"),
}


def hostile(tmp_path: Path, case: str) -> str:
    made = HOSTILE[case][0](tmp_path / "model")
    return made if isinstance(made, str) else str(tmp_path / "model")


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any sentence-transformers load fails the test: every refusal must come before it."""
    from sentence_transformers import SentenceTransformer

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(SentenceTransformer, "__init__", loaded)


@pytest.mark.parametrize("case", HOSTILE)
def test_the_folder_rule_names_what_is_wrong(tmp_path, case):
    assert HOSTILE[case][1] in model_problem(hostile(tmp_path, case))


@pytest.mark.parametrize("case", HOSTILE)
def test_the_config_check_stops_a_hostile_base_before_any_model_loads(tmp_path, case, no_model_loads, capsys):
    spec = hostile(tmp_path, case)
    corpus = [{"_id": f"d{i}", "title": "", "text": f"document {i}"} for i in range(4)]
    write_beir(tmp_path / "a", corpus, [{"_id": "q", "text": "document"}], {"test": [("q", "d1", 1)]})
    config = tmp_path / "c.toml"
    config.write_text(f'cache_dir = "{tmp_path / "cache"}"\n[model]\nbase = {json.dumps(spec)}\n'
                      f'[[datasets]]\nname = "a"\npath = "{tmp_path / "a"}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "[model] `base` " in str(err.value) and HOSTILE[case][1] in str(err.value)
    assert 'fix: use "bundled", "all-mpnet-base-v2" or a local sentence-transformers folder' in str(err.value)
    assert main(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "ws").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("case", ["pickled-only", "custom-class", "auto-map", "hub-name"])
def test_every_loader_applies_the_rule(tmp_path, case, no_model_loads, capsys):
    """The Encoder itself (defence in depth), `explorer train --base` and an ERA query encoder in a config."""
    from explorer.encoders import Encoder

    spec = hostile(tmp_path, case)
    with pytest.raises(ModelFolderError, match="fix: use \"bundled\""):
        Encoder(spec)
    with pytest.raises(ModelFolderError):
        load_model(spec)
    write_beir(tmp_path / "a", [{"_id": "d", "title": "", "text": "x"}], [{"_id": "q", "text": "x"}],
               {"train": [("q", "d", 1)]})
    assert main(["train", str(tmp_path / "a"), "--name", "x", "--out", str(tmp_path / "x"), "--base", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --base {spec[:200]!r} ") and "Traceback" not in err
    config = tmp_path / "era.toml"
    config.write_text(f'[[datasets]]\nname = "a"\npath = "{tmp_path / "a"}"\ntrain_split = "train"\n'
                      f'[[experts]]\nname = "e"\nkind = "query-adapter"\nencoder = {json.dumps(spec)}\n'
                      'sources = [{dataset = "a"}]\n')
    with pytest.raises(ConfigError, match=r"\[experts 'e'\] `encoder` "):
        load_config(config)


@pytest.fixture(scope="module")
def bundled_before(trains) -> np.ndarray:
    from explorer.encoders import Encoder

    return Encoder().encode(TEXTS)


@pytest.mark.parametrize("case", HOSTILE)
def test_the_bundled_model_is_unchanged_after_each_refused_base(tmp_path, case, bundled_before):
    """A refused base changes nothing in the process: a fresh load of the bundled model embeds bit for bit as
    before."""
    from explorer.encoders import Encoder

    with pytest.raises(ModelFolderError):
        Encoder(hostile(tmp_path, case))
    np.testing.assert_array_equal(Encoder().encode(TEXTS), bundled_before)


def test_a_safe_local_copy_of_the_bundled_model_loads_as_the_base(tmp_path, bundled_before):
    from explorer.encoders import Encoder

    copy = tmp_path / "copy"
    shutil.copytree(resolve_base("bundled"), copy)
    assert model_problem(str(copy)) is None
    np.testing.assert_array_equal(Encoder(str(copy)).encode(TEXTS), bundled_before)


# --- the fingerprint --------------------------------------------------------------------------------------------
def weights(seed: int, size: int = 3 << 20) -> bytes:
    return np.random.default_rng(seed).bytes(size)


def test_same_size_weights_of_other_bytes_give_other_fingerprints(tmp_path):
    a = model_folder(tmp_path / "a", weights=weights(1))
    b = model_folder(tmp_path / "b", weights=weights(2))
    assert (a / "model.safetensors").stat().st_size == (b / "model.safetensors").stat().st_size
    assert base_fingerprint(str(a)) != base_fingerprint(str(b))
    c = tmp_path / "c"
    shutil.copytree(a, c)  # the same bytes elsewhere: the same identity (the path is not part of it)
    assert base_fingerprint(str(c)) == base_fingerprint(str(a))


def test_the_weights_are_hashed_once_and_the_memo_follows_the_file(tmp_path, monkeypatch):
    import explorer.files

    folder = model_folder(tmp_path / "m", weights=weights(3))
    memo = tmp_path / "cache" / "fingerprints.json"
    real, read = explorer.files.file_digest, []
    monkeypatch.setattr(explorer.files, "file_digest", lambda p: (read.append(Path(p).name), real(p))[1])
    weights_file = folder / "model.safetensors"
    first = base_fingerprint(str(folder), memo)
    assert read.count("model.safetensors") == 1 and memo.is_file()
    assert base_fingerprint(str(folder), memo) == first and read.count("model.safetensors") == 1  # remembered
    stat = weights_file.stat()
    os.utime(weights_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: hashed again, same bytes
    assert base_fingerprint(str(folder), memo) == first and read.count("model.safetensors") == 2
    weights_file.write_bytes(weights(4, 2 << 20))  # another size: hashed again, another identity
    assert base_fingerprint(str(folder), memo) != first and read.count("model.safetensors") == 3


@pytest.mark.parametrize("memo_text", ["[1, 2]", "{" * 5000, '{"x": 1}', "not json", json.dumps({"k": "z" * 64})])
def test_a_foreign_memo_is_ignored(tmp_path, memo_text):
    folder = model_folder(tmp_path / "m", weights=weights(5))
    expected = base_fingerprint(str(folder))
    memo = tmp_path / "fingerprints.json"
    memo.write_text(memo_text)
    assert base_fingerprint(str(folder), memo) == expected
    stamps = json.loads(memo.read_text())
    assert all(len(v) == 64 for v in stamps.values()) and any("model.safetensors" in k for k in stamps)
