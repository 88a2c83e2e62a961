"""Experts: a card per expert, and the what-if: switch experts off and on and see the pilot library, routing and
every metric recomputed at once, with the difference from all experts on."""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import views
from explorer.ui import safe, session, state
from explorer.ui.style import OTHER_COLOUR, expert_palette, finish
from explorer.views.experts import PAGE

_HEX = re.compile(r"#[0-9A-Fa-f]{3,8}")
HYPER = ("epochs", "batch_size", "lr", "temperature", "negatives", "r", "alpha", "dropout", "target_modules")


def one_decimal(value) -> str:
    """×100 scores with one decimal; a value that rounds to zero is 0.0 (never −0.0)."""
    r = round(float(value), 1)
    return "0.0" if r == 0 else f"{r:.1f}"


def signed(value) -> str:
    """A difference with its sign and one decimal; one that rounds to zero is 0.0 (not +0.0 or −0.0)."""
    r = round(float(value), 1)
    return "0.0" if r == 0 else f"{r:+.1f}"


def expert_order(ws, names) -> list[str]:
    """`names` in the workspace's expert order (base first), any other name (a mixture) after them."""
    names = list(names)
    return [e for e in ws.encoders if e in names] + [n for n in names if n not in ws.encoders]


def _loss(curve: list[float], colour: str, name: str, alignment_steps: int = 0) -> go.Figure:
    """The training loss; an ERA curve is two stages with different losses (alignment, then the labelled pairs),
    drawn as two traces so the jump between them does not read as a step of one loss."""
    parts = [("", 0, len(curve))]
    if 0 < alignment_steps < len(curve):
        parts = [("alignment", 0, alignment_steps), ("labelled pairs", alignment_steps, len(curve))]
    fig = go.Figure()
    for stage, lo, hi in parts:
        fig.add_trace(go.Scatter(x=list(range(lo + 1, hi + 1)), y=curve[lo:hi], name=stage,
                                 mode="lines+markers" if hi - lo == 1 else "lines",
                                 line=dict(color=colour, dash="dot" if stage == "alignment" else "solid"),
                                 hovertext=[f"{safe.plot(name)} {stage}"] * (hi - lo),  # never in the template
                                 hovertemplate="%{hovertext}<br>step %{x}<br>loss %{y:.3f}<extra></extra>"))
    fig = finish(fig, "training step", "loss", height=180)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), showlegend=len(parts) > 1,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig


def _card(c: dict, colour: str, measure: str) -> None:
    with st.container(border=True):
        # one HTML block built here: the colour is a palette hex code, the name and kind escaped text
        colour = colour if _HEX.fullmatch(str(colour)) else OTHER_COLOUR
        st.markdown(f"<div><span style='display:inline-block;width:12px;height:12px;border-radius:6px;"
                    f"background:{colour}'></span> <b>{safe.html(c['name'])}</b> · {safe.html(c['kind'])}"
                    f"{' · multi-task baseline' if c['multi_task'] is True else ''}</div>", unsafe_allow_html=True)
        sources = ", ".join(f"{safe.md(s.get('dataset'))} ({safe.md(s.get('source'))})" if isinstance(s, dict)
                            else safe.md(s) for s in c["sources"]) or "—"
        params, base = c["trainable_parameters"], c["base_parameters"]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (params, base))
        share = f" ({100 * params / base:.2f}% of the base model)" if numbers and params and base else ""
        shown_params = f"{params:,}" if numbers and params else safe.md(params or "?")
        st.caption(f"trained on {sources} · {safe.md(c['pairs'] or '?')} pairs · {safe.md(c['steps'] or '?')} "
                   f"steps · {shown_params} trainable parameters{share}")
        m1, m2 = st.columns(2)
        delta_in = c["in_domain"] - c["base_in_domain"]
        delta_out = c["out_of_domain"] - c["base_out_of_domain"]
        m1.metric("in-domain", views.x100(c["in_domain"]), _delta(delta_in),
                  help=f"Mean {safe.md(measure)} ×100 over {', '.join(safe.md(d) for d in c['datasets'])} of the "
                       f"strategy {safe.md(c['strategy'])}.")
        m2.metric("out-of-domain", views.x100(c["out_of_domain"]), _delta(delta_out),
                  help=f"Mean {safe.md(measure)} ×100 over the other datasets.")
        if c["loss_curve"]:
            fig = _loss(c["loss_curve"], colour, c["name"], int(c["hyper_parameters"].get("alignment_steps", 0)))
            st.plotly_chart(fig, width="stretch", key=f"loss_{c['name']}",
                            config={"displayModeBar": False})
        hp = c["hyper_parameters"]
        shown = {**{k: hp[k] for k in HYPER if k in hp}, **{k: v for k, v in hp.items() if k not in HYPER}}
        shown = {k: v for k, v in shown.items() if v is not None and v != [] and v != ""}  # unset: left out
        st.caption(" · ".join(f"{safe.md(k)} {', '.join(map(safe.md, v)) if isinstance(v, list) else safe.md(v)}"
                              for k, v in shown.items()))


