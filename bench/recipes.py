"""Training recipes of one expert per dataset, side by side (issue 11 §1): the study's recipe against early stopping
on held-out training queries, hard negatives and LoRA on the feed-forward layers too.

Every recipe trains on the same 90% of the dataset's training pairs; the other 10% of the training queries (a
seeded split by query) is the selection criterion (MRR@10 against the whole corpus). The test split is scored only
to report what each recipe did; nothing here is chosen on it.

    python -m bench.recipes                      # scifact (train queries) and cranfield (corpus crops)
    python -m bench.recipes --datasets scifact   # one dataset
    python -m bench.recipes --datasets npl --recipes "study (3 epochs)"   # some recipes
    python -m bench.recipes --judged cranfield cisi medline npl   # half the judged queries against corpus crops
    python -m bench.recipes --judged-cv npl cranfield   # the same, each epoch budget chosen by cross-validation
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
    from explorer.data import JUDGED_TEST, JUDGED_TRAIN, load_beir, split_judged
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


ATTENTION = ["query", "key", "value"]
CV_VARIANTS = {  # label -> (training pairs, settings over the core recipe, LoRA settings)
    "corpus crops": ("crops", {}, {"target_modules": FFN}),
    "judged queries": ("judged", {}, {"target_modules": FFN}),
    "judged queries, other relevant masked": ("judged", {"mask_relevant": True}, {"target_modules": FFN}),
    "judged queries, masked, attention-only LoRA, whole-corpus softmax":
        ("judged", {"mask_relevant": True, "negatives": "corpus"}, {"target_modules": ATTENTION}),
    "judged queries + crops, masked": ("both", {"mask_relevant": True}, {"target_modules": FFN}),
}


def judged_cv(name: str, variants: list[str], share: float = 0.5, seed: int = 13, folds: int = 3,
              max_epochs: int = 6) -> list[dict]:
    """Crops against a judged split with a fixed epoch budget chosen by `folds`-fold cross-validation on the judged
    training part (nDCG@10 of each held fold after every epoch, averaged over the folds; epoch 0 is the base
    model). The budget is then trained on the whole training part and scored once on the other part. Crops use
    no judged query to train, so their epoch is chosen on the whole training part in one run."""
    import random

    from explorer.data import JUDGED_TEST, JUDGED_TRAIN, load_beir, split_judged
    from explorer.encoders import Encoder

    ds = load_beir(DATA / name)
    split_judged(ds, "test", share, seed, JUDGED_TRAIN, JUDGED_TEST)
    base = Encoder()
    doc_emb = base.encode(ds.corpus.passages())
    judged = ds.split_queries(JUDGED_TRAIN)
    random.Random(seed).shuffle(judged)
    for f in range(folds):
        held = set(judged[f::folds])
        ds.qrels[f"cv{f}-held"] = {q: ds.qrels[JUDGED_TRAIN][q] for q in held}
        ds.qrels[f"cv{f}-train"] = {q: ds.qrels[JUDGED_TRAIN][q] for q in judged if q not in held}
    rows = [{"dataset": name, "training data": "none (base)", "pairs": 0, "cv_ndcg10": None,
             "held_out_ndcg10": test_ndcg(base, None, ds, doc_emb, JUDGED_TEST)}]
    for label in variants:
        source, settings, lora = CV_VARIANTS[label]
        recipe = ({**CORE[0], **settings, "holdout": 0.0, "epochs": max_epochs}, lora)
        start = time.perf_counter()
        if source == "crops":
            curves = [_epoch_curve(ds, _pairs(ds, source, JUDGED_TRAIN), doc_emb, JUDGED_TRAIN, recipe)]
            final = curves[0]
        else:
            curves = [_epoch_curve(ds, _pairs(ds, source, f"cv{f}-train"), doc_emb, f"cv{f}-held", recipe)
                      for f in range(folds)]
            final = _epoch_curve(ds, _pairs(ds, source, JUDGED_TRAIN), doc_emb, None, recipe)
        cv = [sum(c["scores"][e] for c in curves) / len(curves) for e in range(max_epochs + 1)]
        best = max(range(len(cv)), key=lambda e: (cv[e], -e))  # the earliest of equal scores
        rows.append({"dataset": name, "training data": label, "pairs": final["pairs"], "cv_ndcg10": cv,
                     "epochs": best, "held_out_ndcg10": final["test"][best],
                     "seconds": round(time.perf_counter() - start)})
        print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["evaluated"] = len(ds.qrels[JUDGED_TEST])
    return rows


def _pairs(ds, source: str, split: str) -> list:
    """A CV variant's training pairs: crops, the judged queries of `split`, or both (half each, 900 in all)."""
    from explorer.training import make_pairs

    crops = make_pairs(ds, "crops", {"max_pairs": 900}, seed=13)
    if source == "crops":
        return crops
    judged = make_pairs(ds, "qrels", {"max_pairs": 900, "split": split}, seed=13)
    return judged if source == "judged" else judged[:450] + crops[:900 - min(450, len(judged))]


