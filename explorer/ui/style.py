"""One colour per expert everywhere, and the small figure conventions every chart follows."""

from __future__ import annotations

import colorsys
import re

import plotly.graph_objects as go

from explorer.names import SystemName
from explorer.ui import safe

BASE_COLOUR = "#7f7f7f"
MIXTURE_COLOUR = "#222222"
OTHER_COLOUR = "#bbbbbb"
# Plotly's D3 palette without its grey (kept for the base model), then Dark24 for larger workspaces.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
            "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B", "#511CFB",
            "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042"]
CORRECT_COLOURS = {"correct": "#2ca02c", "wrong": "#d62728", "pilot query": OTHER_COLOUR}
SCORE_NOTE = "Scores are shown ×100 with one decimal (nDCG@10 = 0.923 is shown as 92.3)."


def expert_palette(encoders: list[str]) -> dict[str, str]:
    """Stable colour per encoder, from its position in the workspace's encoder list (base is grey)."""
    out, i = {}, 0
    for name in encoders:
        if name == "base":
            out[name] = BASE_COLOUR
        else:
            out[name] = _PALETTE[i % len(_PALETTE)]
            i += 1
    out["mixture"] = MIXTURE_COLOUR
    return out


def dataset_palette(ws) -> dict[str, str]:
    """A dataset takes the colour of its own expert, so 'source dataset' and 'expert' views read alike."""
    experts = expert_palette(ws.systems)
    own = ws.own_expert
    out, spare = {}, 0
    for d in ws.datasets:
        if d in own and own[d] in experts:
            out[d] = experts[own[d]]
        else:
            out[d] = _PALETTE[-(spare % len(_PALETTE)) - 1]
            spare += 1
    return out


_STRATEGY_EXTRA = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
                   "#bab0ac", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]


def _spare_colours():
    """Colours for strategies bound to no expert: a fixed sequence, then evenly spaced hues (never exhausted)."""
    yield from _STRATEGY_EXTRA
    yield from (c for c in _PALETTE if c not in _STRATEGY_EXTRA)
    for i in range(10_000):
        hue = (0.61803398875 * i) % 1.0  # golden-ratio steps spread the hues
        r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.8)
        yield f"#{int(255 * r):02x}{int(255 * g):02x}{int(255 * b):02x}"


def strategy_palette(ws, visible: list[str] | None = None) -> dict[str, str]:
    """A colour per strategy: one bound to an expert takes the expert's colour, the others a sequence of their
    own. Among the `visible` ones (a chart's bars), no colour is used twice, however many there are."""
    experts = expert_palette(ws.systems)
    names = list(visible) if visible is not None else list(ws.strategies)
    out: dict[str, str] = {}
    spare = _spare_colours()
    for s in names:
        target = SystemName.parse(s, ws.encoders).expert or s
        wanted = experts.get(target) if target != "mixture" else None
        out[s] = wanted if wanted and wanted not in out.values() else next(c for c in spare if c not in out.values())
    return out


def finish(fig: go.Figure, x: str, y: str, height: int | None = None, legend: str | None = None) -> go.Figure:
    """Axis titles on every chart, compact margins, a legend title."""
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), xaxis_title=x, yaxis_title=y,
                      legend_title_text=legend or "", hoverlabel=dict(align="left"))
    if height:
        fig.update_layout(height=height)
    return fig


def wrap(text: str, width: int = 80, limit: int = 400) -> str:
    """Hover text: wrapped with <br> so long queries and documents stay readable. The text is untrusted: each
    line is escaped for Plotly (its HTML subset) before the <br> go in."""
    text = "" if text is None or text != text else str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    if line:
        lines.append(line)
    return "<br>".join(safe.plot(line) for line in lines)


_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


def chips(palette: dict[str, str], names: list[str]) -> str:
    """An HTML legend: one coloured chip per name (used in the sidebar, with unsafe_allow_html). The markup is
    this function's own; a name is escaped text, a colour one of the palette's hex codes (anything else grey)."""
    out = []
    for n in names:
        colour = palette.get(n, OTHER_COLOUR)
        colour = colour if _COLOUR.fullmatch(str(colour)) else OTHER_COLOUR
        out.append(f"<span style='display:inline-block;margin:1px 4px 1px 0;padding:0 6px;border-radius:8px;"
                   f"background:{colour};color:white;font-size:0.8em'>{safe.html(n)}</span>")
    return " ".join(out)
