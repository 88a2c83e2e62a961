"""Every setting is declared once and the whole config is checked before any model loads: a config with the
mistakes users make stops at once, listing every problem with its table, key and fix (exit 2), and writes
nothing. The CLI checks its values against the workspace."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.config import ConfigError, load_config, settings_markdown

from .conftest import ROOT, write_beir

CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"  # a real dataset without a train split


def _dataset(root: Path, name: str, train: bool = True) -> Path:
    corpus = [{"_id": f"{name}{i}", "title": f"{name} {i}", "text": f"{name} document {i} about {name} topic {i % 3}"}
              for i in range(12)]
    queries = [{"_id": f"q{name}{i}", "text": f"{name} topic {i}"} for i in range(6)]
    qrels = {"test": [(f"q{name}{i}", f"{name}{i}", 1) for i in range(3)]}
    if train:
        qrels["train"] = [(f"q{name}{i}", f"{name}{i}", 1) for i in range(3, 6)]
    return write_beir(root / name, corpus, queries, qrels)


MISTAKES = """
[trainig]
epochs = 2
[training]
lr = "fast"
[index]
kind = "hsnw"
depth = -5
[routing]
tie = "first"
strategies = ["pilot-men"]
tau = 0
pilot_k = 0
gamma = -1
[[routing.variants]]
name = "base"
router = "pilot-mean"
gamma = 0.1
[evaluation]
measures = ["ndcg@10"]
reference = "pilot_mean"
[[datasets]]
name = "alpha"
path = "alpha"
train_spilt = "train"
ignore_identical_id = true
[[datasets]]
name = "../../escape"
path = "beta"
[[datasets]]
name = "{long}"
path = "beta"
[[datasets]]
name = "gamma"
path = "gamma"
train_split = "train"
[[experts]]
name = "alpha"
epoch = 7
r = "eight"
virtual_tokens = 4
sources = [{{dataset = "alpha", source = "qrels"}}, {{dataset = "alpah", source = "crops"}}]
[[experts]]
name = "loaded"
adapter = "no-such-adapter"
"""

EXPECTED = [
    r"\[the config file\] `trainig` is not a setting of this table \(fix: did you mean `training`\?\)",
    r"\[training\] `lr` is \"fast\" \(a string\), not a number",
    r"\[index\] `kind` \"hsnw\" is not one of .*did you mean \"hnsw\"\?",
    r"\[index\] `depth` is -5, out of range \(fix: use a value ≥ 1",
    r"\[routing\] `tie` is not a setting of this table \(fix: did you mean `ties`\?\)",
    r"\[routing\] `tau` is 0, out of range \(fix: use a value > 0",
    r"\[routing\] `pilot_k` is 0, out of range",
    r"\[routing\] `gamma` is -1, out of range",
    r"\[routing.variants 'base'\] `name` 'base' is already a strategy's name",
    r"\[routing.variants 'base'\] `gamma` is a setting of other routers, not of 'pilot-mean'",
    r"\[routing\] `strategies` 'pilot-men' is not a strategy \(fix: did you mean 'pilot-mean'\?",
    r"\[evaluation\] `reference` 'pilot_mean' is not a strategy of this build \(fix: did you mean 'pilot-mean'\?",
    r"\[evaluation\] `measures` 'ndcg@10' is not an ir_measures measure \(fix: did you mean 'nDCG@10'\?",
    r"\[datasets 'alpha'\] `train_spilt` is not a setting of this table \(fix: did you mean `train_split`\?\)",
    r"\[datasets 'alpha'\] `ignore_identical_id` .*did you mean `ignore_identical_ids`\?",
    r"\[datasets '\.\./\.\./escape'\] `name` the dataset name '\.\./\.\./escape' is not 1 to 64 letters",
    r"\[datasets 'aaaa+'\] `name` the dataset name 'a+' is not 1 to 64 letters",
    r"\[datasets 'gamma'\] `path` .*gamma does not exist",
    r"\[experts 'alpha'\] `epoch` is not a setting of this table \(fix: did you mean `epochs`\?\)",
    r"\[experts 'alpha'\] `r` is \"eight\" \(a string\), not an integer",
    r"\[experts 'alpha'\] `virtual_tokens` is a setting of kind \"prefix\", not of kind \"lora\"",
    r"\[experts 'alpha' sources #1\] `source` 'qrels' reads qrels/train.tsv, which dataset 'alpha' does not have",
    r"\[experts 'alpha' sources #2\] `dataset` 'alpah' is not a configured dataset \(fix: did you mean 'alpha'\?",
    r"\[experts 'loaded'\] `adapter` .*no-such-adapter does not exist",
]


@pytest.fixture
def mistakes(tmp_path) -> Path:
    _dataset(tmp_path, "alpha", train=False)
    _dataset(tmp_path, "beta")
    cfg = tmp_path / "mistakes.toml"
    cfg.write_text(f'cache_dir = "{tmp_path / "cache"}"\n' + MISTAKES.format(long="a" * 65))
    return cfg


def test_every_mistake_is_reported_at_once(mistakes):
    with pytest.raises(ConfigError) as err:
        load_config(mistakes)
    text = str(err.value)
    assert text.startswith(f"{mistakes}: {len(EXPECTED)} problem(s) in the config:")
    for pattern in EXPECTED:
        assert re.search(pattern, text), f"missing: {pattern}\n{text}"
    assert len(err.value.problems) == len(EXPECTED)
    assert all(p.fix for p in err.value.problems)


def test_the_cli_stops_before_any_model_loads_and_writes_nothing(mistakes, tmp_path, capsys, monkeypatch):
    from sentence_transformers import SentenceTransformer

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for a config with mistakes")

    monkeypatch.setattr(SentenceTransformer, "__init__", no_model)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["build", str(mistakes), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert err.count("\n  - ") == len(EXPECTED)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no cache, no workspace


def test_qrels_source_on_a_real_dataset_without_train_split(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[datasets]]\nname = "cranfield"\npath = "{CRANFIELD}"\n'
                   '[[experts]]\nname = "cranfield"\nsources = [{dataset = "cranfield", source = "qrels"}]\n')
    with pytest.raises(ConfigError, match=r"which dataset 'cranfield' does not have \(it has: test\)"):
        load_config(cfg)
    cfg.write_text(cfg.read_text().replace('source = "qrels"', 'source = "crops"'))
    assert load_config(cfg).experts[0].sources == [{"dataset": "cranfield", "source": "crops"}]


@pytest.mark.parametrize("text, message", [
    ('[[datasets]]\npath = "beta"\nname = "/tmp/abs"\n', "the dataset name '/tmp/abs' is not"),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "base"\nmulti_task = true\n', "reserved for the base model"),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nkind = "lora2"\nmulti_task = true\n',
     '`kind` "lora2" is not one of "lora" / "prefix" / "query-adapter" / "bm25" (fix: did you mean "lora"?'),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nkind = "query-adapter"\nencoder = "bundled:layers=9"\n'
     'sources = [{dataset = "beta"}]\n', "bundled[:layers=1..6]"),
    ('[[datasets]]\npath = "beta"\n[[routing.variants]]\nname = "pilot-mean/x"\nrouter = "pilot-maen"\n',
     "did you mean 'pilot-mean'?"),
    ('[[datasets]]\npath = "beta"\n[[routing.variants]]\nname = "p/x"\nrouter = "prototype-merge"\ntau = "hot"\n',
     '`tau` is "hot" (a string), not a number'),
    ('[[datasets]]\npath = "beta"\n[evaluation]\nmeasures = ["nDCG@10", "nDCG@10"]\n', "listed twice"),
    ('[[datasets]]\npath = "beta"\n[routing]\nstrategies = ["base"]\n[evaluation]\nreference = "pilot-mean"\n',
     "'pilot-mean' is not a strategy of this build"),
    ('[datasets]\npath = "beta"\n', "is not a list of tables"),
    ('[[datasets]]\npath = "beta"\ntest_split = "dev"\n', "'dev' has no qrels/dev.tsv"),
    ('cache_dir = "loop"\n[[datasets]]\npath = "beta"\n', "loop is a symbolic link loop"),
    ('cache_dir = "beta/corpus.jsonl"\n[[datasets]]\npath = "beta"\n', "corpus.jsonl is a file, not a folder"),
    # stop_split names a qrels split by its name only: a path, the evaluated split or a wrong type is refused
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nsources = [{dataset = "beta", source = "crops"}]\n'
     'stop_split = "../beta/qrels/test"\n', "dataset 'beta' has no split '../beta/qrels/test' (it has: test, train)"),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nsources = [{dataset = "beta", source = "crops"}]\n'
     'stop_split = "test"\n', "'test' holds the evaluated queries of 'beta': choosing the epoch on them reads the test"),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nsources = [{dataset = "beta", source = "crops"}]\n'
     'stop_split = 3\n', "`stop_split` is 3 (an integer), not a string"),
    ('[training]\nstop_split = "train"\n[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nmulti_task = true\n',
     "`stop_split` needs an expert trained on one configured dataset"),
    ('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nsources = [{dataset = "beta", source = "crops"}]\n'
     'mask_relevant = "yes"\n', "`mask_relevant` is \"yes\" (a string), not a boolean"),
])
def test_single_mistakes(tmp_path, text, message):
    _dataset(tmp_path, "beta")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert message in str(err.value)


@pytest.mark.slow
def test_a_hostile_adapter_folder_is_reported_with_the_config(tmp_path):
    from peft import LoraConfig, get_peft_model

    from explorer.encoders import Encoder

    _dataset(tmp_path, "beta")
    model = get_peft_model(copy.deepcopy(Encoder().transformer), LoraConfig(r=2, target_modules=["query"]))
    model.save_pretrained(str(tmp_path / "adapter"))
    raw = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({**raw, "init_lora_weights": "pissa"}))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[datasets]]\npath = "beta"\n[[experts]]\nname = "x"\nadapter = "adapter"\n')
    with pytest.raises(ConfigError, match=r"`adapter` .*init_lora_weights = \"pissa\" is refused"):
        load_config(cfg)


def test_the_readme_tables_are_the_declarations():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert block, "README.md lacks the generated settings block"
    assert block.group(1).strip() == settings_markdown().strip(), "README settings are stale: run explorer settings"


# --- the CLI against a workspace ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loaded_workspace(tmp_path_factory, trains) -> Path:
    """A real workspace of two tiny datasets and two LoRA experts loaded from plain peft folders: no training."""
    import torch
    from peft import LoraConfig, get_peft_model

    from explorer.build import build
    from explorer.encoders import Encoder

    root = tmp_path_factory.mktemp("loaded")
    base = Encoder().transformer
    lines = [f'cache_dir = "{root / "cache"}"', "[layout]", "umap = false"]
    for i, name in enumerate(("alpha", "beta")):
        _dataset(root, name)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, target_modules=["query", "value"]))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.fill_(0.02 * (i + 1))
        model.save_pretrained(str(root / f"adapter-{name}"))
        lines += ["[[datasets]]", f'name = "{name}"', f'path = "{name}"', 'train_split = "train"',
                  "[[experts]]", f'name = "{name}"', f'adapter = "adapter-{name}"']
    (root / "c.toml").write_text("\n".join(lines) + "\n")
    build(root / "c.toml", root / "ws", echo=lambda _: None, progress=False)
    return root / "ws"


def test_cli_values_are_checked_against_the_workspace(loaded_workspace, capsys):
    ws = str(loaded_workspace)
    assert main(["eval", ws, "--measure", "ndcg@10"]) == 2
    err = capsys.readouterr().err
    assert "--measure 'ndcg@10' is not in this workspace (fix: did you mean 'nDCG@10'? use one of nDCG@10" in err
    assert main(["eval", ws, "--reference", "pilot_mean"]) == 2
    assert "--reference 'pilot_mean' is not in this workspace (fix: did you mean 'pilot-mean'?" in \
        capsys.readouterr().err
    assert main(["whatif", ws, "--without", "alpah"]) == 2
    assert "--without 'alpah' is not in this workspace (fix: did you mean 'alpha'? use one of alpha, beta)" in \
        capsys.readouterr().err
    assert main(["eval", ws, "--measure", "R@100", "--reference", "pilot-mean"]) == 0
    capsys.readouterr()


def test_whatif_without_may_be_repeated(loaded_workspace, capsys):
    ws = str(loaded_workspace)
    assert main(["whatif", ws, "--without", "alpha", "--without", "beta"]) == 0
    both = capsys.readouterr().out
    assert main(["whatif", ws, "--without", "alpha", "beta"]) == 0
    assert capsys.readouterr().out == both
    assert main(["whatif", ws, "--without", "alpha"]) == 0
    assert capsys.readouterr().out != both


def _wrong_value(param):
    """A value of the wrong type for `param` (a string where a number or flag goes, a number elsewhere)."""
    return '"x"' if param.type in (int, float, bool, list) else "3"


def _table(lines: dict) -> str:
    return "".join(f"{k} = {v}\n" for k, v in lines.items())


def _wrongly_typed_cases():
    from explorer.config import DATASET_PARAMS, expert_table

    dataset = {"path": '"beta"', "train_split": '"train"'}
    expert = {"name": '"e"', "sources": '[{dataset = "beta"}]'}
    for p in DATASET_PARAMS:
        if p.name != "path":
            yield "[[datasets]]\n" + _table({**dataset, p.name: _wrong_value(p)}), p.name
    for p in expert_table():
        yield ("[[datasets]]\n" + _table(dataset) + "[[experts]]\n" + _table({**expert, p.name: _wrong_value(p)}),
               p.name)


@pytest.mark.parametrize("text, key", list(_wrongly_typed_cases()))
def test_a_wrongly_typed_key_is_reported_not_raised(tmp_path, text, key):
    """A refused value leaves its default in its place, so checking goes on to the end (once a KeyError)."""
    _dataset(tmp_path, "beta")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert f"`{key}`" in str(err.value), str(err.value)


def test_the_device_is_a_declared_setting(tmp_path, monkeypatch):
    import torch

    _dataset(tmp_path, "beta")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\ndevice = "auto"\n[[datasets]]\npath = "beta"\n')
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_config(cfg).device == "cpu"  # auto: a GPU only where there is one
    cfg.write_text(cfg.read_text().replace('"auto"', '"cuda"'))
    with pytest.raises(ConfigError, match='`device` "cuda" asked for, but torch sees no GPU'):
        load_config(cfg)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_config(cfg).device == "cuda"
    cfg.write_text(cfg.read_text().replace('"cuda"', '"tpu"'))
    with pytest.raises(ConfigError, match="device"):
        load_config(cfg)


def test_a_config_extends_another_in_its_folder(tmp_path):
    _dataset(tmp_path, "beta")
    _dataset(tmp_path, "gamma")
    (tmp_path / "core.toml").write_text(
        'title = "core"\n[training]\nepochs = 2\nlr = 1e-3\n[routing]\nties = "first"\n'
        '[[routing.variants]]\nname = "pilot-mean/skip"\nrouter = "pilot-mean"\nties = "skip"\n'
        '[[datasets]]\npath = "beta"\ntrain_split = "train"\n'
        '[[experts]]\nname = "beta"\nsources = [{dataset = "beta"}]\n')
    child = tmp_path / "more.toml"
    child.write_text(
        'extends = "core.toml"\ntitle = "core and more"\n[training]\nepochs = 5\n[routing]\npilot_k = 2\n'
        '[[routing.variants]]\nname = "pilot-mean/k3"\nrouter = "pilot-mean"\npilot_k = 3\n'
        '[[datasets]]\npath = "gamma"\ntrain_split = "train"\n'
        '[[experts]]\nname = "prefix-beta"\nkind = "prefix"\ncandidate = false\nsources = [{dataset = "beta"}]\n')
    cfg = load_config(child)
    assert cfg.title == "core and more" and [d.name for d in cfg.datasets] == ["beta", "gamma"]
    assert [e.name for e in cfg.experts] == ["beta", "prefix-beta"]
    assert cfg.experts[0].train["epochs"] == 5 and cfg.experts[0].train["lr"] == 1e-3  # tables merge key by key
    assert cfg.routing["ties"] == "first" and cfg.routing["pilot_k"] == 2
    assert [v["name"] for v in cfg.routing["variants"]] == ["pilot-mean/skip", "pilot-mean/k3"]
    # the core's experts are the same specs either way, so a build of the child reuses their cache entries
    core = load_config(tmp_path / "core.toml")
    core.experts[0].train["epochs"] = 5
    assert core.experts[0].cache_key({}, "b") == cfg.experts[0].cache_key({}, "b")
    for bad, message in (('"../core.toml"', "is not a .toml file name"), ('"core.txt"', "is not a .toml file name"),
                         ('"more.toml"', "makes a loop"), ('"none.toml"', "no such config file"), ("3", "file name")):
        child.write_text(f"extends = {bad}\n")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(child)


def test_extends_names_a_plain_file_in_a_chain_of_at_most_four(tmp_path, capsys):
    _dataset(tmp_path, "beta")
    child = tmp_path / "c.toml"
    child.write_text('extends = "a.toml\\u0000.toml"\n')
    with pytest.raises(ConfigError, match=r"`extends` 'a.toml\\x00.toml' is not a .toml file name"):
        load_config(child)
    assert main(["build", str(child), "--out", str(tmp_path / "ws")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    for i in range(1, 6):  # c1 extends c2 ... extends c5: five files
        (tmp_path / f"c{i}.toml").write_text(f'extends = "c{i + 1}.toml"\n' if i < 5 else
                                             '[[datasets]]\npath = "beta"\n')
    with pytest.raises(ConfigError, match="makes a loop or a chain over 4 files"):
        load_config(tmp_path / "c1.toml")
    assert [d.name for d in load_config(tmp_path / "c2.toml").datasets] == ["beta"]  # four files: accepted


def test_devices_are_checked_before_any_model_loads(tmp_path, monkeypatch):
    import torch

    _dataset(tmp_path, "beta")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[compute]\ndevices = ["cuda:999", "../../etc", ""]\n[[datasets]]\npath = "beta"\n')
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = str(err.value)
    assert "3 problem(s)" in text and "[compute] `devices` '../../etc' is not a device" in text
    assert "[compute] `devices` '' is not a device" in text
    assert "[compute] `devices` 'cuda:999': torch sees 0 GPU(s) on this machine" in text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg.write_text('[compute]\ndevices = ["cuda:0", "cuda:1", "cpu", "cuda"]\n[[datasets]]\npath = "beta"\n')
    assert load_config(cfg).compute["devices"] == ["cuda:0", "cuda:1", "cpu", "cuda"]
    cfg.write_text('[compute]\ndevices = ["cuda:2"]\n[[datasets]]\npath = "beta"\n')
    with pytest.raises(ConfigError, match="'cuda:2': torch sees 2 GPU"):
        load_config(cfg)


@pytest.mark.parametrize("share, message", [
    ("1e-300", "`judged_split` 1e-300 of the 3 judged queries of 'test' leaves 0 to train the expert and 3 to "
               "evaluate (fix: use a share from 0.33 to 0.67)"),
    ("0.9", "`judged_split` 0.9 of the 1 judged queries of 'test' leaves 1 to train the expert and 0 to evaluate"),
])
def test_a_judged_split_that_leaves_no_pairs_stops_before_any_model(tmp_path, capsys, monkeypatch, share, message):
    """The split is deterministic from the qrels, so the build's data stage (before any model loads) knows it
    leaves the expert nothing to train on (or nothing to evaluate): exit 2 naming the key, nothing written."""
    import explorer.build as build_module

    monkeypatch.setattr(build_module, "Encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    _dataset(tmp_path, "beta", train=False)
    if share == "0.9":  # one judged query only
        (tmp_path / "beta" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nqbeta0\tbeta0\t1\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'cache_dir = "{tmp_path / "cache"}"\n[[datasets]]\npath = "beta"\njudged_split = {share}\n'
                   '[[experts]]\nname = "beta"\nsources = [{dataset = "beta", source = "qrels"}]\n')
    load_config(cfg)  # the config alone is sound
    assert main(["build", str(cfg), "--out", str(tmp_path / "ws"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"[datasets 'beta'] {message}" in err and "Traceback" not in err
    assert not (tmp_path / "ws").exists() and not (tmp_path / "cache").exists()
