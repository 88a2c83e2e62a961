"""The corpus-encoding stage on Ray against the local path, on the same corpus: the same embeddings (to float
tolerance) and the overhead ratio.

    python -m bench.ray_engine [--dataset scifact] [--passages 3000] [--actors 2]

Local: explorer's Encoder.encode in this process (torch on every core). Ray: explorer.engines.ray_encoder on a local
Ray instance with `--actors` CPU actors, each holding the base model; its time includes starting Ray and the
actors (the first chunk of a build pays it), and a second run on the same instance is reported without it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from .markdown import machine_line, table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--passages", type=int, default=3000)
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args(argv)
    import ray

    from explorer.data import load_beir
    from explorer.encoders import Encoder
    from explorer.engines import ray_encoder

    texts = load_beir(SHARED / args.dataset).corpus.passages()[:args.passages]
    t = time.perf_counter()
    local = Encoder("bundled", max_seq_length=256).encode(texts)
    local_s = time.perf_counter() - t
    encode = ray_encoder("bundled", 256, {"address": "", "actors": args.actors, "gpus_per_actor": 0,
                                          "batch_size": 256})
    t = time.perf_counter()
    first = encode(texts)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    again = encode(texts)
    again_s = time.perf_counter() - t
    ray.shutdown()
    diff = float(np.abs(first - local).max())
    print(machine_line())
    print()
    print(table(["path", "seconds", "passages/s", "ratio to local", "max |difference| to local"], [
        ["local (this process)", f"{local_s:.1f}", f"{len(texts) / local_s:.0f}", "1.00", "–"],
        [f"Ray, {args.actors} CPU actors, with start-up", f"{first_s:.1f}", f"{len(texts) / first_s:.0f}",
         f"{first_s / local_s:.2f}", f"{diff:.1e}"],
        [f"Ray, {args.actors} CPU actors, started", f"{again_s:.1f}", f"{len(texts) / again_s:.0f}",
         f"{again_s / local_s:.2f}", f"{float(np.abs(again - local).max()):.1e}"]]))
    print(f"\n{len(texts):,} passages of {args.dataset}, max 256 tokens.")


if __name__ == "__main__":
    main()
