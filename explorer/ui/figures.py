"""Figures shared by several pages (query inspector and playground)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from explorer.ui.safe import plot as esc
from explorer.ui.style import OTHER_COLOUR, finish, wrap


def similarity_figure(pilots: pd.DataFrame, palette: dict[str, str], query: str) -> go.Figure:
    """Bars: mean similarity to each expert's pilot centroids (pilot-mean's score); dots: each centroid. Every
    text from the workspace or the typed query is escaped for Plotly (`esc`, `wrap`)."""
    order = list(dict.fromkeys(pilots["expert"]))
    g = pilots.groupby("expert", sort=False)["similarity"]
    mean, best = g.mean().reindex(order), g.max().reindex(order)
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=[esc(e) for e in order], y=mean.to_numpy(), name="mean over its pilots",
        marker_color=[palette.get(e, OTHER_COLOUR) for e in order],
        hovertext=[f"query: {wrap(query, 60)}<br>expert <b>{esc(e)}</b><br>mean similarity {mean[e]:.3f} · nearest "
                   f"pilot {best[e]:.3f}" for e in order], hovertemplate="%{hovertext}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[esc(e) for e in pilots["expert"]], y=pilots["similarity"], mode="markers", name="one pilot centroid",
        marker=dict(size=9, color="white", line=dict(width=1.5, color="#333")),
        hovertext=[f"pilot {esc(r.pilot)}: {esc(r.size)} {esc(r.dataset)} queries labelled {esc(r.expert)}"
                   f"<br>similarity {r.similarity:.3f}" for r in pilots.itertuples()],
        hovertemplate="%{hovertext}<extra></extra>"))
    fig = finish(fig, "expert (its pilot centroids)", "cosine similarity to the query", height=330, legend="")
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


def missing_pilots(pilots: pd.DataFrame, candidates: list[str]) -> list[str]:
    """Candidate experts that own no pilot centroid (no pilot query was labelled with them)."""
    return [c for c in candidates if c not in set(pilots["expert"])]


def movement_figure(moves: pd.DataFrame, columns: list[str], depth: int) -> go.Figure:
    """One line per judged-relevant document across the compared rankings (lower is better). Document ids,
    titles, texts and column labels are escaped for Plotly."""
    fig = go.Figure()
    below = depth + 1
    for doc, part in moves.groupby("doc_id", sort=False):
        part = part.set_index("column").reindex(columns)
        ranks = [below if pd.isna(r) else int(r) for r in part["rank"]]
        first = part.iloc[0]
        grade = int(part["grade"].dropna().iloc[0]) if part["grade"].notna().any() else 1
        hover = [f"<b>{esc(doc)}</b> (grade {grade}) {esc(first['title'])}<br>{wrap(first['text'], 70, 300)}<br>"
                 f"{esc(col)}: {'not in the top ' + str(depth) if r == below else 'rank ' + str(r)}"
                 for col, r in zip(columns, ranks)]
        fig.add_trace(go.Scatter(x=[esc(c) for c in columns], y=ranks, mode="lines+markers+text",
                                 name=f"{esc(doc)} (grade {grade})",
                                 marker=dict(size=8 + 4 * grade), text=[str(r) if r != below else "–"
                                                                        for r in ranks],
                                 textposition="middle right", hovertext=hover,
                                 hovertemplate="%{hovertext}<extra></extra>"))
    ticks = [t for t in (1, 2, 3, 5, 10, 20, 50, 100) if t < below] + [below]
    # a log axis takes its range in log10 units (shapes in data units); reversed so rank 1 is on top
    fig.update_yaxes(type="log", range=[math.log10(below * 1.3), math.log10(0.8)], tickvals=ticks,
                     ticktext=[str(t) for t in ticks[:-1]] + [f">{depth}"])
    fig.add_hline(y=10.5, line_dash="dot", line_color="#999", annotation_text="top 10",
                  annotation_position="bottom left")
    fig.update_xaxes(range=[-0.3, len(columns) - 0.7])
    return finish(fig, "ranking", "rank (log scale)", height=340, legend="relevant document")


def legend_below(fig: go.Figure, y: float = -0.28) -> go.Figure:
    """A horizontal legend under the plot, so Plotly's toolbar (top right, on hover) never covers it."""
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=y, x=0, xanchor="left"))
    return fig


