"""Adding a routing strategy or an expert kind is one small class and its registration.

A throw-away router and a throw-away expert kind are registered here, in the test, and nowhere else: a build with
them must accept their declared settings, record them in the manifest, and show them in the CLI and in every
page's data (explorer.pages), with no other file naming them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.experts import EXPERT_KINDS, register_kind
from explorer.experts.lora import LoraKind
from explorer.pages import PAGES, page_data
from explorer.routing import ROUTERS, Router, register
from explorer.settings import Param
from tests.conftest import two_domain_config


class LastCandidate(Router):
    """Routes every query to one fixed position among the candidates (the last by default)."""

    name = "throwaway-last"
    description = "test router: one fixed position among the candidates"
    family = "baseline"
    params = (Param("throwaway_pick", int, -1, "which candidate position the test router picks", min=-10, max=10),)

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        out[:, ctx.candidates[int(ctx.param("throwaway_pick"))]] = 1.0
        return out


class TinyLora(LoraKind):
    """LoRA of rank 2 that does not take part in DAR's weight merge."""

    name = "throwaway-tiny"
    description = "test kind: a rank-2 LoRA, never merged"
    capabilities = frozenset()
    params = (Param("r", int, 2, "rank", min=1, max=8), *LoraKind.params[1:])


@pytest.fixture(scope="module")
def registered():
    """Both registered for this module only; the registries are left as they were."""
    register(LastCandidate)
    register_kind(TinyLora)
    yield
    ROUTERS.pop(LastCandidate.name, None)
    EXPERT_KINDS.pop(TinyLora.name, None)


@pytest.fixture(scope="module")
def built(registered, tmp_path_factory, trains):
    from explorer.build import build

    folder = tmp_path_factory.mktemp("registries")
    experts = '''[[experts]]
name = "homefix"
sources = [{dataset = "homefix", source = "qrels", max_pairs = 32}]
[[experts]]
name = "pycode"
kind = "throwaway-tiny"
r = 3
sources = [{dataset = "pycode", source = "qrels", max_pairs = 32}]
'''
    config = two_domain_config(folder / "registries.toml", folder / "cache", "[routing]\nthrowaway_pick = 0\n", experts)
    return config, build(config, folder / "ws", progress=False)


def test_a_registered_router_and_kind_are_declared_settings(registered, capsys):
    from explorer.cli import main

    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "throwaway_pick" in out and 'kind = "throwaway-tiny"' in out


def test_a_registered_name_is_refused_twice(registered):
    class Other(Router):
        name = LastCandidate.name

    class OtherKind(LoraKind):
        name = TinyLora.name

    with pytest.raises(ValueError, match="already registered"):
        register(Other)
    with pytest.raises(ValueError, match="already registered"):
        register_kind(OtherKind)


def test_they_reach_the_manifest(built):
    _, ws = built
    assert LastCandidate.name in ws.strategies
    info = ws.strategy_info(LastCandidate.name)
    assert info["family"] == "baseline" and info["choices"] == ["homefix", "pycode"]
    assert ws.manifest["routing"]["throwaway_pick"] == 0  # its declared setting, as configured
    pycode = next(e for e in ws.experts if e["name"] == "pycode")
    assert pycode["kind"] == TinyLora.name and pycode["capabilities"] == []
    assert pycode["card"]["hyper_parameters"]["r"] == 3
    decisions = ws.decisions[ws.decisions["strategy"] == LastCandidate.name]
    assert (decisions["chosen"] == "homefix").all()  # throwaway_pick = 0: the first candidate, every query


def test_they_reach_the_cli(built, capsys):
    from explorer.cli import main

    _, ws = built
    assert main(["eval", str(ws.path)]) == 0
    out = capsys.readouterr().out
    assert LastCandidate.name in out and "fixed:pycode" in out
    assert main(["view", "experts", str(ws.path), "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert next(c for c in cards if c["name"] == "pycode")["kind"] == TinyLora.name


def test_they_reach_every_page_s_data(built):
    _, ws = built
    for key, page in PAGES.items():
        params = {"strategy": LastCandidate.name} if "strategy" in {p.name for p in page.params} else {}
        text = json.dumps(page_data(key, ws, params))
        # every page that shows strategies shows the registered one (Complementarity shows encoders only)
        assert LastCandidate.name in text or not any(f'"{s}"' in text for s in ws.strategies
                                                     if s not in ws.encoders), key
        assert "pycode" in text, key
    experts = page_data("experts", ws)
    assert any(c["kind"] == TinyLora.name for c in experts["cards"])
    assert LastCandidate.name in experts["whatif"]["all_on"][0]  # the what-if rebuilds it from the manifest


def test_view_names_the_page_or_parameter_it_does_not_know(built, capsys):
    from explorer.cli import main

    _, ws = built
    assert main(["view", "decision", str(ws.path)]) == 2
    assert "no page 'decision'" in capsys.readouterr().err
    assert main(["view", "decisions", str(ws.path), "--param", "mesure=R@100"]) == 2
    err = capsys.readouterr().err
    assert "reads no parameter 'mesure'" in err and "measure" in err and "Traceback" not in err
    assert main(["view", "decisions", str(ws.path), "--param", "measure=R@100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["measure"] == "R@100"
