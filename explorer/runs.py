"""Runs brought from files: TREC (`qid Q0 docid rank score tag`) or 3-column TSV (`qid docid score`), read as the
untrusted input they are and kept as trec_eval would read them.

A file is streamed line by line and never held whole: per query of the dataset only the top `depth` results are
kept, in a heap ordered as trec_eval orders (score descending, ties by document id descending), so a 2 GB file
costs the memory of its kept results. Every malformed line is reported at once with its file:line and the fix
(the first MAX_LISTED listed, the rest counted by kind). Queries the dataset does not have are counted and shown
as a warning (trec_eval ignores them too); documents it does not have stay in the ranking as not relevant, as
trec_eval counts them, and are counted in a warning. The rank column is read to check it, never to order.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .data import NOT_A_FILE, DataError, Problem, path_kind
from .settings import REQUIRED, Param

RUN_FORMATS = ("auto", "trec", "tsv")
COLUMNS = {"trec": 6, "tsv": 3}
LAYOUT = {"trec": "qid Q0 docid rank score tag", "tsv": "qid docid score"}
MAX_LINE_BYTES = 4096  # a longer line is malformed; it is skipped without being read whole
MAX_LISTED = 50  # problems listed by line; the rest are counted by kind
EXAMPLES = 5  # unknown query ids shown in a warning
MAX_UNKNOWN = 100_000  # distinct unknown query ids counted exactly (a hostile file could name millions)

RUN_PARAMS = (
    Param("name", str, REQUIRED, "the system's name in every table and page; the same name over several "
          "[[runs]] tables (one per dataset) is one system"),
    Param("dataset", str, REQUIRED, "the configured dataset whose queries and documents the file ranks"),
    Param("path", str, REQUIRED, "the run file, relative to this file"),
    Param("format", str, "auto", 'trec: "qid Q0 docid rank score tag"; tsv: "qid docid score" (a header line '
          "allowed); auto: told by the first line's column count", choices=RUN_FORMATS),
    Param("candidate", bool, False, "a routing candidate: routers and oracles may choose this run (from its "
          "pilot-query lines, where the file has them); it needs a file for every dataset"),
)


class RunFileError(DataError):
    """A run file that cannot be read: every problem listed (up to MAX_LISTED), the rest counted by kind."""

    def __init__(self, path: Path, problems: list[Problem], counts: Counter):
        total = sum(counts.values())
        self.counts = counts
        shown = "\n".join(f"  - {p}" for p in problems)
        rest = total - len(problems)
        more = ""
        if rest > 0:
            kinds = ", ".join(f"{n:,} {k}" for k, n in counts.most_common())
            more = f"\n  ... and {rest:,} more (in all: {kinds})"
        ValueError.__init__(self, f"{path}: {total:,} problem(s) in the run file:\n{shown}{more}")
        self.problems = problems


@dataclass
class RunTarget:
    """What a run file is read against: one dataset's documents and queries, and the workspace's run depth."""

    dataset: str
    doc_ids: Sequence[str]  # corpus order: a document's position is its `doc` in the runs table
    qids: set[str]  # every query of the dataset a run may rank (pilot and evaluated)
    depth: int
    ignore_identical_ids: bool = False  # BEIR's rule, as the dataset's own runs apply it

    @property
    def positions(self) -> dict[str, int]:
        if not hasattr(self, "_positions"):
            self._positions = {d: i for i, d in enumerate(self.doc_ids)}
        return self._positions


@dataclass
class ParsedRun:
    """A run file as the workspace keeps it: per known query its top `depth` (doc id, score) in trec_eval's order,
    and what was left out or cut, for the warnings and the manifest."""

    path: Path
    format: str
    sha256: str
    lines: int  # result lines read (blank lines and a TSV header not counted)
    hits: dict[str, list[tuple[str, float]]]  # qid -> [(docid, score)], best first, at most `depth`
    depth: int
    cut_queries: int = 0  # queries with more than `depth` results (cut to depth)
    deepest: int = 0  # the most results any query of the dataset has in the file
    unknown_qids: int = 0  # distinct query ids the dataset does not have
    unknown_qid_lines: int = 0
    unknown_qid_examples: list[str] = field(default_factory=list)
    unknown_doc_lines: int = 0  # kept results naming a document the corpus does not have
    identical_dropped: int = 0  # results dropped by the dataset's ignore_identical_ids rule
    interleaved: bool = False  # a query's lines were not together (duplicates were checked over the whole file)

    def warnings(self, target: RunTarget, missing: Mapping[str, int] | None = None) -> list[str]:
        """What a researcher should know about this file, one line each (the manifest keeps them)."""
        out = []
        if self.unknown_qids:
            many = "+" if self.unknown_qids >= MAX_UNKNOWN else ""
            out.append(f"{self.unknown_qids:,}{many} query id(s) on {self.unknown_qid_lines:,} line(s) are not "
                       "queries of "
                       f"{target.dataset!r} and are ignored, as trec_eval ignores them (e.g. "
                       f"{', '.join(map(repr, self.unknown_qid_examples))})")
        if self.unknown_doc_lines:
            out.append(f"{self.unknown_doc_lines:,} kept result(s) name documents that {target.dataset!r} does not "
                       "have: they keep their rank and count as not relevant, as trec_eval counts them")
        if self.cut_queries:
            out.append(f"{self.cut_queries:,} query(ies) rank more than the workspace's depth {self.depth} (up to "
                       f"{self.deepest:,}): each is cut to its top {self.depth} in trec_eval's order, and every "
                       "measure is computed on them, as for the workspace's own runs")
        if self.identical_dropped:
            out.append(f"{self.identical_dropped:,} result(s) whose document id is the query's id are dropped by "
                       f"{target.dataset!r}'s ignore_identical_ids rule, as for its own runs")
        for role, n in (missing or {}).items():
            if n:
                out.append(f"{n:,} {role} query(ies) of {target.dataset!r} have no line in the file: they score 0, "
                           "as trec_eval -c counts them")
        return out


class _Interleaved(Exception):
    """A query's lines resumed after another query's: duplicates need every query's ids kept (a second pass)."""