def _epoch_curve(ds, pairs, doc_emb, score_split: str | None, recipe: tuple[dict, dict]) -> dict:
    """Train one expert for the recipe's epochs (no holdout) and score after every epoch: nDCG@10 of the
    `score_split` queries (the selection; epoch 0: before training) and of the judged test part (read only at the
    chosen epoch, to report it)."""
    import torch

    from explorer.data import JUDGED_TEST
    from explorer.encoders import Encoder
    from explorer.training import train_expert

    enc, docs = Encoder(), torch.from_numpy(doc_emb)
    train, lora = recipe
    per_epoch = -(-len(pairs) // train["batch_size"])
    curve = {"pairs": len(pairs), "scores": [], "test": []}

    def score() -> None:
        enc.model.eval()
        if score_split:
            curve["scores"].append(_split_ndcg(enc, ds, docs, score_split))
        curve["test"].append(_split_ndcg(enc, ds, docs, JUDGED_TEST))

    score()  # epoch 0: the base model (no expert yet)
    train_expert(enc, "x", pairs, {ds.name: doc_emb}, train, lora,
                 progress=lambda step, total, loss: (score(), enc.model.train()) if step % per_epoch == 0 else None)
    return curve


def _split_ndcg(enc, ds, docs, split: str) -> float:
    """Mean nDCG@10 of the `split` queries under the active expert (the training pass's embeddings)."""
    import torch

    from explorer.evaluation import per_query, run_dict

    qids = ds.split_queries(split)
    with torch.inference_mode():
        emb = torch.cat([enc.forward_train([ds.queries[q] for q in qids[b:b + 64]]) for b in range(0, len(qids), 64)])
        top = torch.topk(emb @ docs.T, min(100, docs.shape[0]), dim=1)
    run = run_dict(qids, ds.corpus.ids, top.indices.numpy(), top.values.numpy())
    return float(per_query(ds.qrels[split], run, ["nDCG@10"], qids)["nDCG@10"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), metavar="RECIPE")
    parser.add_argument("--judged", nargs="+", metavar="DATASET", help="instead: crops against half the judged "
                        "queries, each scored on the other half")
    parser.add_argument("--judged-cv", nargs="+", metavar="DATASET", help="instead: crops against half the judged "
                        "queries, each with its epoch budget chosen by 3-fold cross-validation on the training half")
    parser.add_argument("--variants", nargs="+", default=list(CV_VARIANTS), choices=list(CV_VARIANTS),
                        metavar="VARIANT", help="with --judged-cv: these training variants")
    args = parser.parse_args()
    if args.judged_cv:
        rows = [row for name in args.judged_cv for row in judged_cv(name, args.variants)]
        print("\n| dataset | expert trained on | pairs | cross-validated nDCG@10 ×100 by epoch (0: base) | epochs "
              "chosen | nDCG@10 ×100 on the other half |\n|---|---|---:|---|---:|---:|")
        for r in rows:
            cv = " / ".join(f"{100 * v:.1f}" for v in r["cv_ndcg10"]) if r["cv_ndcg10"] else "–"
            print(f"| {r['dataset']} | {r['training data']} | {r['pairs']} | {cv} | {r.get('epochs', '–')} | "
                  f"{100 * r['held_out_ndcg10']:.1f} ({r['evaluated']} queries) |")
        return
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
