"""Training query-side experts.

Documents stay base-encoded, so a training step is a query forward pass against the precomputed document matrix.
The loss is a softmax cross-entropy over negatives: `negatives = "corpus"` uses every document of the dataset(s)
(free, since the matrix is already there), `"in-batch"` only the other positives of the batch, `"hard"` those plus
each pair's documents that the base model ranks highest but are not relevant (mined with one product against the
same matrix). With `holdout`, a seeded share of the training queries is held out and each epoch is scored on it
(MRR@10 against the whole corpus); training stops after `patience` epochs without a better score and keeps the
best epoch's weights, so the budget fits the data without reading any test query; `stop_split` takes judged
queries of the expert's dataset that it does not train on instead, scored by graded nDCG@10 (a crop expert of a
judged split stops on the judged training half). `mask_relevant` keeps a query's other relevant documents out of
its negatives. The defaults (up to 10 epochs, a 10% holdout, 16 hard negatives; LoRA on attention and the
feed-forward layers) are the recipe bench.recipes chose by held-out MRR@10 of training queries (docs/benchmarks.md).
Pairs come from qrels (human or generated queries) or, for a domain without labels, from the corpus itself:
random spans (Contriever-style crops) or titles as pseudo-queries for their own document.
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .data import BeirDataset
from .lazy import Lazy
from .settings import Param, defaults

if TYPE_CHECKING:
    from .encoders import Encoder

torch = Lazy("torch")

PAIR_SOURCES = ("qrels", "generated", "crops", "sentences", "titles")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
NEGATIVES = ("corpus", "in-batch", "hard")

TRAIN_PARAMS = (
    Param("epochs", int, 10, "passes over the expert's training pairs (with holdout: at most)", min=1, max=1000),
    Param("batch_size", int, 32, "pairs per training step", min=1, max=4096),
    Param("lr", float, 5e-4, "AdamW learning rate (a kind's `adapter_lr` or own default takes precedence)",
          above=0, max=1),
    Param("temperature", float, 0.05, "softmax temperature τ of the contrastive loss", above=0, max=100),
    Param("warmup", float, 0.1, "share of the steps with linear warm-up", min=0, max=1),
    Param("seed", int, 13, "seed of pair sampling, shuffling and initialisation"),
    Param("negatives", str, "hard", "\"corpus\": softmax over every document; \"in-batch\": the batch's positives; "
          "\"hard\": the batch's positives and each pair's hard negatives", choices=NEGATIVES),
    Param("hard_negatives", int, 16, "negatives = \"hard\": documents the base model ranks highest that are not "
          "relevant, mined per pair", min=1, max=1000),
    Param("mask_relevant", bool, False, "leave out of each pair's negatives the other documents judged relevant to "
          "the same query (a judged query with many relevant documents otherwise learns to push them away)"),
    Param("holdout", float, 0.1, "share of the training queries held out to choose the stopping epoch by their "
          "MRR@10 (0: no early stopping, every epoch is trained)", min=0, max=0.5),
    Param("stop_split", str, None, "a qrels split of the expert's own dataset whose judged queries choose the "
          "stopping epoch by their graded nDCG@10, instead of held-out training pairs (every pair then trains), "
          "e.g. \"judged-train\" for a crop expert of a judged split; never the evaluated split", nullable=True),
    Param("patience", int, 2, "with holdout or stop_split: epochs without a better held-out score before training "
          "stops", min=1, max=1000),
    Param("max_pairs", int, 3000, "pairs kept per source (0: all)", min=0, nullable=True),
    Param("crops_per_doc", int, 2, "crops and sentences sources: pseudo-queries cut from each document", min=1,
          max=100),
    Param("crop_min_words", int, 6, "crops source: shortest span in words; sentences: shortest sentence", min=1,
          max=512),
    Param("crop_max_words", int, 16, "crops source: longest span in words; sentences: longer ones are cut", min=1,
          max=512),
    Param("split", str, "train", "qrels split that the qrels and generated sources read"),
    Param("per_dataset_pairs", int, None, "multi-task: pairs taken from each dataset (none: the smallest set)",
          min=1, nullable=True),
)
TRAIN_DEFAULTS = defaults(TRAIN_PARAMS)
# The values an expert's cache key leaves out: every default, except those changed since keys were introduced,
# which keep their former value (3 epochs, corpus negatives, 8 hard negatives, no holdout), so an expert trained
# before keeps its key and one that relies on a new default is trained again.
KEY_BASELINE = {**TRAIN_DEFAULTS, "epochs": 3, "negatives": "corpus", "hard_negatives": 8, "holdout": 0.0}
# The keys a single [[experts]].sources entry may set for itself (make_pairs reads them).
SOURCE_PARAMS = tuple(p for p in TRAIN_PARAMS if p.name in ("split", "max_pairs", "crops_per_doc", "crop_min_words",
                                                               "crop_max_words"))


@dataclass(frozen=True)
class Pair:
    query: str
    dataset: str
    doc: int  # row of the document in its dataset's corpus
    grade: int = 1  # the judgement of a qrels pair (pseudo-queries: 1)


def make_pairs(ds: BeirDataset, source: str, params: Mapping, seed: int) -> list[Pair]:
    """Training pairs of one dataset from one source, deterministic for a seed."""
    p = {**TRAIN_DEFAULTS, **params}
    rng = random.Random(seed)
    row = {d: i for i, d in enumerate(ds.corpus.ids)}
    pairs: list[Pair] = []
    if source in ("qrels", "generated"):
        split = p["split"]
        if split not in ds.qrels:
            raise ValueError(f"dataset {ds.name!r} has no qrels/{split}.tsv for source {source!r} "
                             f"(fix: use source = \"crops\" for a dataset without training queries)")
        for qid, docs in ds.qrels[split].items():
            for did, grade in docs.items():
                if grade > 0 and did in row:
                    pairs.append(Pair(ds.queries[qid], ds.name, row[did], int(grade)))
    elif source == "crops":
        lo, hi = int(p["crop_min_words"]), int(p["crop_max_words"])
        for i, text in enumerate(ds.corpus.passages()):
            words = text.split()
            if len(words) < lo:
                continue
            for _ in range(int(p["crops_per_doc"])):
                n = rng.randint(lo, min(hi, len(words)))
                start = rng.randint(0, len(words) - n)
                pairs.append(Pair(" ".join(words[start:start + n]), ds.name, i))
    elif source == "sentences":
        pairs = _sentence_pairs(ds, int(p["crop_min_words"]), int(p["crop_max_words"]), int(p["crops_per_doc"]), rng)
    elif source == "titles":
        pairs = [Pair(t, ds.name, i) for i, t in enumerate(ds.corpus.titles) if t.strip()]
    else:
        raise ValueError(f"unknown pair source {source!r}; choose one of {', '.join(PAIR_SOURCES)}")
    rng.shuffle(pairs)
    return pairs[: int(p["max_pairs"])] if p["max_pairs"] else pairs


def _sentence_pairs(ds: BeirDataset, lo: int, hi: int, per_doc: int, rng: random.Random) -> list[Pair]:
    """The inverse cloze task's query side: one whole sentence of a passage (of at least `lo` words, cut to `hi`) as
    the query, the passage as its document. The document keeps the sentence: documents stay base-encoded, so the
    rest of the passage cannot be encoded on its own, as the original task does."""
    pairs = []
    for i, text in enumerate(ds.corpus.texts):
        sentences = [s.split() for s in SENTENCE_END.split(text)]
        sentences = [s for s in sentences if len(s) >= lo]
        for s in rng.sample(sentences, min(per_doc, len(sentences))):
            pairs.append(Pair(" ".join(s[:hi]), ds.name, i))
    return pairs


def balanced_union(pair_sets: Sequence[list[Pair]], per_set: int | None, seed: int) -> list[Pair]:
    """The multi-task training set: the same number of pairs from every source (the smallest, or `per_set`)."""
    sizes = [len(s) for s in pair_sets if s]
    take = min(sizes) if per_set is None else min(per_set, *sizes)
    rng = random.Random(seed)
    union = [pair for s in pair_sets for pair in s[:take]]
    rng.shuffle(union)
    return union


@dataclass
class TrainResult:
    steps: int
    loss_curve: list[float]
    seconds: float
    trainable_parameters: int
    settings: dict  # what the expert's kind was built with (LoRA rank, prefix length, query encoder, ...) and lr


def alignment_sample(corpora: Mapping[str, Sequence[str]], doc_matrices: Mapping[str, np.ndarray],
                     datasets: Sequence[str], per_dataset: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Up to `per_dataset` passages of each dataset with their base embeddings: identical texts for ERA's
    alignment stage (seeded, so a rebuild draws the same ones)."""
    rng = np.random.default_rng(seed)
    texts, rows = [], []
    for ds in datasets:
        passages = corpora.get(ds, [])
        if not passages:
            continue
        pick = np.sort(rng.choice(len(passages), min(per_dataset, len(passages)), replace=False))
        texts += [passages[i] for i in pick]
        rows.append(doc_matrices[ds][pick])
    return texts, (np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32))