class _Scan:
    """One pass over a run file. `keep_all`: remember every (qid, docid) of the dataset's queries (a file whose
    queries are interleaved); otherwise only the current query's, which is what every TREC tool writes. The common
    line takes the short path (`line`, `result`); anything unusual goes to a method of its own."""

    def __init__(self, path: Path, fmt: str, target: RunTarget, keep_all: bool):
        self.path, self.format, self.target, self.keep_all = path, fmt, target, keep_all
        self.columns = COLUMNS.get(fmt)  # None until `auto` has seen a line
        self.trec = fmt == "trec"
        self.problems: list[Problem] = []
        self.counts: Counter = Counter()
        self.heaps: dict[str, list[tuple[float, str]]] = {}
        self.seen: dict[str, dict[str, int]] = {}  # qid -> docid -> first line (the current query's, or all)
        self.closed: set[str] = set()
        self.current: str | None = None
        self.block: dict[str, int] | None = None  # the current query's `seen` (None: a query the dataset lacks)
        self.heap: list[tuple[float, str]] = []
        self.unknown: dict[str, None] = {}  # distinct query ids the dataset does not have (up to MAX_UNKNOWN)
        self.lines = self.unknown_lines = 0
        self.identical: set[str] = set()  # queries whose own id was dropped as a document
        self.counted: dict[str, int] = {}  # results per query of the dataset, filled as each is closed
        self.header_done = fmt == "trec"  # a TSV file's first line may be its header
        self.digest = hashlib.sha256()

    def problem(self, line: int | None, kind: str, message: str, fix: str) -> None:
        self.counts[kind] += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(self.path, line, message, fix))

    def run(self) -> None:
        with open(self.path, "rb") as handle:
            readline, update, line = handle.readline, self.digest.update, self.line
            number = 0
            while raw := readline(MAX_LINE_BYTES + 1):
                number += 1
                update(raw)
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    self.long_line(number, handle)
                    continue
                try:
                    parts = raw.decode("utf-8").split()
                except UnicodeDecodeError:
                    self.problem(number, "not UTF-8", "the line is not UTF-8 text", "re-save the file as UTF-8")
                    continue
                if parts:
                    line(number, parts)
        if not self.lines and not self.counts:
            self.problem(None, "empty", "holds no result lines", f"write one result per line as `{self._layout()}`")

    def long_line(self, number: int, handle) -> None:
        self.problem(number, "line too long", f"the line is longer than {MAX_LINE_BYTES:,} bytes",
                     f"write one result per line as `{self._layout()}`")
        raw = b""
        while not raw.endswith(b"\n"):  # skip the rest of it without holding it
            raw = handle.readline(1 << 20)
            self.digest.update(raw)
            if not raw:
                break

    def _layout(self) -> str:
        return LAYOUT.get(self.format, f"{LAYOUT['trec']}` or `{LAYOUT['tsv']}")

    def line(self, number: int, parts: list[str]) -> None:
        if len(parts) != self.columns:
            self.odd_line(number, parts)
            return
        if self.trec:
            qid, docid, rank, score = parts[0], parts[2], parts[3], parts[4]
            if not (rank.isdigit() and rank.isascii()) and not _is_int(rank):
                self.problem(number, "non-integer rank", f"rank {rank[:40]!r} is not an integer",
                             "write the rank as a whole number (trec_eval orders by score; the rank is not read)")
                return
        else:
            qid, docid, score = parts
        try:
            value = float(score)
        except ValueError:
            value = None
        if value is None or value - value != 0 or "_" in score:  # not a number, NaN or infinite, or 1_0
            self.bad_score(number, score, value)
            return
        self.header_done = True
        self.lines += 1
        self.result(number, qid, docid, value)

    def odd_line(self, number: int, parts: list[str]) -> None:
        """A line of another column count: the first line of an `auto` file (which tells the format), or a problem."""
        if self.columns is None:
            self.format = next((f for f, n in COLUMNS.items() if n == len(parts)), "stopped")
            self.columns, self.trec = COLUMNS.get(self.format, -1), self.format == "trec"
            if self.columns > 0:
                self.line(number, parts)
                return
            self.problem(number, "unknown layout", f"has {len(parts)} columns, so the format cannot be told",
                         f"a TREC run line is `{LAYOUT['trec']}`, a TSV line `{LAYOUT['tsv']}`; or set format")
        elif self.columns > 0:
            self.problem(number, "wrong column count", f"has {len(parts)} columns, a {self.format.upper()} run line "
                         f"has {self.columns} ({LAYOUT[self.format]})",
                         f"write one result per line as `{LAYOUT[self.format]}`, separated by spaces or tabs")

    def bad_score(self, number: int, score: str, value: float | None) -> None:
        if not self.header_done:  # the header line of a TSV run (e.g. `query-id corpus-id score`)
            self.header_done = True
            if value is None:
                return
        if value is None or "_" in score:
            self.problem(number, "non-numeric score", f"score {score[:40]!r} is not a number",
                         "write the score as a decimal number, e.g. 12.5 or -3.2e-1")
        else:
            self.problem(number, "non-finite score", f"score {score[:40]!r} is not a finite number",
                         "write a finite score: NaN and infinity have no order")

    def result(self, number: int, qid: str, docid: str, score: float) -> None:
        if qid != self.current:
            self.switch(qid)
        seen = self.block
        if seen is None:  # ignored, as trec_eval ignores a query it has no judgements for
            self.unknown_lines += 1
            return
        if docid in seen:
            self.problem(number, "duplicate result", f"document {docid[:60]!r} is ranked again for query "
                         f"{qid[:60]!r} (first at line {seen[docid]})",
                         "keep one line per (query, document): trec_eval refuses a document ranked twice")
            return
        seen[docid] = number
        if docid == qid and self.target.ignore_identical_ids:
            self.identical.add(qid)
            return
        # a min-heap on (score, docid) keeps the best `depth` in trec_eval's order: its root is the worst kept
        if len(self.heap) < self.target.depth:
            heapq.heappush(self.heap, (score, docid))
        else:
            heapq.heappushpop(self.heap, (score, docid))

    def switch(self, qid: str) -> None:
        """The lines of another query begin: close the current one's ids (unless every one is kept)."""
        if not self.keep_all and self.current in self.seen:
            self.closed.add(self.current)
            self.per_query(self.current)
            del self.seen[self.current]
        self.current = qid
        if qid not in self.target.qids:
            self.block = None
            if len(self.unknown) < MAX_UNKNOWN:
                self.unknown.setdefault(qid, None)
            return
        if qid in self.closed:
            raise _Interleaved
        self.block = self.seen.setdefault(qid, {})
        self.heap = self.heaps.setdefault(qid, [])

    def per_query(self, qid: str) -> None:
        """How many results the file gives a query of the dataset (its own id dropped by the identical-id rule)."""
        self.counted[qid] = len(self.seen[qid]) - (qid in self.identical)

    def finish(self) -> dict[str, int]:
        """Results per query of the dataset, every query closed."""
        for qid in list(self.seen):
            self.per_query(qid)
        return self.counted


