"""Half precision against float32 for the embedding passes ([model] precision = "float16", issue 15): how far the
embeddings and the rankings move, on real corpora and their test queries.

    python -m bench.precision                       # scifact and cranfield from ../shared/data
    python -m bench.precision --datasets scifact --device cuda

Both passes use explorer's Encoder (float16 = torch autocast on the encoder's device). Reported per dataset: the
largest absolute difference of an embedding coordinate, the mean top-10 overlap of the two runs, the share of
queries whose top 10 is identical, and nDCG@10 under each (ir-measures), with the passages per second of each pass.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from .markdown import machine_line, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def compare(name: str, device: str) -> dict:
    from explorer.data import load_beir
    from explorer.encoders import Encoder
    from explorer.evaluation import per_query, run_dict
    from explorer.index import build_index, search

    ds = load_beir(DATA / name, name)
    qids = ds.split_queries("test")
    queries = [ds.queries[q] for q in qids]
    out = {"dataset": name, "documents": len(ds.corpus), "queries": len(qids)}
    runs, emb = {}, {}
    for precision in ("float32", "float16"):
        enc = Encoder(device=device, precision=precision)
        t = time.perf_counter()
        docs = enc.encode(ds.corpus.passages())
        out[f"{precision} passages/s"] = len(docs) / (time.perf_counter() - t)
        q = enc.encode(queries)
        emb[precision] = (docs, q)
        runs[precision] = search(build_index(docs), q, 100, ds.corpus.ids, qids)
        scores = per_query(ds.qrels["test"], run_dict(qids, ds.corpus.ids, runs[precision].docs,
                                                      runs[precision].scores), ["nDCG@10"], qids)
        out[f"{precision} nDCG@10"] = float(scores["nDCG@10"].mean())
    out["max |Δ| embedding"] = float(max(np.abs(emb["float32"][i] - emb["float16"][i]).max() for i in (0, 1)))
    a, b = runs["float32"].docs[:, :10], runs["float16"].docs[:, :10]
    overlap = [len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), b.tolist())]
    out["top-10 overlap"] = float(np.mean(overlap))
    out["identical top 10"] = float(np.mean([x == y for x, y in zip(a.tolist(), b.tolist())]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = [compare(name, args.device) for name in args.datasets]
    print(machine_line())
    print(table(["dataset", "documents", "queries", "max |Δ| of an embedding coordinate", "mean top-10 overlap",
                 "identical top 10", "nDCG@10 ×100 float32", "nDCG@10 ×100 float16", "passages/s float32",
                 "passages/s float16"],
                [[r["dataset"], f"{r['documents']:,}", r["queries"], f"{r['max |Δ| embedding']:.1e}",
                  f"{r['top-10 overlap']:.4f}", f"{r['identical top 10']:.3f}", f"{100 * r['float32 nDCG@10']:.2f}",
                  f"{100 * r['float16 nDCG@10']:.2f}", f"{r['float32 passages/s']:.0f}",
                  f"{r['float16 passages/s']:.0f}"] for r in rows]))


if __name__ == "__main__":
    main()