def train_expert(encoder: Encoder, name: str, pairs: Sequence[Pair], doc_matrices: Mapping[str, np.ndarray],
                 params: Mapping, adapter_params: Mapping | None = None,
                 progress: Callable[[int, int, float], None] | None = None, kind: str = "lora",
                 corpora: Mapping[str, Sequence[str]] | None = None, stop_pairs: Sequence[Pair] | None = None
                 ) -> TrainResult:
    """Add expert `name` of `kind` to `encoder` and train it on `pairs` against the base document embeddings:
    only the expert's own parameters learn, the base model stays frozen. With `stop_pairs` (judged queries of the
    expert's datasets that it does not train on) they, not a holdout of `pairs`, choose the stopping epoch."""
    if not pairs:
        raise ValueError(f"expert {name!r} has no training pairs (fix: check its data sources)")
    p = {**TRAIN_DEFAULTS, **params}
    if p["negatives"] not in NEGATIVES:
        raise ValueError(f"negatives = {p['negatives']!r}; choose one of {', '.join(NEGATIVES)}")
    seed = int(p["seed"])
    torch.manual_seed(seed)
    names = sorted({pair.dataset for pair in pairs})
    docs, offsets = _document_matrix(doc_matrices, names, encoder.model.device)
    targets = [offsets[pair.dataset] + pair.doc for pair in pairs]
    stop = None if not stop_pairs else graded_by_query(stop_pairs, [offsets[x.dataset] + x.doc for x in stop_pairs])
    count = encoder.add_expert(name, kind, adapter_params or {})
    handler = encoder.experts[name]
    if handler.trains_itself:  # ERA: alignment, then the labelled pairs
        start = time.perf_counter()
        settings = {**p, **(adapter_params or {})}
        texts, emb = alignment_sample(corpora or {}, doc_matrices, names, int(settings.get("align_passages", 500)),
                                      seed)
        if settings.get("align_queries"):  # identical texts again: each training query under both encoders
            queries = list(dict.fromkeys(pair.query for pair in pairs))
            texts, emb = texts + queries, np.concatenate([emb.reshape(-1, encoder.dim), encoder.encode(queries)])
        curve = handler.fit(name, [pair.query for pair in pairs], targets, docs.cpu(), texts, emb, settings,
                            progress)  # its own query encoder runs on the CPU
        return TrainResult(steps=len(curve), loss_curve=curve, seconds=time.perf_counter() - start,
                           trainable_parameters=count, settings=handler.settings(name))
    lr = float((adapter_params or {}).get("adapter_lr", handler.default_lr or p["lr"]))
    run = _Run(encoder, name, pairs, targets, docs, p, handler.trainable_parameters(name), lr, progress, stop)
    start = time.perf_counter()
    curve = run.epochs()
    settings = {**handler.settings(name), "lr": lr}
    if run.stopper:
        settings.update(run.stopper.restore(), holdout_queries=len(run.held[0]), steps_per_epoch=run.steps_per_epoch)
    return TrainResult(steps=len(curve), loss_curve=curve, seconds=time.perf_counter() - start,
                       trainable_parameters=count, settings=settings)


