"""Choose or mix? Every strategy of a built workspace by group (choose, mix, post-retrieval, lexical, fixed,
oracle): nDCG@10 and R@100 averaged over its datasets, the difference with base, wins / ties / losses against base
over every test query, the datasets where it is significantly better or worse than base (Holm), and the share of
the instance oracle's gap over base it closes; then what was chosen on the pilot queries (soft routing's k and
temperature, the datasets a per-dataset hybrid fuses BM25 on). For docs/benchmarks.md.

    python -m bench.mixing --workspace workspaces/lexical --section mixing-lexical
    python -m bench.mixing --workspace workspaces/sample --section mixing-sample
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer.analysis import ALL_QUERIES, AVERAGE, significance_table, summary, win_tie_loss  # noqa: E402
from explorer.views import grouped_strategies, instance_oracle, strategy_groups  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

from .markdown import machine_line, replace_section, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def gap_share(value: float, base: float, oracle: float | None) -> str:
    """The share of the instance oracle's gap over base that a strategy closes, in %."""
    if oracle is None or abs(oracle - base) < 1e-12:
        return "–"
    return f"{100 * (value - base) / (oracle - base):.0f}%"


def summary_table(ws: Workspace, resamples: int = 2000, reference: str = "base") -> str:
    """One row per strategy, group by group."""
    nd, r100 = summary(ws, "nDCG@10"), summary(ws, "R@100")
    wtl = win_tie_loss(ws, "nDCG@10", reference)
    wtl = wtl[wtl["dataset"] == ALL_QUERIES].set_index("strategy")
    sig = significance_table(ws, "nDCG@10", reference, resamples=resamples)
    up = sig[sig["significant"] & (sig["delta"] > 0)].groupby("system").size()
    down = sig[sig["significant"] & (sig["delta"] < 0)].groupby("system").size()
    oracle = instance_oracle(ws)
    base, top = nd.loc[AVERAGE, reference], nd.loc[AVERAGE, oracle] if oracle else None
    groups = strategy_groups(ws)
    rows = []
    for s in grouped_strategies(ws):
        v = nd.loc[AVERAGE, s]
        w = wtl.loc[s] if s in wtl.index else None
        rows.append([groups[s], s, f"{100 * v:.1f}", f"{100 * r100.loc[AVERAGE, s]:.1f}",
                     f"{100 * (v - base):+.1f}",
                     f"{w['wins']} / {w['ties']} / {w['losses']}" if w is not None else "–",
                     f"{int(up.get(s, 0))} / {int(down.get(s, 0))}", gap_share(v, base, top)])
    return table(["group", "strategy", "nDCG@10", "R@100", f"Δ {reference}", f"W / T / L vs {reference}",
                  "datasets ▲ / ▼", "oracle gap closed"], rows, "llrrrrrr")


def chosen_on_pilots(ws: Workspace) -> str:
    """What each mixing strategy's build chose on the pilot queries, with the held-out scores that chose it."""
    lines = []
    for s in ws.manifest["strategies"]:
        st = s.get("settings") or {}
        if "soft_k" in st:
            best = max(st.get("soft_cv", {}).values(), default=float("nan"))
            temp = f", soft_temperature = {st['soft_temperature']:g}" if st["soft_k"] > 1 else " (the hard choice)"
            lines.append(f"- `{s['name']}`: soft_k = {st['soft_k']}{temp} "
                         f"(held-out pilot {ws.label_measure} {100 * best:.1f}; k = 1: "
                         f"{100 * st.get('soft_cv', {}).get('k=1', float('nan')):.1f})")
        if "hybrid_on" in st:
            on = [d for d, v in st["hybrid_on"].items() if v]
            cv = st.get("hybrid_cv", {})
            detail = ", ".join(f"{d} {100 * a:.1f} → {100 * b:.1f}" for d, (a, b) in cv.items())
            lines.append(f"- `{s['name']}`: BM25 fused on {', '.join(on) or 'no dataset'} (held-out pilot "
                         f"{ws.label_measure} without → with BM25: {detail})")
    return "\n".join(lines) or "(no setting was chosen on pilot queries)"


def report(ws: Workspace, command: str, resamples: int = 2000) -> str:
    from .quality import score_matrix

    m = ws.manifest
    n_eval = int((ws.queries["role"] == "eval").sum())
    return "\n\n".join([
        f"## Choose or mix: {m['title']}",
        f"```\n{command}\n```",
        f"{machine_line()} Workspace: {len(ws.datasets)} datasets, {n_eval:,} test queries, {len(ws.strategies)} "
        f"strategies; built by `{m.get('command', 'explorer build')}` in {m.get('build_seconds', 0):.0f} s.",
        "Every strategy by group, averaged over the datasets (×100). W / T / L: test queries above / level with / "
        "below base in nDCG@10, all datasets together. Datasets ▲ / ▼: where the difference with base is "
        "significant (paired t-test and randomization test both p < 0.05, Holm across strategies). Oracle gap "
        "closed: (strategy − base) / (instance oracle − base) on the average; the instance oracle chooses among "
        "the routing candidates. Every setting a strategy chose was chosen on the pilot queries (below).",
        summary_table(ws, resamples),
        "Chosen on the pilot queries (cross-validated: a router trained on half of each dataset's pilot queries "
        "decides the other half):",
        chosen_on_pilots(ws),
        "### nDCG@10 ×100 per dataset",
        score_matrix(ws, "nDCG@10", resamples),
        "### R@100 ×100 per dataset",
        score_matrix(ws, "R@100", resamples, with_marks=False),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--section", required=True, help="the section of --doc to rewrite, e.g. mixing-lexical")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    command = f"python -m bench.mixing --workspace {args.workspace} --section {args.section}"
    body = report(Workspace(args.workspace), command, args.resamples)
    replace_section(Path(args.doc), args.section, body)
    print(body)


if __name__ == "__main__":
    main()
