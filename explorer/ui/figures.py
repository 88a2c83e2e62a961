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