def _document_matrix(doc_matrices: Mapping[str, np.ndarray], names: list[str], device):
    """Every training dataset's base document embeddings as one matrix on `device` (where the query passes run),
    and the row each dataset starts at."""
    offsets, total = {}, 0
    for ds in names:
        offsets[ds] = total
        total += len(doc_matrices[ds])
    docs = torch.from_numpy(np.concatenate([doc_matrices[ds] for ds in names]).astype(np.float32)).to(device)
    return docs, offsets


class _Run:
    """One expert's training: AdamW with linear warm-up and decay, contrastive batches, early stopping on the
    held-out queries when a holdout or stopping queries are set (the best epoch's weights are kept)."""

    def __init__(self, encoder, name, pairs, targets, docs, p, trainable, lr, progress, stop=None):
        self.encoder, self.name, self.pairs, self.targets, self.docs, self.p = encoder, name, pairs, targets, docs, p
        self.trainable, self.progress = trainable, progress
        seed = int(p["seed"])
        self.rng = random.Random(seed)
        self.batch_size, epochs = int(p["batch_size"]), int(p["epochs"])
        train_idx, held_idx = split_holdout(pairs, 0.0 if stop else float(p["holdout"]), seed)
        self.steps_per_epoch = math.ceil(len(train_idx) / self.batch_size)
        self.total_steps, self.n_epochs = self.steps_per_epoch * epochs, epochs
        warmup = max(1, int(self.total_steps * float(p["warmup"])))
        self.optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
        total = self.total_steps

        def lr_factor(s: int) -> float:  # linear warm-up, then linear decay to zero
            return (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))

        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, lr_factor)
        self.hard = (mine_hard_negatives(encoder, pairs, targets, docs, int(p["hard_negatives"]))
                     if p["negatives"] == "hard" else None)
        self.held = stop or relevant_by_query(pairs, targets, held_idx)
        # judged stopping queries often have many relevant documents, where MRR saturates: graded nDCG@10 instead
        self.criterion = heldout_ndcg if stop else heldout_mrr
        self.relevant = (dict(zip(*relevant_by_query(pairs, targets, train_idx))) if p["mask_relevant"] else None)
        self.stopper = (EarlyStop(int(p["patience"]), trainable, "stop_ndcg10" if stop else "holdout_mrr10")
                        if self.held[0] else None)
        self.order = list(train_idx)
        self.curve: list[float] = []

    def epochs(self) -> list[float]:
        encoder = self.encoder
        with encoder.using(self.name):
            if self.stopper:
                self.stopper.update(0, self.criterion(encoder, self.held, self.docs))
            encoder.model.train()
            for t in self.trainable:
                t.requires_grad_(True)
            try:
                for epoch in range(1, self.n_epochs + 1):
                    self.rng.shuffle(self.order)
                    for b in range(0, len(self.order), self.batch_size):
                        self.step(self.order[b:b + self.batch_size])
                    if self.stopper and self.stop_after(epoch):
                        break
            finally:
                encoder.model.eval()
                for t in self.trainable:
                    t.requires_grad_(False)
        return self.curve

    def step(self, idx: list[int]) -> None:
        q = self.encoder.forward_train([self.pairs[i].query for i in idx])
        gold = torch.tensor([self.targets[i] for i in idx], device=self.encoder.model.device)
        loss = contrastive_loss(q, gold, self.docs, self.p["negatives"], float(self.p["temperature"]),
                                None if self.hard is None else self.hard[idx],
                                None if self.relevant is None else [self.relevant[self.pairs[i].query] for i in idx])
        loss.backward()
        self.optimiser.step()
        self.schedule.step()
        self.optimiser.zero_grad(set_to_none=True)
        self.curve.append(float(loss.detach()))
        if self.progress:
            self.progress(len(self.curve), self.total_steps, self.curve[-1])

    def stop_after(self, epoch: int) -> bool:
        """Score the held-out queries after `epoch`; True when early stopping says stop."""
        self.encoder.model.eval()
        stop = self.stopper.update(epoch, self.criterion(self.encoder, self.held, self.docs))
        self.encoder.model.train()
        return stop


