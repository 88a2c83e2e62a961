"""Hostile input to mixing and the lexical expert: fusion settings out of range, soft or hybrid variants that
cannot be, a lexical expert on a corpus with empty texts, a system without embeddings asked for, forged settings in
a workspace's manifest and card: each a clear message naming the key, the file or the system, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.config import ConfigError, load_config
from explorer.workspace import Workspace, WorkspaceError

from .conftest import write_beir


def _dataset(root: Path, name: str, text: str | None = None) -> Path:
    corpus = [{"_id": f"{name}{i}", "title": "" if text is not None else f"{name} {i}",
               "text": text if text is not None else f"{name} document {i} about topic {i % 3}"} for i in range(8)]
    queries = [{"_id": f"q{i}", "text": f"topic {i}"} for i in range(4)]
    return write_beir(root / name, corpus, queries, {"test": [(f"q{i}", f"{name}{i}", 1) for i in range(4)],
                                                     "train": [(f"q{i}", f"{name}{i}", 1) for i in range(2)]})


def _config(tmp_path: Path, body: str, text: str | None = None) -> Path:
    data = _dataset(tmp_path, "alpha", text)
    path = tmp_path / "c.toml"
    path.write_text(f'cache_dir = "{tmp_path / "cache"}"\n{body}\n[[datasets]]\nname = "alpha"\npath = "{data}"\n'
                    'train_split = "train"\n[[experts]]\nname = "alpha"\nsources = [{dataset = "alpha"}]\n')
    return path


def _problems(tmp_path: Path, body: str) -> list:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, body))
    return err.value.problems


@pytest.mark.parametrize("body, key", [
    ("[routing]\nrrf_k = -1", "rrf_k"),
    ("[routing]\nsoft_temperature = 0", "soft_temperature"),
    ("[routing]\nsoft_k = 0", "soft_k"),
    ("[routing]\nhybrid_weight = 1.5", "hybrid_weight"),
    ("[routing]\nfusion_norm = \"max\"", "fusion_norm"),
    ("[routing]\nhybrid_datasets = \"sometimes\"", "hybrid_datasets"),
    ("[routing]\nqpp_depth = 1", "qpp_depth"),
    ('[[routing.variants]]\nname = "rrf/soft"\nrouter = "rrf"\nsoft = true', "soft"),
    ('[[routing.variants]]\nname = "x/soft"\nrouter = "instance-oracle"\nsoft = true', "soft"),
    ('[[routing.variants]]\nname = "x/hybrid"\nrouter = "prototype-merge"\nhybrid = true', "hybrid"),
    ('[[routing.variants]]\nname = "x/hybrid"\nrouter = "pilot-mean"\nhybrid = true', "hybrid"),  # no BM25
    ('[[routing.variants]]\nname = "x/soft"\nrouter = "pilot-mean"\nsoft = true\nsoft_temperature = -2',
     "soft_temperature"),
])
def test_mixing_settings_out_of_range_name_their_key(tmp_path, body, key):
    problems = _problems(tmp_path, body)
    assert {p.key for p in problems} == {key}, [str(p) for p in problems]
    assert all(p.fix for p in problems)


@pytest.mark.parametrize("expert, key", [
    ('kind = "bm25"\nsources = [{dataset = "alpha"}]', "sources"),
    ('kind = "bm25"\nadapter = "somewhere"', "adapter"),
    ('kind = "bm25"\nstemmer = "klingon"', "stemmer"),
    ('kind = "bm25"\nk1 = -1.0', "k1"),
    ('kind = "bm25"\nvirtual_tokens = 8', "virtual_tokens"),
])
def test_a_lexical_expert_refuses_what_it_cannot_use(tmp_path, expert, key):
    problems = _problems(tmp_path, f'[[experts]]\nname = "bm25"\n{expert}')
    assert key in [p.key for p in problems], [str(p) for p in problems]


def test_a_lexical_expert_on_empty_texts_stops_before_any_model_loads(tmp_path, capsys, monkeypatch):
    import explorer.build as build_module

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the corpus was checked")

    monkeypatch.setattr(build_module, "Encoder", no_model)
    config = _config(tmp_path, '[[experts]]\nname = "bm25"\nkind = "bm25"', text=" a ")
    assert main(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "expert 'bm25'" in err and "cannot index dataset 'alpha'" in err and "corpus.jsonl" in err
    assert "Traceback" not in err and not (tmp_path / "ws").exists()


def test_bm25_of_a_corpus_of_stopwords_is_refused_by_name():
    from explorer.lexical import LexicalError, build_lexical

    with pytest.raises(LexicalError, match="every word of every document is a stopword"):
        build_lexical(["the of and", "a an the"], {"stopwords": "en", "stemmer": "english"}, "expert 'bm25'")
    with pytest.raises(LexicalError, match="no document holds a word"):
        build_lexical(["", " ", "?"], {}, "expert 'bm25'")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from bench.synthetic import synthetic_workspace

    return synthetic_workspace(tmp_path_factory.mktemp("syn") / "ws", n_eval=120, n_pilot_per_dataset=20,
                               n_datasets=3, dim=16, n_docs=300, depth=20)


def test_a_system_without_embeddings_is_named_and_the_map_still_draws(synthetic, capsys):
    ws = Workspace(synthetic)
    with pytest.raises(WorkspaceError, match=r"bm25 has no query embedding.*fix: ask for one of base"):
        ws.embeddings("bm25")
    assert not ws.has_embedding("bm25") and ws.has_embedding("base")
    assert main(["view", "map", str(synthetic), "--param", "strategy=fixed:bm25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {q["routed"] for q in out["queries"] if q["role"] == "eval"} == {"bm25"}


@pytest.mark.parametrize("where, value, named", [
    (("strategies", "pilot-mean/soft", "settings", "soft_k"), 0, "soft_k"),
    (("strategies", "pilot-mean/soft", "settings", "soft_temperature"), "hot", "soft_temperature"),
    (("strategies", "hybrid", "settings", "hybrid_on"), {"d0": "yes"}, "hybrid_on"),
    (("strategies", "rrf", "group"), "<b>mix</b>", "group"),
    (("routing", "hybrid_weight"), 7, "hybrid_weight"),
    (("routing", "fusion_norm"), "max", "fusion_norm"),
    (("routing", "qpp_depth"), "deep", "qpp_depth"),
])
def test_forged_mixing_settings_in_a_manifest_are_refused(synthetic, tmp_path, where, value, named):
    copy = tmp_path / "ws"
    shutil.copytree(synthetic, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    target = manifest[where[0]]
    if where[0] == "strategies":
        target = next(s for s in target if s["name"] == where[1])
        where = where[1:]
    for key in where[1:-1]:
        target = target.setdefault(key, {})
    target[where[-1]] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WorkspaceError, match=named):
        Workspace(copy)


def test_a_forged_bm25_card_is_refused_when_the_playground_needs_it(synthetic, tmp_path):
    from explorer.live import LiveRouter

    copy = tmp_path / "ws"
    shutil.copytree(synthetic, copy)
    (copy / "experts" / "bm25").mkdir(parents=True)
    (copy / "experts" / "bm25" / "card.json").write_text(json.dumps({"hyper_parameters": {"stemmer": "../x"}}))

    class Loaded:  # stands for an encoder that already holds the workspace's neural experts
        experts = {"e0", "e1", "e2", "multi-task"}

    router = LiveRouter(Workspace(copy), Loaded())
    with pytest.raises(WorkspaceError, match=r"card.json hyper_parameters.*stemmer"):
        router.lexical_index("bm25", "d0")


def test_a_format_2_workspace_still_opens_and_is_grouped_by_family(synthetic, tmp_path):
    from explorer import views

    copy = tmp_path / "ws"
    shutil.copytree(synthetic, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 2
    for s in manifest["strategies"]:
        s.pop("group", None), s.pop("settings", None)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    groups = views.strategy_groups(Workspace(copy))
    assert groups["pilot-mean"] == "choose" and groups["instance-oracle"] == "oracle"
    assert groups["base"] == "fixed" and groups["fixed:bm25"] == "lexical"
