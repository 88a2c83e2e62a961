"""`python -m bench.report --quick` as a smoke test: the report is produced and well-formed, and its quality tables
hold the workspace's own numbers. Timings are never asserted here (they live in docs/benchmarks.md)."""

from __future__ import annotations

import re

import pytest

from explorer.analysis import AVERAGE, summary
from explorer.workspace import Workspace


@pytest.fixture(scope="module")
def quick_report(trains):
    from bench.report import main

    out = main(["--quick"])
    return out, out.read_text(encoding="utf-8")


def _tables(text: str) -> list[list[list[str]]]:
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            blocks.append(current)
            current = []
    return blocks


def test_quick_report_has_every_section(quick_report):
    _, text = quick_report
    for marker in ("<!-- quality:start -->", "<!-- quality:end -->", "<!-- speed:start -->", "<!-- speed:end -->"):
        assert text.count(marker) == 1
    for heading in ("nDCG@10 ×100", "R@100 ×100", "Routing accuracy and regret", "Leave one expert out",
                    "The paper's headline beside ours", "Corpus encoding throughput", "Build time as experts are added",
                    "Live routed query", "What-if recompute", "Memory: one base model, many experts",
                    "Exact vs approximate"):
        assert heading in text, heading
    assert "Machine: " in text and "cores" in text


def test_every_table_is_well_formed(quick_report):
    _, text = quick_report
    tables = _tables(text)
    assert len(tables) >= 10
    for t in tables:
        assert len(t) >= 3, t
        assert all(re.fullmatch(r":?-{3,}:?", c) for c in t[1]), t[1]
        assert {len(row) for row in t} == {len(t[0])}, t[0]


def test_quality_matrix_holds_the_workspace_numbers(quick_report):
    out, text = quick_report
    ws = Workspace(out.parent / "workspace")
    matrix = next(t for t in _tables(text) if t[0][0] == "strategy" and t[0][-1] == AVERAGE)
    rows = {r[0].strip("*"): r[1:] for r in matrix[2:]}
    assert set(rows) == set(ws.strategies)
    expected = summary(ws, "nDCG@10")
    for strategy, cells in rows.items():
        for dataset, cell in zip(matrix[0][1:], cells):
            value = float(re.match(r"\**(\d+\.\d)", cell).group(1))
            assert value == pytest.approx(round(100 * expected.loc[dataset, strategy], 1), abs=0.051)


def test_figures_are_pngs(quick_report):
    out, _ = quick_report
    for name in ("selection-heatmaps.png", "build-vs-experts.png"):
        data = (out.parent / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_speed_ratios_are_numbers(quick_report):
    _, text = quick_report
    encode = next(t for t in _tables(text) if t[0][-1] == "throughput ratio to plain")
    assert float(encode[2][-1]) == 1.0 and all(float(r[-1]) > 0 for r in encode[2:])
    live = next(t for t in _tables(text) if t[0][:3] == ["path", "p50 ms", "p95 ms"])
    assert live[-1][0].startswith("floor") and all(float(c) > 0 for r in live[2:] for c in r[1:3])
    for row in live[2:-1]:
        assert all(float(x) > 0 for x in row[3].split(" / "))