def contrastive_loss(q: torch.Tensor, gold: torch.Tensor, docs: torch.Tensor, negatives: str, tau: float,
                     hard: torch.Tensor | None = None, relevant: Sequence[set] | None = None) -> torch.Tensor:
    """Softmax cross-entropy of each query's gold document against the negatives the setting names; with
    `relevant` (each pair's query's relevant rows) the others relevant to the same query are no negatives."""
    if negatives == "corpus":
        columns, target = None, gold
    else:
        pool = gold if hard is None else torch.cat([gold, hard.reshape(-1)])
        columns, inverse = torch.unique(pool, return_inverse=True)
        target = inverse[:len(gold)]
    logits = (q @ (docs if columns is None else docs[columns]).T) / tau
    if relevant is not None:
        logits = logits.masked_fill(_other_relevant(relevant, gold, columns, logits.shape), -torch.inf)
    return torch.nn.functional.cross_entropy(logits, target)


def _other_relevant(relevant: Sequence[set], gold: torch.Tensor, columns: torch.Tensor | None, shape) -> torch.Tensor:
    """(batch, columns) True where a column is a document relevant to the row's query other than its own gold."""
    mask = torch.zeros(shape, dtype=torch.bool, device=gold.device)
    col = None if columns is None else {int(d): j for j, d in enumerate(columns.tolist())}
    for i, (rows, own) in enumerate(zip(relevant, gold.tolist())):
        hit = [r if col is None else col[r] for r in rows if r != own and (col is None or r in col)]
        mask[i, hit] = True
    return mask


