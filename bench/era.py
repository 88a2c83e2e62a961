"""ERA's query adapter fitted fairly (issue 11 §4): alignment on more text, an alignment-size curve, and the paper's
setting (a linear map with bias, then L2 normalisation), scored against base on the core study's workspace.

all-mpnet-base-v2 (`make mpnet`) encodes the queries; the documents stay in the base index of the workspace. The
alignment pool is every text the core study trains on, each once: its pilot queries, the training queries of the
datasets that have them, corpus crops of the others and a corpus sample, with their base embeddings. A seeded 2,000
of them are held out. The curve fits the map on nested seeded prefixes of the rest; the size, the bias and the
stages are chosen on training data only (cosine to the base embedding on the held-out texts; MRR@10 of held-out
labelled pairs for the labels stage). The test queries are scored only to report.

    python -m bench.era                          # workspaces/real (explorer build bench/real.toml)
    python -m bench.era --workspace W --sizes 2000 10000 40000

The query encoder's embeddings are cached under the study's cache_dir (era-bench/), so a rerun only fits and scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
HELD_OUT, CROPS_PER_DATASET, PASSAGES_PER_DATASET, LABELLED_PER_DATASET = 2000, 1500, 300, 300
SEED = 13
ADAPT = {"temperature": 0.05, "batch_size": 32, "epochs": 3, "seed": SEED}  # seeds.toml's labelled stage


class Embedder:
    """The query encoder's normalised embeddings of a list of texts, cached on disk by the texts' hash."""

    def __init__(self, spec: str, cache: Path):
        from explorer.experts.query_adapter import load_query_encoder

        self.model = load_query_encoder(spec)
        self.model.max_seq_length = 256  # as the kind reads them
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
        path = self.cache / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        t = time.perf_counter()
        emb = self.model.encode(texts, batch_size=32, normalize_embeddings=True).astype(np.float32)
        self.seconds += time.perf_counter() - t
        np.save(path, emb)
        return emb


def train_split(ws, name: str, ds) -> str | None:
    """The dataset's split of training queries in the core study, or None (its experts train on corpus crops)."""
    split = ws.dataset_info(name).get("train_split")
    return split if split and split in ds.qrels else None


def alignment_pool(ws, datasets: dict, base) -> tuple[list[str], np.ndarray, list[str]]:
    """Every distinct text the core study trains on, with its base embedding and where it came from."""
    from explorer.training import make_pairs

    rng = np.random.default_rng(SEED)
    texts, rows, origin = [], [], []
    pilots = ws.queries[ws.queries.role == "pilot"]
    texts += pilots.text.tolist()
    rows.append(ws.embeddings()[pilots.row.to_numpy()])
    origin += ["pilot query"] * len(pilots)
    extra = []
    for name, ds in datasets.items():
        split = train_split(ws, name, ds)
        if split:
            extra += [(ds.queries[q], "training query") for q in ds.qrels[split]]
        else:
            crops = make_pairs(ds, "crops", {}, SEED)
            extra += [(crops[i].query, "corpus crop")
                      for i in rng.choice(len(crops), min(CROPS_PER_DATASET, len(crops)), replace=False)]
        pick = rng.choice(len(ds.corpus), min(PASSAGES_PER_DATASET, len(ds.corpus)), replace=False)
        passages = ds.corpus.passages()
        texts += [passages[i] for i in pick]
        rows.append(ws.doc_embeddings(name)[pick])
        origin += ["corpus passage"] * len(pick)
    seen = set(texts)
    extra = [(t, o) for t, o in dict(extra).items() if t not in seen]
    texts += [t for t, _ in extra]
    origin += [o for _, o in extra]
    rows.append(base.encode([t for t, _ in extra]))
    emb = np.concatenate(rows).astype(np.float32)
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    keep = sorted(first.values())
    return [texts[i] for i in keep], emb[keep], [origin[i] for i in keep]


def test_scores(ws, datasets, query_emb: dict) -> dict[str, float]:
    """nDCG@10 per dataset of the workspace's test queries embedded as `query_emb[dataset]`, searched over the
    workspace's base document embeddings and scored as the build does (ir-measures)."""
    from explorer.evaluation import per_query, run_dict
    from explorer.index import build_index, search

    out = {}
    for name in datasets:
        ev = ws.queries[(ws.queries.role == "eval") & (ws.queries.dataset == name)]
        qids, ids = ev.qid.tolist(), ws.docs(name).doc_id.tolist()
        run = search(build_index(ws.doc_embeddings(name)), query_emb[name], 100, ids, qids,
                     bool(ws.dataset_info(name).get("ignore_identical_ids")))
        scores = per_query(ws.qrels(name), run_dict(qids, ids, run.docs, run.scores), ["nDCG@10"], qids)
        out[name] = float(scores["nDCG@10"].mean())
    return out


def labelled_pairs(ws, datasets):
    """The labelled stage's pairs: 300 per dataset from the core study's expert sources (seeds.toml's ERA), split
    by query into 90% to train and 10% held out for the choice."""
    from explorer.training import make_pairs, split_holdout

    rng = np.random.default_rng(SEED)
    pairs = []
    for name, ds in datasets.items():
        split = train_split(ws, name, ds)
        source, params = ("qrels", {"split": split}) if split else ("crops", {})
        made = make_pairs(ds, source, params, SEED)
        pairs += [made[i] for i in rng.choice(len(made), min(LABELLED_PER_DATASET, len(made)), replace=False)]
    train, held = split_holdout(pairs, 0.1, SEED)
    return pairs, train, held


