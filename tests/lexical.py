"""An independent lexical scorer for the run-file tests: TF-IDF over lower-cased word tokens, written here from its
textbook definition and sharing no code with explorer, so a run it writes is a run from another implementation."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def tfidf_run(beir: Path, qids: list[str] | None = None, depth: int = 1000, digits: int | None = None,
              tag: str = "tfidf") -> list[str]:
    """TREC lines `qid Q0 docid rank score tag` for the queries of a BEIR folder (all, or `qids`), ranked by
    sum over query words of tf * idf; `digits` rounds the scores (to make ties)."""
    docs = [json.loads(line) for line in (beir / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    queries = {q["_id"]: q["text"] for q in (json.loads(line) for line in
                                             (beir / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line)}
    bags = [Counter(_tokens(f"{d.get('title', '')} {d['text']}")) for d in docs]
    df = Counter(w for bag in bags for w in bag)
    idf = {w: math.log(len(docs) / n) for w, n in df.items()}
    lines = []
    for qid in qids or list(queries):
        words = _tokens(queries[qid])
        scored = [(sum(bag[w] * idf.get(w, 0.0) for w in words), d["_id"]) for bag, d in zip(bags, docs)]
        if digits is not None:
            scored = [(round(s, digits), d) for s, d in scored]
        scored.sort(key=lambda sd: -sd[0])  # the file's own order; ties as Python's stable sort leaves them
        for rank, (score, doc) in enumerate(scored[:depth], start=1):
            lines.append(f"{qid} Q0 {doc} {rank} {score} {tag}")
    return lines