def _delta(value: float) -> str | None:
    """A metric's change against base: none when unknown, and no arrow when it rounds to 0.0 (never "-0.0")."""
    if value != value:
        return None
    shown = signed(100 * value)
    return f"{shown} vs base" if shown != "0.0" else None


def render() -> None:
    c = session.open_page_run(PAGE)
    ws = c.ws
    st.title(PAGE.title)
    state.score_note()
    c("measure", "Measure")
    data = c.data()
    cards, measure = data["cards"], data["measure"]
    palette = expert_palette(ws.systems)
    if not cards:
        st.info("This workspace has no experts: add `[[experts]]` to the build config and rebuild.")
        return
    per_row = 3
    for i in range(0, len(cards), per_row):
        cols = st.columns(per_row)
        for col, card in zip(cols, cards[i:i + per_row]):
            with col:
                _card(card, palette.get(card["name"], "#999"), measure)
    _whatif(c, data)


def _pinned() -> dict:
    """Wide tables scroll inside their frame with the dataset column pinned."""
    return {"_index": st.column_config.Column("dataset", pinned=True)}


def _whatif(c, data: dict) -> None:
    """The what-if section: a switch per expert, then every metric, the pilot library and the routing recomputed
    with only the experts left on."""
    st.header("What if an expert were switched off?")
    st.caption("Untick experts: the pilot library is rebuilt from the remaining experts, every router re-decides, "
               "and every metric is recomputed from the stored per-expert runs (no model is run).")
    names = [card["name"] for card in data["cards"]]
    _switches(c, names)
    result = data["whatif"]
    if result["dropped"]:
        st.caption("Left out (their fixed expert is off): " + ", ".join(safe.md(d) for d in result["dropped"]))
    _whatif_tables(result, data["measure"], len(data["enabled"]), len(names))
    p1, p2 = st.columns(2)
    with p1:
        _pilot_library(c.ws, data)
    with p2:
        _routing_now(c, data)


def _switches(c, names: list[str]) -> None:
    """A checkbox per expert, which together write the page's `off` parameter (switched-off experts)."""
    off = set(c["off"])
    boxes = st.columns(min(len(names), 7))
    for i, name in enumerate(names):
        key = f"exp_on_{name}"
        st.session_state[key] = name not in off  # the box follows `off` (a link's, or the one its click made)
        boxes[i % len(boxes)].checkbox(safe.md(name), key=key, on_change=_toggle, args=(c, name))


def _toggle(c, name: str) -> None:
    off = list(c["off"])
    c.set("off", [n for n in off if n != name] if name in off else [*off, name])


def _whatif_tables(result: dict, measure: str, on: int, total: int) -> None:
    """The scores with the experts left on, and their difference from all on (the routers first)."""
    now, diff = result["now"], result["diff"]
    focus = [s for s in ("pilot-mean", "pilot-nearest", "dataset-router", "prototype", "classification-head",
                         "instance-oracle", "dataset-oracle", "base") if s in now.columns]
    others = [c for c in now.columns if c not in focus]
    cols = focus + others
    table = pd.DataFrame(index=now.index)
    for c in cols:
        table[c] = views.points(now[c])
    st.markdown(f"**{safe.md(measure)} ×100 with {on} of {total} experts on**")
    st.dataframe(table.style.format(one_decimal), width="stretch", column_config=_pinned())
    st.markdown("**Difference from all experts on** (points ×100)")
    d = views.points(diff[[c for c in cols if c in diff.columns]])
    st.dataframe(d.style.format(signed).map(
        lambda v: "color: #b00" if v < -0.05 else ("color: #070" if v > 0.05 else "color: #888")), width="stretch",
        column_config=_pinned())


def _pilot_library(ws, data: dict) -> None:
    """The pilot queries behind each centroid once the switched-off experts' pilots are gone."""
    st.markdown("**Pilot library now** (pilot queries behind each centroid)")
    if not data["enabled"]:
        st.info("Every expert is off: tick at least one to rebuild the pilot library.")
        return
    lib = data["pilots"].pivot_table(index="dataset", columns="expert", values="size", aggfunc="sum", fill_value=0)
    lib = lib.reindex(index=ws.datasets, columns=expert_order(ws, lib.columns))  # as Routing now
    st.dataframe(lib, width="stretch", column_config=_pinned())


def _routing_now(c, data: dict) -> None:
    """Where one strategy now sends each dataset's test queries (its own choice of strategy, in the URL)."""
    c("routing", "Routing now, strategy")
    if data["routing"] is None:
        st.info("This strategy is left out of the what-if (its fixed expert is off, or it cannot run without the "
                "experts switched off): pick another.")
        return
    shares = data["shares"].reindex(columns=expert_order(c.ws, data["shares"].columns))
    st.dataframe((100 * shares).round(0), width="stretch", column_config=_pinned())
    st.caption("% of each dataset's test queries sent to each expert.")


if __name__ == "__main__":
    render()