def _number(text: str) -> float | None:
    """The value of a score as C's strtod reads a plain decimal (no '_' digit separators, which Python accepts)."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_int(text: str) -> bool:
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit()


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a run file (not a plain readable file), or None."""
    kind = path_kind(path)
    if kind == "missing":
        return "does not exist"
    if kind != "file":
        return NOT_A_FILE[kind]
    try:
        with open(path, "rb"):
            return None
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


def read_run(path: str | Path, target: RunTarget, fmt: str = "auto") -> ParsedRun:
    """A run file read against `target`; RunFileError listing every malformed line (file:line and the fix)."""
    path = Path(path)
    if fmt not in RUN_FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(RUN_FORMATS)}")
    why = file_problem(path)
    if why:
        raise RunFileError(path, [Problem(path, None, f"the run file {why}", "give the path of a TREC or TSV run "
                                          "file")], Counter({"unreadable": 1}))
    try:
        scan = _Scan(path, fmt, target, keep_all=False)
        try:
            scan.run()
        except _Interleaved:  # rare: a file not grouped by query; read again, keeping every query's ids
            scan = _Scan(path, fmt, target, keep_all=True)
            scan.run()
    except OSError as err:
        raise RunFileError(path, [Problem(path, None, f"could not be read ({err.strerror or err})",
                                          "check the file")], Counter({"unreadable": 1})) from err
    if scan.counts:
        raise RunFileError(path, scan.problems, scan.counts)
    return _parsed(path, scan)