def held_out_mrr(project, pairs, held, q_emb, ws) -> float:
    """MRR@10 of the held-out labelled queries, each against its own dataset's corpus."""
    scores = []
    for i in held:
        docs = ws.doc_embeddings(pairs[i].dataset)
        ranked = np.argsort(-(docs @ project(q_emb[i:i + 1])[0]))[:10]
        hit = np.flatnonzero(ranked == pairs[i].doc)
        scores.append(1.0 / (hit[0] + 1) if len(hit) else 0.0)
    return float(np.mean(scores))


def run(workspace: Path, sizes: list[int]) -> list[dict]:
    import torch

    from explorer.data import load_beir
    from explorer.encoders import Encoder
    from explorer.experts.query_adapter import MPNET, QueryAdapter, adapt, align
    from explorer.workspace import Workspace

    ws = Workspace(workspace)
    datasets = {n: load_beir(ws.dataset_info(n)["path"], n) for n in ws.datasets}
    base = Encoder()
    embed = Embedder(MPNET, ROOT / ".explorer-cache" / "era-bench")
    texts, target, origin = alignment_pool(ws, datasets, base)
    order = np.random.default_rng(SEED).permutation(len(texts))
    held, rest = order[:HELD_OUT], order[HELD_OUT:]
    print(f"alignment pool: {len(texts)} texts ({', '.join(f'{o}: {origin.count(o)}' for o in sorted(set(origin)))})"
          f"; {len(held)} held out", flush=True)
    source = embed(texts)
    tests = {n: ws.queries[(ws.queries.role == "eval") & (ws.queries.dataset == n)] for n in ws.datasets}
    test_q = {n: embed(t.text.tolist()) for n, t in tests.items()}
    pairs, train_idx, held_idx = labelled_pairs(ws, datasets)
    pair_q = embed([p.query for p in pairs])
    print(f"query encoder: {embed.seconds:.0f} s to embed what was not cached", flush=True)
    base_test = {n: ws.embeddings()[t.row.to_numpy()] for n, t in tests.items()}
    rows = [{"setting": "base (no adapter)", "texts": 0, **test_scores(ws, datasets, base_test)}]
    x, y = torch.from_numpy(source), torch.from_numpy(target)

    def evaluate(label, adapter, n, **extra):
        with torch.no_grad():
            project = lambda e: adapter.project(torch.from_numpy(e)).numpy()  # noqa: E731
            cos = float((adapter.project(x[held]) * y[held]).sum(dim=1).mean())
            row = {"setting": label, "texts": n, "held_out_cosine": cos,
                   "held_out_mrr10": held_out_mrr(project, pairs, held_idx, pair_q, ws), **extra,
                   **test_scores(ws, datasets, {k: project(v) for k, v in test_q.items()})}
        print(json.dumps(row), flush=True)
        rows.append(row)

    passages = np.array([i for i in rest if origin[i] == "corpus passage"])
    fits = [("passages only (200 per dataset, today's seeds.toml)", passages[:200 * len(ws.datasets)])]
    fits += [(f"pool prefix of {n:,}", rest[:n]) for n in sizes if n <= len(rest)]
    if sizes and sizes[-1] > len(rest):
        fits.append((f"whole pool ({len(rest):,})", rest))
    for label, idx in fits:
        for bias in (False, True):
            a = QueryAdapter(MPNET, embed.model, target.shape[1], bias)
            align(a, x[idx], y[idx], {"align_loss": "mse"})
            evaluate(f"{label}, {'affine' if bias else 'linear'}", a, len(idx), bias=bias, stages="alignment-only")
    best = max((r for r in rows if "held_out_cosine" in r), key=lambda r: r["held_out_cosine"])
    idx = dict(fits)[best["setting"].rsplit(",", 1)[0]]
    a = QueryAdapter(MPNET, embed.model, target.shape[1], best["bias"])
    align(a, x[idx], y[idx], {"align_loss": "mse"})
    offsets = np.cumsum([0] + [len(ws.docs(n)) for n in ws.datasets])
    start = dict(zip(ws.datasets, offsets))
    docs = torch.from_numpy(np.concatenate([ws.doc_embeddings(n) for n in ws.datasets]))
    gold = torch.as_tensor([start[pairs[i].dataset] + pairs[i].doc for i in train_idx])
    adapt(a, torch.from_numpy(pair_q[train_idx]), gold, docs, ADAPT, 1e-3)
    evaluate(f"{best['setting']}, then labelled pairs", a, len(idx), bias=best["bias"], stages="both")
    return rows


def table(rows: list[dict], datasets: list[str]) -> str:
    head = "| alignment texts | held-out cosine | held-out MRR@10 | " + " | ".join(datasets) + " | average |"
    lines = [head, "|---|---:|---:|" + "---:|" * (len(datasets) + 1)]
    for r in rows:
        avg = np.mean([r[d] for d in datasets])
        cos = f"{r['held_out_cosine']:.3f}" if "held_out_cosine" in r else "–"
        mrr = f"{100 * r['held_out_mrr10']:.1f}" if "held_out_mrr10" in r else "–"
        lines.append(f"| {r['setting']} | {cos} | {mrr} | " + " | ".join(f"{100 * r[d]:.1f}" for d in datasets)
                     + f" | {100 * avg:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "workspaces" / "real")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    args = parser.parse_args()
    t = time.perf_counter()
    rows = run(args.workspace, args.sizes)
    from explorer.workspace import Workspace

    print(table(rows, Workspace(args.workspace).datasets))
    print(f"\n{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
