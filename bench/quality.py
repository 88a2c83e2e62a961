"""What routing does on real data: the Table-1-style report of a built workspace, for docs/benchmarks.md.

    python -m bench.quality [--workspace workspaces/real]
    python -m bench.quality --workspace workspaces/judged --config bench/judged.toml --section quality-judged

Builds `bench/real.toml` into the workspace first when it is missing (heavy stages are cached), then writes the
section between `<!-- quality:start -->` and `<!-- quality:end -->` of docs/benchmarks.md and the selection
heatmaps beside it. Everything here reads the workspace through the read API (explorer.analysis): no model runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer.capabilities import MIX_PREFIXES, OWN_ENCODER  # noqa: E402
from explorer.analysis import AVERAGE, WhatIf, routing_report, selection_matrix, significance_table, summary  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

from .markdown import machine_line, replace_section, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# RouterRetriever (Lee et al., AAAI 2025), Table 1: Contriever experts, 7 BEIR datasets, nDCG@10 x100 averaged.
PAPER = {"base": ("MSMARCO-only", 47.5), "multi-task": ("Multi-Task", 46.4), "dataset-router": ("DatasetRouter", 48.5),
         "pilot-mean": ("RouterRetriever", 49.6), "dataset-oracle": ("DatasetOracle", 50.9),
         "instance-oracle": ("InstanceOracle", 57.6)}
UP_BASE, DOWN_BASE, UP_PILOT, DOWN_PILOT = "▲", "▼", "△", "▽"


def _families(ws: Workspace) -> dict[str, dict]:
    return {s: ws.strategy_info(s) for s in ws.strategies}


def _real_routers(ws: Workspace) -> list[str]:
    """Strategies that choose per query without reading the evaluated queries' judgements."""
    info = _families(ws)
    return [s for s in ws.strategies if info[s]["family"] != "fixed" and not info[s]["uses_oracle"]]


def _candidate_routers(ws: Workspace) -> list[str]:
    """Real routers that choose among the routing candidates (DDR chooses among its prefix modules instead)."""
    return [s for s in _real_routers(ws) if ws.strategy_info(s)["family"] != "DDR"]


def _oracles(ws: Workspace) -> list[str]:
    return [s for s, i in _families(ws).items() if i["uses_oracle"]]


def _bold_best(values: pd.Series, eligible: list[str]) -> set[str]:
    best = values[eligible].max()
    return {s for s in eligible if np.isclose(values[s], best, atol=5e-4)}


def score_matrix(ws: Workspace, measure: str, resamples: int, with_marks: bool = True) -> str:
    """Strategies x datasets, x100, the average last; the best non-oracle strategy per column in bold; marks for
    significant differences against base (▲▼) and against pilot-mean (△▽), Holm-corrected per dataset."""
    s = summary(ws, measure)
    marks: dict[tuple[str, str], str] = {}
    if with_marks:
        for reference, up, down in (("base", UP_BASE, DOWN_BASE), ("pilot-mean", UP_PILOT, DOWN_PILOT)):
            if reference not in ws.strategies:
                continue
            sig = significance_table(ws, measure, reference, resamples=resamples)
            for r in sig[sig["significant"]].itertuples():
                marks[(r.dataset, r.system)] = marks.get((r.dataset, r.system), "") + (up if r.delta > 0 else down)
    eligible = [x for x in ws.strategies if x not in _oracles(ws)]
    columns = [*ws.datasets, AVERAGE]
    bold = {c: _bold_best(s.loc[c], eligible) for c in columns}
    rows = []
    for strategy in ws.strategies:
        cells = []
        for c in columns:
            text = f"{100 * s.loc[c, strategy]:.1f}"
            text = f"**{text}**" if strategy in bold[c] else text
            cells.append(text + marks.get((c, strategy), ""))
        name = f"*{strategy}*" if strategy in _oracles(ws) else strategy
        rows.append([name, *cells])
    return table(["strategy", *columns], rows)