def delta_figure(pair: pd.DataFrame, keys: pd.Series, palette: dict[str, str], current: int | None, a: str, b: str,
                 measure: str) -> go.Figure:
    """Score under A (x) against score under B (y), ×100, one point per evaluated query (customdata = its row),
    one trace per colour key, the diagonal drawn (above it: B better). Every workspace text is escaped."""
    fig = go.Figure()
    lo, hi = -3, 103
    fig.add_shape(type="line", x0=lo, y0=lo, x1=hi, y1=hi, line=dict(color="#999", dash="dot"), layer="below")
    hover = [f"<b>{esc(r.qid)}</b> ({esc(r.dataset)}, {esc(r.kind)})<br>{wrap(r.text, 70)}<br>"
             f"A {esc(a)} → {esc(r.chosen_a)}: {100 * r.score_a:.1f}<br>B {esc(b)} → {esc(r.chosen_b)}: "
             f"{100 * r.score_b:.1f}<br>B − A {100 * r.delta:+.1f}" for r in pair.itertuples()]
    frame = pair.assign(hover=hover, key=keys.fillna("none").astype(str).to_numpy())
    order = {k: i for i, k in enumerate(palette)}
    for key, part in sorted(frame.groupby("key", sort=False), key=lambda kv: (order.get(kv[0], 999), kv[0])):
        fig.add_trace(go.Scatter(
            x=100 * part["score_a"], y=100 * part["score_b"], mode="markers", name=esc(key),
            customdata=[int(r) for r in part["row"]], text=part["hover"], hovertemplate="%{text}<extra></extra>",
            marker=dict(size=10, opacity=0.75, color=palette.get(key, OTHER_COLOUR),
                        line=dict(width=0.5, color="#333"))))
    here = pair[pair["row"] == current] if current is not None else pair.iloc[:0]
    if len(here):
        r = here.iloc[0]
        fig.add_trace(go.Scatter(
            x=[100 * r["score_a"]], y=[100 * r["score_b"]], mode="markers", name="this query",
            customdata=[int(r["row"])], hovertemplate="this query<extra></extra>",
            marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(width=2.5, color="black"))))
    fig.add_annotation(x=12, y=88, text="B better", showarrow=False, font=dict(color="#555"))
    fig.add_annotation(x=88, y=12, text="A better", showarrow=False, font=dict(color="#555"))
    fig.update_xaxes(range=[lo, hi], constrain="domain")
    fig.update_yaxes(range=[lo, hi], scaleanchor="x", scaleratio=1)
    fig = finish(fig, f"A: {esc(a)} ({esc(measure)} ×100)", f"B: {esc(b)} ({esc(measure)} ×100)", height=480)
    fig.update_layout(clickmode="event+select", dragmode="zoom")
    # the legend right of the square plot, well below the toolbar
    fig.update_layout(legend=dict(orientation="v", yanchor="bottom", y=0, x=1.02, xanchor="left"))
    return fig


# Offsets (px, from the marker's centre to the label's centre) tried in turn for a centroid label; the last ones
# are further out and drawn with a thin line to their marker.
_NEAR = [(0, -21), (0, 21), (1, 0), (-1, 0), (1, -17), (-1, -17), (1, 17), (-1, 17)]
_FAR = [(0, -46), (0, 46), (2, 0), (-2, 0), (1, -40), (-1, -40), (1, 40), (-1, 40)]


def place_labels(xy: list[tuple[float, float]], texts: list[str], span: tuple[float, float, float, float],
                 size: tuple[int, int] = (900, 520), marker: int = 22, char: float = 6.6) -> list[tuple | None]:
    """Non-overlapping label positions for markers at data points `xy` on a plot of `size` px showing the data
    rectangle `span` (x0, x1, y0, y1): per marker (dx, dy, far) in px (y down), or None where no place is free of
    every other label and marker (that marker keeps its hover and colour). Greedy, in the order given."""
    x0, x1, y0, y1 = span
    w, h = size
    sx, sy = w / ((x1 - x0) or 1), h / ((y1 - y0) or 1)
    pts = [((x - x0) * sx, (y1 - y) * sy) for x, y in xy]
    half = marker / 2 + 1
    blocked = [(px - half, py - half, px + half, py + half) for px, py in pts]
    out: list[tuple | None] = []

    def free(box) -> bool:
        l, t, r, b = box
        if l < 0 or t < 0 or r > w or b > h:
            return False
        return all(r <= o[0] or l >= o[2] or b <= o[1] or t >= o[3] for o in blocked)

    for (px, py), text in zip(pts, texts):
        bw, bh = char * len(text) + 8, 16
        spot = None
        for far, offsets in ((False, _NEAR), (True, _FAR)):
            for kx, dy in offsets:
                dx = kx * (bw / 2 + marker / 2 + (4 if not far else 18)) if kx else 0
                box = (px + dx - bw / 2, py + dy - bh / 2, px + dx + bw / 2, py + dy + bh / 2)
                if free(box):
                    spot = (dx, dy, far, box)
                    break
            if spot:
                break
        if spot:
            blocked.append(spot[3])
            out.append(spot[:3])
        else:
            out.append(None)
    return out


def waterfall_figure(result: dict, palette: dict[str, str], measure: str) -> go.Figure:
    """The sorted per-query difference B − A (views.difference_waterfall), ×100: one bar per query in that order,
    coloured by dataset (one trace each, customdata = its row). Every workspace text is escaped."""
    fig = go.Figure()
    bars = result["bars"]
    for dataset, part in bars.groupby("dataset", sort=False):
        fig.add_trace(go.Bar(
            x=part["position"], y=100 * part["delta"], name=esc(dataset),
            marker_color=palette.get(dataset, OTHER_COLOUR), marker_line_width=0,
            customdata=[int(r) for r in part["row"]],
            hovertext=[f"<b>{esc(r.qid)}</b> ({esc(r.dataset)})<br>{wrap(r.text, 70)}<br>B − A {100 * r.delta:+.1f}"
                       for r in part.itertuples()], hovertemplate="%{hovertext}<extra></extra>"))
    fig.add_hline(y=0, line_color="#666", line_width=1)
    fig.update_layout(bargap=0, clickmode="event+select", dragmode="zoom")
    fig.update_xaxes(range=[-0.5, max(result["queries"], 1) - 0.5])
    return finish(fig, f"test queries, sorted by B − A ({result['queries']:,})",
                  f"B − A ({esc(measure)} ×100)", height=340, legend="dataset")
