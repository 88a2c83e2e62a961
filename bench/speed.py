"""Speed and memory of the engine, each figure a ratio inside one run (the machine is noisy).

    python -m bench.speed [--quick] [--workspace workspaces/real]

1. corpus encoding of the build against plain SentenceTransformer.encode on the same texts;
2. build time as the number of experts grows (documents are encoded once, whatever the number of experts);
3. a live routed query against its floor of two plain forward passes and one search;
4. what-if recompute on the real workspace;
5. resident memory with 1 and with all experts loaded (adapters share the base model).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer.data import load_beir  # noqa: E402
from explorer.base_model import resolve_base  # noqa: E402
from explorer.encoders import Encoder  # noqa: E402
from explorer.capabilities import LEXICAL, OWN_ENCODER  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

from .markdown import table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_base_experts(ws: Workspace) -> list[tuple[str, str, str]]:
    """(name, folder, kind) of every expert living inside the base model (LoRA, prefix): kinds that encode queries
    themselves (ERA) bring a second model by design, and lexical ones (BM25) none, so both are left out of the
    memory and base-pass figures."""
    return [(e["name"], str(ws.adapter_dir(e["name"])), e["kind"]) for e in ws.experts
            if OWN_ENCODER not in e["capabilities"] and LEXICAL not in e["capabilities"]]


def encode_throughput(texts: list[str], repeats: int, experts: list[tuple[str, str, str]] | None) -> str:
    """The build's Encoder against a plain SentenceTransformer on the same texts and batch size, interleaved so
    that machine noise hits both; best of `repeats` each."""
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(resolve_base("bundled"), device="cpu")
    plain.max_seq_length = 256
    ours = Encoder("bundled", max_seq_length=256, batch_size=64)
    with_experts = None
    if experts:
        with_experts = Encoder("bundled", max_seq_length=256, batch_size=64)
        for name, folder, kind in experts:
            with_experts.load_expert(name, folder, kind)
    runs = {"plain SentenceTransformer.encode": lambda t: plain.encode(t, batch_size=64, normalize_embeddings=True),
            "explorer Encoder.encode (the build's path)": ours.encode}
    if with_experts is not None:
        runs[f"explorer Encoder.encode, base pass with {len(with_experts.experts)} experts loaded"] = \
            with_experts.encode
    for fn in runs.values():
        fn(texts[:64])  # warm-up
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn(texts)
            best[name] = min(best[name], time.perf_counter() - t)
    floor = best["plain SentenceTransformer.encode"]
    rows = [[name, f"{len(texts) / t:.1f}", f"{floor / t:.3f}"] for name, t in best.items()]
    return table(["encoder", "passages/s", "throughput ratio to plain"], rows)


def _scaling_config(folder: Path, dataset: Path, n_experts: int, pairs: int, tag: str = "") -> Path:
    experts = "\n".join(
        f'[[experts]]\nname = "e{i}"\nseed = {i}\nsources = [{{dataset = "d", source = "crops"}}]\n'
        for i in range(1, n_experts + 1))
    text = (f'title = "scaling, {n_experts} experts"\ncache_dir = "cache-{n_experts}{tag}"\n'
            f'[training]\nepochs = 1\nmax_pairs = {pairs}\n'
            f'[layout]\numap = false\n'
            f'[[datasets]]\nname = "d"\npath = "{dataset}"\nmax_pilot_queries = 300\n\n{experts}')
    path = folder / f"scaling-{n_experts}{tag}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def build_scaling(dataset: Path, counts: list[int], pairs: int, figure: Path | None) -> str:
    """Build the same data with 1, 2, 4, 8 experts, each from an empty cache; the part of the build that is not
    training should barely grow, because documents are encoded and indexed once per dataset."""
    from explorer.build import build

    rows, points = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up build, not timed: the first build in a process pays one-time costs (imports, first autograd step)
        build(_scaling_config(Path(tmp), dataset, 1, pairs, "-warm-up"), Path(tmp) / "warm-up", echo=lambda *_: None,
              progress=False)
        for n in counts:
            cfg = _scaling_config(Path(tmp), dataset, n, pairs)
            t = time.perf_counter()
            ws = build(cfg, Path(tmp) / f"ws-{n}", echo=lambda *_: None, progress=False)
            total = time.perf_counter() - t
            stages = ws.manifest["stages"]
            training = sum(v["seconds"] for k, v in stages.items() if k.startswith("expert:"))
            docs = sum(v["seconds"] for k, v in stages.items() if k.startswith("docs:"))
            queries = sum(v["seconds"] for k, v in stages.items() if k.startswith("queries:"))
            points.append((n, total, training, total - training))
            rows.append([n, f"{total:.1f}", f"{training:.1f}", f"{total - training:.1f}", f"{docs:.1f}",
                         f"{queries:.1f}"])
            del ws
            gc.collect()
    first = points[0][3]
    growth = [(b[3] - a[3]) / (b[0] - a[0]) / first for a, b in zip(points, points[1:])]
    for row, g in zip(rows, [None, *growth]):
        row.append("–" if g is None else f"{100 * g:+.1f}%")
    if figure is not None:
        _plot_scaling(points, figure)
    return table(["experts", "build s", "training s", "not training s", "documents s", "queries s",
                  "not-training growth per added expert (of the 1-expert figure)"], rows)


def _plot_scaling(points, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, total, training, rest = zip(*points)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    ax.plot(n, total, "o-", label="whole build")
    ax.plot(n, training, "s--", label="expert training")
    ax.plot(n, rest, "^-", label="everything else (documents once, queries per expert)")
    ax.set_xlabel("experts")
    ax.set_ylabel("seconds")
    ax.set_xticks(n)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("Build time as experts are added (same data, empty cache)", fontsize=9)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def live_latency(ws: Workspace, dataset: str, n_queries: int) -> str:
    """A routed query (base pass, pilot-mean, the chosen expert's pass, search) and the Playground's work (every
    router and the map position too) against the floor: two plain forward passes and one faiss search."""
    import faiss
    import torch

    from explorer.live import LiveRouter
    from explorer.model_folders import load_model

    torch.set_num_threads(1)  # as the app runs it: one thread per query, sessions in parallel
    faiss.omp_set_num_threads(1)
    router = LiveRouter.open(ws)
    plain = load_model(ws.manifest["base_model"]["name"])  # the workspace's base: the one rule of every loader
    plain.max_seq_length = ws.manifest["base_model"].get("max_seq_length", 256)
    index = router._index(dataset)
    texts = ws.eval_rows(dataset)["text"].tolist()[:n_queries]

    pilot_mean = next(r for r in router.routers if r.name == "pilot-mean")

    def routed(text):  # the routed query: base pass, one router, the chosen expert's pass, search
        decision = pilot_mean.decide(router.context, router.encoder.encode([text]))
        return router.search(text, router.choice(decision), dataset)

    def playground(text):  # the app's page: every router decides and the query is placed on the map
        result = router.route(text)
        return router.search(text, router.choice(result.decisions["pilot-mean"]), dataset)

    def floor(text):
        plain.encode([text], normalize_embeddings=True)
        emb = plain.encode([text], normalize_embeddings=True)
        index.search(emb, 10)

    paths = {"routed query (pilot-mean)": routed, "Playground (every router, map position)": playground,
             "floor: 2 plain forward passes + 1 search": floor}
    for text in texts[:3]:
        for fn in paths.values():
            fn(text)
    times = {name: [] for name in paths}
    for text in texts:  # interleaved, per query
        for name, fn in paths.items():
            t = time.perf_counter()
            fn(text)
            times[name].append(1000 * (time.perf_counter() - t))
    base = times["floor: 2 plain forward passes + 1 search"]
    rows = []
    for name, ms in times.items():
        ratio = "" if ms is base else (f"{np.median(ms) / np.median(base):.2f} / "
                                       f"{np.percentile(ms, 95) / np.percentile(base, 95):.2f}")
        rows.append([name, f"{np.median(ms):.1f}", f"{np.percentile(ms, 95):.1f}", ratio])
    return (f"{len(texts)} test queries of `{dataset}` ({len(ws.docs(dataset)):,} documents), "
            f"{len(router.routers)} routers decided per query, one torch thread.\n\n"
            + table(["path", "p50 ms", "p95 ms", "ratio to the floor, p50 / p95"], rows))


def whatif_latency(ws: Workspace, repeats: int) -> str:
    from explorer.analysis import WhatIf

    whatif = WhatIf(ws)
    experts = [e["name"] for e in ws.experts]
    t = time.perf_counter()
    whatif.run(experts)
    first = time.perf_counter() - t
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        off = set(rng.choice(ws.candidates, rng.integers(1, min(4, len(ws.candidates))), replace=False))
        t = time.perf_counter()
        whatif.run([e for e in experts if e not in off])
        times.append(time.perf_counter() - t)
    return table(["", "ms"], [["first call (reads tables, prepares arrays)", f"{1000 * first:.0f}"],
                              [f"recompute with 1–3 experts off, median of {repeats}",
                               f"{1000 * statistics.median(times):.0f}"],
                              ["slowest", f"{1000 * max(times):.0f}"]])


_MEMORY_PROBE = """
import json, re, sys
from pathlib import Path
from explorer.encoders import Encoder
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
experts = json.loads(sys.argv[1])
enc = Encoder("bundled")
enc.encode(["warm up the base model"])
out = {"base": rss()}
for i, (name, folder, kind) in enumerate(experts):
    enc.load_expert(name, folder, kind); enc.encode(["warm up this expert"], name)
    if i == 0:
        out["1"] = rss()
out[str(len(experts))] = rss()
print(json.dumps(out))
"""


def memory(experts: list[tuple[str, str, str]]) -> str:
    """RSS of a fresh process holding the base model, then 1 expert, then all of them (each used once)."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(experts)], capture_output=True, text=True,
                         check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    n = len(experts)
    rows = [["base model only", f"{rss['base']:.0f}", "–"],
            ["+ 1 expert", f"{rss['1']:.0f}", f"{rss['1'] - rss['base']:+.1f}"],
            [f"+ {n} experts", f"{rss[str(n)]:.0f}", f"{rss[str(n)] - rss['base']:+.1f}"]]
    return (table(["process holding", "resident MB", "vs base model only, MB"], rows)
            + f"\n\nPer added expert beyond the first: {(rss[str(n)] - rss['1']) / max(n - 1, 1):.2f} MB.")


def report(ws: Workspace, quick: bool, figures: Path) -> str:
    """The speed section as Markdown (the build-scaling plot is written into `figures`)."""
    largest = max(ws.datasets, key=lambda d: ws.dataset_info(d)["n_docs"])
    experts = shared_base_experts(ws)
    if quick:
        texts = ws.docs(largest)["text"].tolist()[:128]
        scaling_data, counts, pairs, repeats, n_live = ROOT / "sample_data" / "homefix", [1, 2], 16, 1, 10
    else:
        ds = load_beir(SHARED / "npl", "npl", splits=("test",))
        texts = ds.corpus.passages()[:2000]
        scaling_data, counts, pairs, repeats, n_live = SHARED / "medline", [1, 2, 4, 8], 64, 2, 93
    parts = [
        "### Corpus encoding throughput",
        f"{len(texts):,} passages, batch 64, max 256 tokens, best of {repeats} interleaved "
        "runs each. Target: the build's path ≥ 0.95× plain.",
        encode_throughput(texts, repeats, experts),
        "### Build time as experts are added",
        f"`{scaling_data.name}` with {', '.join(map(str, counts))} self-supervised experts ({pairs} crop pairs, one "
        "epoch each: training is kept small because this measures the rest), every build from an empty cache, UMAP "
        "off (the layout does not depend on the experts). Target: the part that is not training grows by well under "
        "15% per added expert.",
        build_scaling(scaling_data, counts, pairs, figures / "build-vs-experts.png"),
        "![build time vs experts](figures/build-vs-experts.png)",
        "### Live routed query",
        "Target: the routed query's p50/p95 ratio to the floor ≤ 1.3.",
        live_latency(ws, largest, n_live),
        "### What-if recompute on this workspace",
        whatif_latency(ws, 5 if quick else 20),
        "### Memory: one base model, many experts",
        "Every LoRA and prefix expert of the workspace, loaded one after another into one base model. ERA's query "
        "adapters are left out: each brings its own query encoder (all-mpnet-base-v2 is ~420 MB), by design.",
        memory(experts),
    ]
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default=str(ROOT / "workspaces" / "real"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    args = parser.parse_args()
    print(report(Workspace(args.workspace), args.quick, Path(args.figures)))


if __name__ == "__main__":
    main()