def routing_tables(ws: Workspace) -> str:
    """Accuracy against the instance oracle (any tied-best expert counts) and mean regret, per dataset."""
    rows = []
    for strategy in [*_candidate_routers(ws), "dataset-oracle"]:
        if strategy not in ws.strategies:
            continue
        r = routing_report(ws, strategy)
        rows.append([strategy, *(f"{100 * r.loc[d, 'accuracy']:.0f} / {100 * r.loc[d, 'regret']:.1f}"
                                 for d in [*ws.datasets, AVERAGE])])
    tie = routing_report(ws, "pilot-mean") if "pilot-mean" in ws.strategies else None
    if tie is not None:
        rows.append(["*queries where every expert ties, %*",
                     *(f"{100 * tie.loc[d, 'all_tie']:.0f}" for d in [*ws.datasets, AVERAGE])])
    return table(["strategy", *ws.datasets, AVERAGE], rows)


def selection_heatmaps(ws: Workspace, path: Path, strategies=("pilot-mean", "instance-oracle", "ddr-soft")) -> Path:
    """Dataset x expert share of queries, one panel per strategy, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = [s for s in strategies if s in ws.strategies]
    fig, axes = plt.subplots(1, len(strategies), figsize=(5.2 * len(strategies), 0.45 * len(ws.datasets) + 2.2),
                             squeeze=False, constrained_layout=True)
    for ax, strategy in zip(axes[0], strategies):
        used = selection_matrix(ws, strategy)
        experts = list(ws.candidates) if set(used.columns) <= set(ws.candidates) else list(used.columns)
        m = used.reindex(index=ws.datasets, columns=experts).fillna(0.0).to_numpy()
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(m):
            if v >= 0.005:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
        ax.set_xticks(range(len(experts)), experts, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(ws.datasets)), ws.datasets, fontsize=8)
        ax.set_title(f"{strategy}: % of each dataset's queries", fontsize=9)
        ax.set_xlabel("expert")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def leave_one_out(ws: Workspace) -> str:
    """Per dataset, its own expert switched off (the paper's datasets without an expert): every router's nDCG@10
    on that dataset, recomputed from the stored runs (pilot library rebuilt without the expert)."""
    whatif = WhatIf(ws)
    experts = [e["name"] for e in ws.experts]
    full, _ = whatif.run(experts)
    shown = [s for s in ["base", "multi-task", *_candidate_routers(ws), *_oracles(ws)] if s in ws.strategies]
    rows, held = [], []
    for dataset in ws.datasets:
        own = ws.own_expert.get(dataset)
        if own is None:
            continue
        t, _ = whatif.run([e for e in experts if e != own])
        values = t.loc[dataset].reindex(shown)
        held.append(values)
        eligible = [s for s in shown if s not in _oracles(ws) and np.isfinite(values[s])]
        bold = _bold_best(values, eligible)
        cells = [(f"**{100 * v:.1f}**" if s in bold else f"{100 * v:.1f}") for s, v in values.items()]
        rows.append([f"{dataset} (no {own})", f"{100 * full.loc[dataset, 'pilot-mean']:.1f}", *cells])
    mean = pd.concat(held, axis=1).mean(axis=1)
    full_mean = np.mean([full.loc[d, "pilot-mean"] for d in ws.datasets if d in ws.own_expert])
    rows.append([AVERAGE, f"{100 * full_mean:.1f}", *(f"{100 * v:.1f}" for v in mean)])
    return table(["dataset (expert off)", "pilot-mean, all experts", *shown], rows)


def paper_table(ws: Workspace) -> str:
    s = summary(ws, "nDCG@10").loc[AVERAGE]
    rows = []
    for strategy, (theirs_name, theirs) in PAPER.items():
        if strategy not in ws.strategies:
            continue
        ours = 100 * s[strategy]
        rows.append([theirs_name, f"{theirs:.1f}", f"{theirs - PAPER['base'][1]:+.1f}", strategy, f"{ours:.1f}",
                     f"{ours - 100 * s['base']:+.1f}"])
    return table(["theirs: method", "theirs: avg", "theirs: vs base", "ours: strategy", "ours: avg",
                  "ours: vs base"], rows)


def expert_table(ws: Workspace) -> str:
    """Each expert's training (source, pairs, steps, seconds) and what it does on its own dataset."""
    s = summary(ws, "nDCG@10")
    base_params = ws.manifest["base_model"].get("parameters")
    rows = []
    for e in ws.experts:
        card = e["card"]
        own = [d for d in e["datasets"] if d in s.index] if len(e["datasets"]) == 1 else []
        fixed = f"fixed:{e['name']}" if not e["multi_task"] else e["name"]
        gain = "; ".join(f"{d}: {100 * s.loc[d, 'base']:.1f} → {100 * s.loc[d, fixed]:.1f}" for d in own
                         ) if fixed in s.columns else ""
        if e["multi_task"] and fixed in s.columns:
            gain = f"average: {100 * s.loc[AVERAGE, 'base']:.1f} → {100 * s.loc[AVERAGE, fixed]:.1f}"
        data = "union of all" if e["multi_task"] else ", ".join(
            f"{x.get('dataset')} {x.get('source')}" for x in card.get("sources", []))
        params = card.get("trainable_parameters", 0)
        share = f"{100 * params / base_params:.2f}%" if base_params else "–"
        hp = card.get("hyper_parameters", {})
        epochs = (f"{hp['best_epoch']} of {hp['epochs_trained']}" if "best_epoch" in hp  # early stopping chose
                  else hp.get("epochs", "–"))
        rows.append([e["name"], e["kind"], data, card.get("pairs", "–"), card.get("steps", "–"), epochs,
                     f"{card.get('seconds', 0):.0f}", f"{params:,}", share, gain])
    return table(["expert", "kind", "data", "pairs", "steps", "epochs (kept of trained)", "train s", "parameters",
                  "of the base model", "own dataset: base → expert"], rows, "lllrrrrrrl")


def other_methods(ws: Workspace) -> str:
    """DDR's prefix modules and router, and ERA's query adapters, beside the LoRA experts, per dataset."""
    s = summary(ws, "nDCG@10")
    kinds = {e["name"]: e for e in ws.experts}
    prefix_of = {e["datasets"][0]: n for n, e in kinds.items()
                 if MIX_PREFIXES in e["capabilities"] and len(e["datasets"]) == 1}
    eras = [f"fixed:{n}" for n, e in kinds.items() if OWN_ENCODER in e["capabilities"]]
    if not prefix_of and not eras:
        return ""
    ddr = [x for x in ("ddr-soft", "ddr-topk") if x in s.columns]
    header = ["dataset", "base", "own LoRA expert", "own prefix module", *ddr, *eras, "pilot-mean"]
    rows = []
    for d in [*ws.datasets, AVERAGE]:
        lora = ws.own_expert.get(d)
        own = [s.loc[d, f"fixed:{lora}"] if lora and f"fixed:{lora}" in s.columns else np.nan,
               s.loc[d, f"fixed:{prefix_of[d]}"] if d in prefix_of else np.nan]
        if d == AVERAGE:
            own = [np.nanmean([s.loc[x, f"fixed:{ws.own_expert[x]}"] for x in ws.datasets if x in ws.own_expert]),
                   np.nanmean([s.loc[x, f"fixed:{prefix_of[x]}"] for x in ws.datasets if x in prefix_of])
                   if prefix_of else np.nan]
        values = [s.loc[d, "base"], *own, *(s.loc[d, x] for x in [*ddr, *eras, "pilot-mean"])]
        rows.append([d, *("–" if not np.isfinite(v) else f"{100 * v:.1f}" for v in values)])
    return table(header, rows)


def report(ws: Workspace, figures: Path, resamples: int = 2000, command: str = "python -m bench.quality",
           section: str = "quality") -> str:
    """The whole quality section as Markdown (the heatmap PNG is written into `figures`, named after `section`)."""
    from explorer.analysis import judged_split_notes

    heat = selection_heatmaps(ws, figures / ("selection-heatmaps.png" if section == "quality"
                                             else f"selection-heatmaps-{section}.png"))
    notes = judged_split_notes(ws, "nDCG@10")
    n_eval = int((ws.queries["role"] == "eval").sum())
    n_pilot = int((ws.queries["role"] == "pilot").sum())
    m = ws.manifest
    parts = [
        "## Quality on real data" if section == "quality" else f"## {m['title']}",
        f"```\n{command}\n```",
        f"{machine_line()} Workspace: {m['title']} — {len(ws.datasets)} datasets, {n_eval:,} test queries, "
        f"{n_pilot:,} pilot queries, {len(ws.candidates)} domain experts + multi-task, {len(ws.strategies)} "
        f"strategies; built by `{m.get('command', 'explorer build')}` in {m.get('build_seconds', 0):.0f} s "
        f"({sum(v['cached'] for v in m['stages'].values())} of {len(m['stages'])} stages from the cache).",
        "### nDCG@10 ×100 (Table 1 of the paper, our data)",
        f"Best non-oracle strategy per column in **bold**; oracles in *italics* (they read the test judgements). "
        f"{UP_BASE}/{DOWN_BASE}: significantly better/worse than `base`; {UP_PILOT}/{DOWN_PILOT}: than `pilot-mean` "
        "(paired t-test and randomization test both p < 0.05 after Holm correction across strategies, per dataset).",
        score_matrix(ws, "nDCG@10", resamples),
        *(["Evaluated on part of the judged queries (`judged_split`):\n\n" + "\n".join(f"- {n}" for n in notes)]
          if notes else []),
        "### R@100 ×100",
        score_matrix(ws, "R@100", resamples, with_marks=False),
        "### Routing accuracy and regret",
        "Cell: % of test queries routed to an expert that is among the best for that query (any tied-best expert "
        "counts) / mean regret against the instance oracle in nDCG@10 ×100. The last row is the share of queries "
        "on which every expert scores the same, where accuracy is trivially 100%.",
        routing_tables(ws),
        "### Which expert each dataset's queries go to",
        "Share of each dataset's test queries sent to each expert. The instance oracle gives a query on which "
        "several experts tie to the first of them (scifact), so its first column also holds the tied queries.",
        f"![selection heatmaps]({heat.relative_to(ROOT / 'docs') if heat.is_relative_to(ROOT / 'docs') else heat})",
        "### Leave one expert out",
        "Each dataset with its own expert switched off, as the paper's datasets without an expert: the pilot "
        "library, every router's decisions and the metrics are recomputed from the stored runs "
        "(`explorer.analysis.WhatIf`). The multi-task expert still saw that dataset's training data, and the "
        "classification baselines keep the models fitted with every expert (their scores for the missing expert "
        "are masked), so both are favoured here.",
        leave_one_out(ws),
        "### The paper's headline beside ours",
        "Theirs: RouterRetriever, Table 1 (Contriever experts, 7 BEIR datasets; 'base' is their MSMARCO-trained "
        "Contriever). Ours: the bundled all-MiniLM-L6-v2 with query-side LoRA experts on the datasets above. The "
        "absolute numbers are not comparable; the gaps are.",
        paper_table(ws),
        "### The experts",
        "Every expert's training and size; the base model (all-MiniLM-L6-v2) has "
        f"{ws.manifest['base_model'].get('parameters', 0):,} parameters. ERA's own query encoder is not counted: "
        "it is a second model (all-mpnet-base-v2: 109M parameters), of which only the map is trained.",
        expert_table(ws),
    ]
    parts += _mixing(ws, resamples)
    others = other_methods(ws)
    if others:
        parts += ["### DDR and ERA beside the LoRA experts",
                  "nDCG@10 ×100 per dataset: each dataset's own LoRA expert and own prefix module (same data and "
                  "budget), DDR's learned router mixing every prefix (soft) or the top 2, ERA's query adapters "
                  "(alignment only, and alignment then labelled pairs), and RouterRetriever's pilot-mean.", others]
    return "\n\n".join(parts)


def _mixing(ws: Workspace, resamples: int) -> list[str]:
    from .mixing import chosen_on_pilots, summary_table

    return ["### Choose or mix",
            "Every strategy by group, averaged over the nine datasets: nDCG@10 and R@100 ×100, the difference "
            "with base, per-query wins / ties / losses against base, the datasets where the difference is "
            "significant (Holm), and the share of the instance oracle's gap over base it closes "
            "(`python -m bench.mixing` gives the same table for any workspace).",
            summary_table(ws, resamples), "Chosen on the pilot queries:", chosen_on_pilots(ws)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default=str(ROOT / "workspaces" / "real"))
    parser.add_argument("--config", default=str(ROOT / "bench" / "real.toml"), help="built when the workspace is missing")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--section", default="quality", help="the section of --doc to rewrite (another study: "
                        "e.g. quality-judged)")
    args = parser.parse_args()
    path = Path(args.workspace)
    if not (path / "manifest.json").is_file():
        from explorer.build import build

        build(args.config, path)
    command = "python -m bench.quality" + ("" if args.section == "quality" else f" --workspace {args.workspace} "
                                           f"--config {args.config} --section {args.section}")
    body = report(Workspace(path), Path(args.figures), args.resamples, command, args.section)
    replace_section(Path(args.doc), args.section, body)
    print(body)


if __name__ == "__main__":
    main()