def _parsed(path: Path, scan: _Scan) -> ParsedRun:
    target = scan.target
    hits = {q: [(d, s) for s, d in sorted(heap, reverse=True)] for q, heap in scan.heaps.items() if heap}
    known = target.positions
    unknown_docs = sum(1 for ranked in hits.values() for d, _ in ranked if d not in known)
    counted = scan.finish()
    cut = [n for n in counted.values() if n > target.depth]
    return ParsedRun(path=path, format=scan.format, sha256=scan.digest.hexdigest(), lines=scan.lines, hits=hits,
                     depth=target.depth, cut_queries=len(cut), deepest=max(counted.values(), default=0),
                     unknown_qids=len(scan.unknown), unknown_qid_lines=scan.unknown_lines,
                     unknown_qid_examples=[q[:40] for q in list(scan.unknown)[:EXAMPLES]],
                     unknown_doc_lines=unknown_docs, identical_dropped=len(scan.identical),
                     interleaved=scan.keep_all)


@dataclass
class ImportedRun:
    """A run file made into the workspace's rows: its runs and per-query metrics (every query of the dataset it
    ranks, pilot and evaluated), and the manifest's record of where it came from and what was left out."""

    name: str
    dataset: str
    runs: pd.DataFrame  # system, row, rank (trec_eval's order), doc (corpus position, -1: not in the corpus), score
    metrics: pd.DataFrame  # system, row, one column per measure
    record: dict


def import_run(name: str, path: str | Path, target: RunTarget, queries: pd.DataFrame,
               qrels: Mapping[str, Mapping[str, Mapping[str, int]]], measures: Sequence[str], fmt: str = "auto",
               candidate: bool = False, source: str = "build") -> ImportedRun:
    """Read `path` against `target` and score it: `queries` are the dataset's rows (row, qid, role), `qrels` its
    judgements by role. Scores are kept as the file wrote them (float64), so the stored order is the file's."""
    from .evaluation import per_query

    parsed = read_run(path, target, fmt)
    positions = target.positions
    metrics, missing = [], {}
    for role, group in queries.groupby("role", sort=False):
        qids = group["qid"].tolist()
        run = {q: dict(parsed.hits[q]) for q in qids if q in parsed.hits}
        missing[role] = len(qids) - len(run)
        values = per_query(qrels.get(role, {}), run, measures, qids).reindex(qids).fillna(0.0)
        metrics.append(pd.DataFrame({"system": name, "row": group["row"].to_numpy(),
                                     **{m: values[m].to_numpy() for m in measures}}))
    ranked = [(int(row), parsed.hits.get(qid, [])) for row, qid in zip(queries["row"], queries["qid"])]
    runs = pd.DataFrame({
        "system": name, "row": np.repeat([r for r, _ in ranked], [len(h) for _, h in ranked]).astype(np.int64),
        "rank": np.concatenate([np.arange(1, len(h) + 1) for _, h in ranked] or [[]]).astype(np.int32),
        "doc": np.array([positions.get(d, -1) for _, h in ranked for d, _ in h], dtype=np.int32),
        "score": np.array([s for _, h in ranked for _, s in h], dtype=np.float64)})
    record = {"name": name, "dataset": target.dataset, "file": str(Path(path)), "format": parsed.format,
              "sha256": parsed.sha256, "lines": parsed.lines, "queries": len(parsed.hits), "depth": target.depth,
              "cut_queries": parsed.cut_queries, "deepest": parsed.deepest, "unknown_qids": parsed.unknown_qids,
              "unknown_qid_lines": parsed.unknown_qid_lines, "unknown_doc_lines": parsed.unknown_doc_lines,
              "identical_dropped": parsed.identical_dropped, "candidate": candidate, "source": source,
              "warnings": parsed.warnings(target, missing)}
    return ImportedRun(name, target.dataset, runs, pd.concat(metrics, ignore_index=True), record)
