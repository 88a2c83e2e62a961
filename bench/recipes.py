"""Training recipes of one expert per dataset, side by side (issue 11 §1): the study's recipe against early stopping
on held-out training queries, hard negatives and LoRA on the feed-forward layers too.

Every recipe trains on the same 90% of the dataset's training pairs; the other 10% of the training queries (a
seeded split by query) is the selection criterion (MRR@10 against the whole corpus). The test split is scored only
to report what each recipe did; nothing here is chosen on it.

    python -m bench.recipes                      # scifact (train queries) and cranfield (corpus crops)
    python -m bench.recipes --datasets scifact   # one dataset
    python -m bench.recipes --datasets npl --recipes "study (3 epochs)"   # some recipes
    python -m bench.recipes --judged cranfield cisi medline npl   # half the judged queries against corpus crops
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STUDY = {"epochs": 3, "batch_size": 32, "lr": 5e-4, "temperature": 0.05, "negatives": "corpus", "seed": 13}
EARLY = {**STUDY, "epochs": 10, "holdout": 0.1, "patience": 2}
FFN = ["query", "key", "value", "intermediate.dense", "output.dense"]  # attention and the feed-forward layers
RECIPES = {  # name -> (training settings, LoRA settings)
    "study (3 epochs)": (STUDY, {}),
    "early stop (≤10 epochs)": (EARLY, {}),
    "early stop + hard negatives": ({**EARLY, "negatives": "hard", "hard_negatives": 16}, {}),
    "early stop + feed-forward LoRA": (EARLY, {"target_modules": FFN}),
    "early stop + feed-forward LoRA + hard negatives": ({**EARLY, "negatives": "hard", "hard_negatives": 16},
                                                        {"target_modules": FFN}),
}


def test_ndcg(encoder, expert, ds, doc_emb, split: str = "test") -> float:
    """Mean nDCG@10 of the `split` queries under `expert`, searched and scored as the build does."""
    from explorer.evaluation import per_query, run_dict
    from explorer.index import build_index, search

    qids = ds.split_queries(split)
    run = search(build_index(doc_emb), encoder.encode([ds.queries[i] for i in qids], expert), 100, ds.corpus.ids,
                 qids)
    scores = per_query(ds.qrels[split], run_dict(qids, ds.corpus.ids, run.docs, run.scores), ["nDCG@10"], qids)
    return float(scores["nDCG@10"].mean())


def probe(name: str, recipes: list[str]) -> list[dict]:
    import torch

    from explorer.data import load_beir
    from explorer.encoders import Encoder
    from explorer.training import heldout_mrr, make_pairs, relevant_by_query, split_holdout, train_expert

    ds = load_beir(DATA / name)
    source = "qrels" if "train" in ds.qrels else "crops"
    pairs = make_pairs(ds, source, {"max_pairs": 900}, seed=13)
    train_idx, held_idx = split_holdout(pairs, 0.1, STUDY["seed"])  # the split train_expert's holdout makes
    held = relevant_by_query(pairs, [pair.doc for pair in pairs], held_idx)
    base = Encoder()
    t = time.perf_counter()
    doc_emb = base.encode(ds.corpus.passages())
    print(f"{name}: {len(ds.corpus)} documents encoded in {time.perf_counter() - t:.0f} s; {len(pairs)} {source} "
          f"pairs, {len(held[0])} held-out queries", flush=True)
    docs = torch.from_numpy(doc_emb)
    rows = [{"dataset": name, "recipe": "base", "source": source, "held_out_mrr10": heldout_mrr(base, held, docs),
             "test_ndcg10": test_ndcg(base, None, ds, doc_emb)}]
    for recipe in recipes:
        train, lora = RECIPES[recipe]
        enc = Encoder()
        chosen = pairs if "holdout" in train else [pairs[i] for i in train_idx]
        t = time.perf_counter()
        result = train_expert(enc, "x", chosen, {name: doc_emb}, train, lora)
        seconds = time.perf_counter() - t
        with enc.using("x"):
            mrr = heldout_mrr(enc, held, docs)
        rows.append({"dataset": name, "recipe": recipe, "source": source, "held_out_mrr10": mrr,
                     "test_ndcg10": test_ndcg(enc, "x", ds, doc_emb), "seconds": round(seconds, 1),
                     "best_epoch": result.settings.get("best_epoch", train["epochs"]),
                     "epochs_trained": result.settings.get("epochs_trained", train["epochs"])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


CORE = ({**EARLY, "negatives": "hard", "hard_negatives": 16}, {"target_modules": FFN})  # bench/real.toml's recipe


def judged_against_crops(name: str, share: float = 0.5, seed: int = 13) -> list[dict]:
    """One expert from corpus crops, one from corpus sentences (the inverse cloze task's query side) and one from a
    seeded `share` of the judged test queries (judged_split), all with the core study's recipe, all scored on the
    other part of the judged queries only."""
    from explorer.config import JUDGED_TEST, JUDGED_TRAIN
    from explorer.data import load_beir, split_judged
    from explorer.encoders import Encoder
    from explorer.training import make_pairs, train_expert

    ds = load_beir(DATA / name)
    split_judged(ds, "test", share, seed, JUDGED_TRAIN, JUDGED_TEST)
    base = Encoder()
    doc_emb = base.encode(ds.corpus.passages())
    rows = [{"dataset": name, "training data": "none (base)", "pairs": 0,
             "held_out_ndcg10": test_ndcg(base, None, ds, doc_emb, JUDGED_TEST)}]
    train, lora = CORE
    for label, source, split in (("corpus crops", "crops", None),
                                  ("corpus sentences (inverse cloze task's queries)", "sentences", None),
                                  (f"{share:.0%} of the judged queries", "qrels", JUDGED_TRAIN)):
        pairs = make_pairs(ds, source, {"max_pairs": 900, **({"split": split} if split else {})}, seed=13)
        enc = Encoder()
        result = train_expert(enc, "x", pairs, {name: doc_emb}, train, lora)
        rows.append({"dataset": name, "training data": label, "pairs": len(pairs),
                     "held_out_ndcg10": test_ndcg(enc, "x", ds, doc_emb, JUDGED_TEST),
                     "epochs": f"{result.settings.get('best_epoch')} of {result.settings.get('epochs_trained')}"})
        print(json.dumps(rows[-1]), flush=True)
    n_test = len(ds.qrels[JUDGED_TEST])
    for r in rows:
        r["evaluated"] = n_test
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), metavar="RECIPE")
    parser.add_argument("--judged", nargs="+", metavar="DATASET", help="instead: crops against half the judged "
                        "queries, each scored on the other half")
    args = parser.parse_args()
    if args.judged:
        rows = [row for name in args.judged for row in judged_against_crops(name)]
        print("\n| dataset | expert trained on | pairs | epochs (kept of trained) | nDCG@10 ×100 on the other half |"
              "\n|---|---|---:|---|---:|")
        for r in rows:
            print(f"| {r['dataset']} | {r['training data']} | {r['pairs']} | {r.get('epochs', '–')} | "
                  f"{100 * r['held_out_ndcg10']:.1f} ({r['evaluated']} queries) |")
        return
    rows = [row for name in args.datasets for row in probe(name, args.recipes)]
    print("\n| dataset | pairs from | recipe | held-out MRR@10 ×100 (selection) | test nDCG@10 ×100 (report) | "
          "epochs (best / trained) | seconds |\n|---|---|---|---|---|---|---|")
    for r in rows:
        epochs = f"{r['best_epoch']} / {r['epochs_trained']}" if "best_epoch" in r else "–"
        print(f"| {r['dataset']} | {r['source']} | {r['recipe']} | {100 * r['held_out_mrr10']:.1f} | "
              f"{100 * r['test_ndcg10']:.1f} | {epochs} | {r.get('seconds', '–')} |")


if __name__ == "__main__":
    main()
