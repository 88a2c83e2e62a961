"""One data path per page (issue 24): every page's URL parameters are declared once (`explorer.views`), resolved by
one function for the page and for `explorer view`, and the page draws exactly its own `data`.

Without a model: the declarations themselves (a bad value is a notice on the page and exit 2 in the CLI, naming the
parameter and the fix). With the sample workspace: for every page and every declared parameter, a link carrying a
non-default value opens the page with the same values `explorer view PAGE --param ...` resolves, and the data the
page drew is the data the CLI prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.pages import PAGES, ParamError, page_data
from explorer.views.base import NO_VALUE, UrlParam, jsonable

from .test_app import ws  # noqa: F401  (the sample workspace)

ROOT = Path(__file__).resolve().parents[1]


class FakeWorkspace:
    """Just what the declarations below read."""

    strategies = ["base", "pilot-mean", "instance-oracle"]
    measures = ["nDCG@10", "R@100"]


def test_a_declared_parameter_parses_its_kinds_and_refuses_the_rest():
    ws = FakeWorkspace()
    choice = UrlParam("strategy", choices=lambda w, v: w.strategies, default="base")
    assert choice.parse("pilot-mean", ws, {}) == "pilot-mean"
    with pytest.raises(ParamError, match="not one of the 3 valid values"):
        choice.parse("../../etc", ws, {})
    multi = UrlParam("cols", "multi", lambda w, v: w.strategies, [], max_items=2)
    assert multi.parse("base,pilot-mean", ws, {}) == ["base", "pilot-mean"]
    assert multi.parse(["base", "base"], ws, {}) == ["base"]  # repeated keys of a URL, each once
    with pytest.raises(ParamError, match="at most 2"):
        multi.parse("base,pilot-mean,instance-oracle", ws, {})
    flag = UrlParam("sig", "bool", default=True)
    assert flag.parse("0", ws, {}) is False and flag.parse("true", ws, {}) is True
    with pytest.raises(ParamError, match="true or false"):
        flag.parse("maybe", ws, {})
    number = UrlParam("margin", "float", default=0.05, min=0.0, max=1.0)
    assert number.parse("0.5", ws, {}) == 0.5
    for bad in ("-0.1", "nan", "inf", "x"):
        with pytest.raises(ParamError):
            number.parse(bad, ws, {})
    text = UrlParam("q", "text", default="", max_length=10)
    with pytest.raises(ParamError, match="at most 10"):
        text.parse("x" * 11, ws, {})


def test_a_bad_value_is_a_notice_on_the_page_and_a_refusal_in_the_cli(ws):
    page = PAGES["map"]
    resolved = page.resolve(ws, {"layout": "evil", "strategy": "nope", "datasets": "../..,nope"})
    assert resolved.bad == ["layout", "strategy", "datasets"]
    assert len(resolved.notices) == 3 and all("showing" in n for n in resolved.notices)
    assert resolved.values["layout"] == page.param(ws, "layout").default_value(ws, {})
    with pytest.raises(ParamError, match=r"--param layout='evil' .* \(fix: use one of umap, pca\)"):
        page.resolve(ws, {"layout": "evil"}, strict=True)
    with pytest.raises(ParamError, match="reads no parameter 'sort'"):
        page.resolve(ws, {"sort": "regret"}, strict=True)
    assert page.resolve(ws, {"sort": "regret"}).notices == []  # another page's parameter: not this page's


def test_the_cli_refuses_what_the_page_would_not_show(ws, capsys):
    from explorer.cli import main

    for page, param in (("overview", "reference=nope"), ("map", "layout=evil"), ("map", "datasets=../..,nope"),
                        ("errors", "margin=-1"), ("overview", "sig=maybe")):
        assert main(["view", page, str(ws.path), "--param", param]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --param ") and "(fix: " in err, err
    assert main(["view", "errors", str(ws.path), "--param", "use_margin=1", "--param", "margin=0.0"]) == 0
    assert "queries: 0 item(s)" in capsys.readouterr().out  # the margin filter applies (no margin is below 0)


def _other_value(p: UrlParam, ws, values: dict):
    """A valid value of `p` other than its default (None when it has only one)."""
    default = p.default_value(ws, values)
    if p.kind == "bool":
        return not default
    if p.kind in ("int", "float"):
        return (p.min or 0) + 1 if default != (p.min or 0) + 1 else (p.min or 0) + 2
    if p.kind == "text":
        return _text_value(p, ws)
    options = [o for o in p.options(ws, values) if o != default and o != NO_VALUE]
    if p.kind == "multi":
        return options[:2] or None
    return options[-1] if options else None


def _text_value(p: UrlParam, ws):
    """A valid non-default text: a typed query, a cohort of test queries and its name, a map search."""
    from explorer.cohort import encode

    ev = ws.eval_rows()
    texts = {"q": "how do I fix a dripping tap", "cohort": encode(ev["row"].to_numpy()[::4], len(ws.queries)),
             "cohort_name": "every fourth", "find": str(ev["qid"].iloc[1])}
    return texts.get(p.name)


def _cases(ws):
    """(page key, parameter, its URL text) for every declared parameter that has a non-default valid value."""
    out = []
    for key, page in PAGES.items():
        defaults = page.resolve(ws, {}).values
        for p in page.all_params(ws):
            value = _other_value(p, ws, defaults)
            if value is not None and p.name != "doc":  # doc: only a document the page shows (tested below)
                out.append((key, p.name, p.text(value)))
    return out


@pytest.mark.slow
def test_every_page_draws_what_explorer_view_prints_for_every_parameter(ws, capsys):
    """A link with one non-default parameter: the page's values are the CLI's, and so is every byte of its data."""
    from streamlit.testing.v1 import AppTest

    from explorer.cli import main

    cases = _cases(ws)
    assert {k for k, _, _ in cases} == set(PAGES) and len(cases) >= 35
    for key, name, text in cases:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
        at.session_state["workspace_path"] = str(ws.path)
        at.query_params.update({"page": key, name: text})
        at.run()
        assert not at.exception, (key, name, [e.value for e in at.exception])
        refused = [w.value for w in at.warning if "The link's" in w.value]
        assert not refused, (key, name, refused)
        shown = at.session_state["_page_values"][key]
        args = ["view", key, str(ws.path), "--json"] + [
            arg for v in (text if isinstance(text, list) else [text]) for arg in ("--param", f"{name}={v}")]
        assert main(args) == 0, (key, name)
        printed = json.loads(capsys.readouterr().out)
        assert printed["params"] == jsonable(shown), (key, name)
        if key != "playground":  # its data times the live query: the same except the timings (below)
            assert printed == page_data(key, ws, shown), (key, name)


@pytest.mark.slow
def test_the_playground_searches_the_routed_experts_corpus(ws):
    data = page_data("playground", ws, {"q": "reverse a linked list in python", "strategy": "pilot-mean"})
    chosen = data["decisions"][[d["strategy"] for d in data["decisions"]].index("pilot-mean")]["choice"]
    own = next(e["datasets"] for e in ws.experts if e["name"] == chosen)
    assert data["corpus"] == own[0] and chosen in data["corpus_reason"]
    searched = next(iter(data["searches"].values()))
    docs = set(ws.docs(own[0])["doc_id"])
    assert searched and all(d["doc_id"] in docs for d in searched)
    picked = page_data("playground", ws, {"q": "reverse a linked list in python", "dataset": ws.datasets[0]})
    assert picked["corpus"] == ws.datasets[0]  # a corpus picked by hand is searched as picked


@pytest.mark.slow
def test_the_context_survives_moving_between_pages(ws):
    """The strategy chosen on one page is the next page's; the inspected query survives a trip to Error analysis;
    a page that cannot show the context's strategy says so and leaves the context as it was."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["workspace_path"] = str(ws.path)
    at.query_params.update({"page": "map"})
    at.run()
    picked = next(s for s in ws.strategies if s not in ("base", "pilot-mean"))
    at.selectbox(key="w_map_strategy").set_value(picked).run()
    for key in ("decisions", "errors", "map", "inspector"):
        at.switch_page(PAGES[key].script).run()
        assert not at.exception
        assert at.selectbox(key=f"w_{key}_strategy").value == picked, key
    row = int(ws.eval_rows(ws.datasets[-1])["row"].iloc[2])
    at.selectbox(key="w_inspector_dataset").set_value(ws.datasets[-1]).run()
    at.selectbox(key="w_inspector_row").set_value(row).run()
    at.switch_page(PAGES["errors"].script).run()
    at.switch_page(PAGES["inspector"].script).run()
    assert at.selectbox(key="w_inspector_row").value == row
    assert at.selectbox(key="w_inspector_dataset").value == ws.datasets[-1]
    at.selectbox(key="w_inspector_strategy").set_value("instance-oracle").run()
    at.switch_page(PAGES["playground"].script).run()  # no oracle there: its own default, said so
    assert any("instance-oracle" in w.value for w in at.warning)
    assert at.selectbox(key="w_playground_strategy").value != "instance-oracle"
    at.switch_page(PAGES["decisions"].script).run()
    assert at.selectbox(key="w_decisions_strategy").value == "instance-oracle"  # the context kept it


@pytest.mark.slow
def test_previous_and_next_walk_the_error_analysis_selection(ws):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["workspace_path"] = str(ws.path)
    at.query_params.update({"page": "errors", "hurt": "1", "sort": "margin"})
    at.run()
    selection = page_data("errors", ws, {"hurt": "1", "sort": "margin"})["queries"]
    rows = [q["row"] for q in selection]
    assert len(rows) >= 3
    at.switch_page(PAGES["inspector"].script).run()
    at.selectbox(key="w_inspector_dataset").set_value(ws.queries.iloc[rows[0]]["dataset"]).run()
    at.selectbox(key="w_inspector_row").set_value(rows[0]).run()
    assert any(f"1 of {len(rows)}" in m.value for m in at.markdown)
    at.button(key="triage_next").click().run()
    assert at.selectbox(key="w_inspector_row").value == rows[1]
    assert any(f"2 of {len(rows)}" in m.value for m in at.markdown)
    at.button(key="triage_next").click().run()
    at.button(key="triage_prev").click().run()
    assert at.selectbox(key="w_inspector_row").value == rows[1]
    assert at.selectbox(key="w_inspector_dataset").value == ws.queries.iloc[rows[1]]["dataset"]