def split_holdout(pairs: Sequence[Pair], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Pair indices (train, held out): a seeded `share` of the distinct query texts held out with all their pairs
    (none when `share` is 0 or there are fewer than 4 queries)."""
    queries = list(dict.fromkeys(pair.query for pair in pairs))
    n = int(round(share * len(queries))) if share > 0 and len(queries) >= 4 else 0
    if n == 0:
        return list(range(len(pairs))), []
    held = set(random.Random(seed + 1).sample(queries, max(1, n)))
    return ([i for i, pair in enumerate(pairs) if pair.query not in held],
            [i for i, pair in enumerate(pairs) if pair.query in held])


def relevant_by_query(pairs: Sequence[Pair], targets: Sequence[int], indices: Sequence[int] | None = None
                      ) -> tuple[list[str], list[set]]:
    """(distinct query texts, the document rows paired with each) of the pairs at `indices` (all by default): every
    document paired with a query text counts as relevant to it."""
    relevant: dict[str, set] = {}
    for i in range(len(pairs)) if indices is None else indices:
        relevant.setdefault(pairs[i].query, set()).add(targets[i])
    return list(relevant), list(relevant.values())


def graded_by_query(pairs: Sequence[Pair], targets: Sequence[int]) -> tuple[list[str], list[dict]]:
    """(distinct query texts, {document row: grade} of each): judged queries with their graded judgements."""
    graded: dict[str, dict] = {}
    for pair, row in zip(pairs, targets):
        graded.setdefault(pair.query, {})[row] = pair.grade
    return list(graded), list(graded.values())


def mine_hard_negatives(encoder: Encoder, pairs: Sequence[Pair], targets: Sequence[int], docs: torch.Tensor,
                        k: int) -> torch.Tensor:
    """(n_pairs, k) document rows the base model ranks highest for each pair's query that are not relevant to it
    (every document paired with the same query text counts as relevant): one product with the base matrix."""
    queries, relevant = relevant_by_query(pairs, targets)
    sims = torch.from_numpy(encoder.encode(queries)).to(docs.device) @ docs.T
    for i, rows in enumerate(relevant):
        sims[i, list(rows)] = -torch.inf
    top = torch.topk(sims, min(k, docs.shape[0] - 1), dim=1).indices
    row = {q: i for i, q in enumerate(queries)}
    return top[[row[pair.query] for pair in pairs]]


def _top_rows(encoder: Encoder, texts: Sequence[str], docs: torch.Tensor, depth: int, batch: int
              ) -> list[tuple[list[int], list[float]]]:
    """(rows, scores) of each text's `depth` best documents of the matrix under the active expert, in order."""
    out: list[tuple[list[int], list[float]]] = []
    with torch.inference_mode():
        for b in range(0, len(texts), batch):
            top = torch.topk(encoder.forward_train(texts[b:b + batch]) @ docs.T, min(depth, docs.shape[0]), dim=1)
            out += zip(top.indices.tolist(), top.values.tolist())
    return out


def heldout_mrr(encoder: Encoder, held: tuple[list[str], list[set]], docs: torch.Tensor, depth: int = 10,
                batch: int = 64) -> float:
    """MRR@`depth` of the held-out queries against the whole document matrix, under the active expert."""
    texts, relevant = held
    total = 0.0
    for (ranks, _), rel in zip(_top_rows(encoder, texts, docs, depth, batch), relevant):
        total += next((1.0 / (r + 1) for r, d in enumerate(ranks) if d in rel), 0.0)
    return total / max(1, len(texts))


def heldout_ndcg(encoder: Encoder, held: tuple[list[str], list[dict]], docs: torch.Tensor, depth: int = 10,
                 batch: int = 64) -> float:
    """nDCG@`depth` (trec_eval's, by ir_measures) of judged queries with graded judgements {row: grade} against
    the whole document matrix, under the active expert."""
    from .evaluation import per_query

    texts, graded = held
    run = {str(i): {str(r): s for r, s in zip(rows, scores)}
           for i, (rows, scores) in enumerate(_top_rows(encoder, texts, docs, depth, batch))}
    qrels = {str(i): {str(r): g for r, g in rel.items()} for i, rel in enumerate(graded)}
    return float(per_query(qrels, run, [f"nDCG@{depth}"])[f"nDCG@{depth}"].mean()) if texts else 0.0


class EarlyStop:
    """Keeps the trainable tensors of the best epoch by held-out score (epoch 0: before any step) and says when
    `patience` epochs have passed without a better one; the card records the curve under `label`."""

    def __init__(self, patience: int, tensors: Sequence[torch.Tensor], label: str = "holdout_mrr10"):
        self.patience, self.tensors, self.label = patience, list(tensors), label
        self.best, self.best_epoch, self.best_state, self.curve = -1.0, 0, None, []

    def update(self, epoch: int, score: float) -> bool:
        self.curve.append(round(score, 6))
        if score > self.best:
            self.best, self.best_epoch = score, epoch
            self.best_state = [t.detach().clone() for t in self.tensors]
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> dict:
        """Put the best epoch's weights back; what the expert card records about the choice."""
        with torch.no_grad():
            for t, saved in zip(self.tensors, self.best_state):
                t.copy_(saved)
        return {"best_epoch": self.best_epoch, "epochs_trained": len(self.curve) - 1, self.label: self.curve}
