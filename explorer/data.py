"""BEIR-format loading and validation.

Every problem in a folder is collected and reported at once, each with its file, line and fix, so a user repairs
their data in one pass instead of one error per run. Corpora are read line by line into columnar lists, so a
100k-document corpus is held once, not as raw lines plus parsed objects plus a table.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message} (fix: {self.fix})"


class DataError(ValueError):
    """A BEIR folder could not be loaded; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem], datasets: int = 1):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        where = "the dataset" if datasets == 1 else f"{datasets} datasets"
        super().__init__(f"{len(problems)} problem(s) in {where}:\n{shown}{more}")


@dataclass
class Corpus:
    ids: list[str]
    titles: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def passages(self) -> list[str]:
        """Title and text joined as BEIR's dense models encode them."""
        return [f"{t} {x}".strip() if t else x for t, x in zip(self.titles, self.texts)]


@dataclass
class BeirDataset:
    name: str
    path: Path
    corpus: Corpus
    queries: dict[str, str]
    query_kinds: dict[str, str]
    qrels: dict[str, Qrels]
    warnings: list[Problem] = field(default_factory=list)
    content_hash: str = ""
    # qid -> {field: value as a string}: every string or number field of the query's `metadata` but `kind`
    query_metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    def split_queries(self, split: str) -> list[str]:
        """Query ids judged in `split`, in queries.jsonl order (BEIR keeps only judged queries)."""
        judged = self.qrels.get(split, {})
        return [q for q in self.queries if q in judged]


def path_kind(path: Path) -> str:
    """What is at `path`: "file", "folder", "missing", "loop" (a symbolic link loop), "broken link" or "special"
    (a device, pipe or socket), without following a loop or raising."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "loop"
        if os.path.islink(path):
            return "broken link"
        return "missing"
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "special"


NOT_A_FILE = {
    "folder": "is a folder, not a file",
    "loop": "is a symbolic link loop, not a file",
    "broken link": "is a symbolic link to nothing",
    "special": "is not a regular file (a device, pipe or socket)",
}
NOT_A_FOLDER = {
    "file": "is a file, not a folder",
    "loop": "is a symbolic link loop, not a folder",
    "broken link": "is a symbolic link to nothing, not a folder",
    "special": "is not a folder (a device, pipe or socket)",
    "missing": "not a folder (nothing is there)",
}


def _file_problem(path: Path, missing: str, fix: str) -> Problem | None:
    """A Problem when `path` is not a readable regular file (`missing` is the message for nothing there)."""
    kind = path_kind(path)
    if kind == "file":
        return None
    if kind == "missing":
        return Problem(path, None, missing, fix)
    return Problem(path, None, NOT_A_FILE[kind], f"replace it with the file itself ({fix})")


def _lines(path: Path, problems: list[Problem]):
    """Yield (line number, decoded text) for non-empty lines, reporting undecodable bytes per line.

    A UTF-8 byte order mark at the start of the file (as some editors write) is dropped."""
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    problems.append(Problem(path, number, f"bytes that are not UTF-8 ({err.reason} at byte "
                                            f"{err.start})", "re-save the file as UTF-8"))
                    continue
                if text.strip():
                    yield number, text
    except OSError as err:
        problems.append(Problem(path, None, f"cannot be read ({err.strerror or err})",
                                "check that the file exists and is readable"))


def _read_jsonl(path: Path, problems: list[Problem], required: tuple[str, ...]):
    seen: set[str] = set()
    for number, text in _lines(path, problems):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            problems.append(Problem(path, number, f"not valid JSON ({err.msg})", "write one JSON object per line"))
            continue
        except RecursionError:
            problems.append(Problem(path, number, "JSON nested too deeply to read",
                                    "write one flat JSON object per line"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(path, number, "a JSON value that is not an object", "write one JSON object per line"))
            continue
        missing = [k for k in required if k not in obj or obj[k] is None]
        if missing:
            problems.append(Problem(path, number, f"missing field(s) {', '.join(missing)}",
                                    f"give every line the fields {', '.join(required)}"))
            continue
        key = str(obj["_id"])
        if key in seen:
            problems.append(Problem(path, number, f"duplicate _id {key!r}", "make every _id unique"))
            continue
        seen.add(key)
        yield number, key, obj


def _read_qrels(path: Path, problems: list[Problem]) -> Qrels:
    qrels: Qrels = {}
    header_seen = False
    for number, text in _lines(path, problems):
        cols = text.rstrip("\r\n").split("\t")
        if not header_seen:
            header_seen = True
            if [c.strip() for c in cols] != ["query-id", "corpus-id", "score"]:
                problems.append(Problem(path, number, f"first line is {text.strip()!r}, not the header",
                                        "start the file with the line 'query-id<TAB>corpus-id<TAB>score'"))
                if len(cols) != 3:
                    return qrels
            else:
                continue
        if len(cols) != 3:
            problems.append(Problem(path, number, f"{len(cols)} tab-separated columns, expected 3",
                                    "write query-id, corpus-id and an integer score separated by tabs"))
            continue
        qid, did, grade = (c.strip() for c in cols)
        try:
            value = int(grade)
        except ValueError:
            problems.append(Problem(path, number, f"grade {grade!r} is not an integer",
                                    "use integer relevance grades such as 0, 1, 2"))
            continue
        if value < 0:
            problems.append(Problem(path, number, f"grade {value} is negative",
                                    "use relevance grades of 0 or more (0 = judged not relevant)"))
            continue
        qrels.setdefault(qid, {})[did] = value
    return qrels


def file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_beir(path: str | Path, name: str | None = None, splits: tuple[str, ...] | None = None) -> BeirDataset:
    """Load and validate a BEIR folder; raise DataError listing every problem found.

    `splits=None` loads every qrels/*.tsv present; a named split that is missing is an error.
    """
    root = Path(path)
    root_kind = path_kind(root)
    if root_kind != "folder":
        raise DataError([Problem(root, None, NOT_A_FOLDER[root_kind], "point to a BEIR folder with corpus.jsonl, "
                                 "queries.jsonl and qrels/<split>.tsv")])
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    problems = [p for p in (_file_problem(f, "file is missing", f"add {f.name} to {root}")
                            for f in (corpus_path, queries_path)) if p]
    split_files = _split_files(root / "qrels", splits, problems)
    if problems:
        raise DataError(problems)
    corpus = _read_corpus(corpus_path, problems)
    queries, kinds, metadata, warnings = _read_queries(queries_path, problems)
    qrels = {split: _read_qrels(p, problems) for split, p in split_files.items()}
    if problems:
        raise DataError(problems)
    warnings += _drop_unknown_judgements(qrels, split_files, queries, set(corpus.ids))
    return BeirDataset(
        name=name or root.name, path=root, corpus=corpus, queries=queries,
        query_kinds=kinds, qrels=qrels, warnings=warnings,
        content_hash=file_hash([corpus_path, queries_path, *split_files.values()]), query_metadata=metadata,
    )


def _split_files(qrels_dir: Path, splits: tuple[str, ...] | None, problems: list[Problem]) -> dict[str, Path]:
    """The qrels file of every split asked for (None: every qrels/*.tsv present); what is missing goes into
    `problems`."""
    qrels_kind = path_kind(qrels_dir)
    if qrels_kind not in ("folder", "missing"):
        problems.append(Problem(qrels_dir, None, NOT_A_FOLDER[qrels_kind],
                                "make qrels a folder holding <split>.tsv files"))
        return {}
    if splits is None:
        split_files = {p.stem: p for p in sorted(qrels_dir.glob("*.tsv"))} if qrels_kind == "folder" else {}
        if not split_files:
            problems.append(Problem(qrels_dir, None, "no qrels/<split>.tsv file",
                                    "add at least qrels/test.tsv with header query-id, corpus-id, score"))
        checks = [(p, "file is missing", "write the split's judgements as a tab-separated file")
                  for p in split_files.values()]
    else:
        split_files = {s: qrels_dir / f"{s}.tsv" for s in splits}
        checks = [(p, f"qrels for split {s!r} are missing", f"add qrels/{s}.tsv or remove the split from the config")
                  for s, p in split_files.items()]
    problems += [p for p in (_file_problem(*c) for c in checks) if p]
    return split_files


def _read_corpus(corpus_path: Path, problems: list[Problem]) -> Corpus:
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    for _, key, obj in _read_jsonl(corpus_path, problems, ("_id", "text")):
        ids.append(key)
        titles.append(str(obj.get("title") or ""))
        texts.append(str(obj["text"]))
    if not ids and not any(p.file == corpus_path for p in problems):
        problems.append(Problem(corpus_path, None, "the corpus is empty", "add at least one document"))
    return Corpus(ids, titles, texts)


def _read_queries(queries_path: Path, problems: list[Problem]):
    """(texts, kinds, metadata fields, one warning per metadata field left out) of every query line."""
    queries: dict[str, str] = {}
    kinds: dict[str, str] = {}
    metadata: dict[str, dict[str, str]] = {}
    metadata_fields: dict[str, None] = {}  # kept fields, in order of first appearance
    warnings_meta: dict[str, Problem] = {}  # one warning per field left out
    for number, key, obj in _read_jsonl(queries_path, problems, ("_id", "text")):
        text = str(obj["text"])
        if not text.strip():
            problems.append(Problem(queries_path, number, f"query {key!r} has an empty text",
                                    "give every query its text, or remove the line"))
            continue
        queries[key] = text
        meta = obj.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("kind"), str):
            kinds[key] = meta["kind"]
        if isinstance(meta, dict):
            fields = _metadata_fields(meta, key, number, queries_path, metadata_fields, warnings_meta)
            if fields:
                metadata[key] = fields
    if not queries and not any(p.file == queries_path for p in problems):
        problems.append(Problem(queries_path, None, "no queries (the file has no query lines)",
                                "add at least one query line with _id and text"))
    return queries, kinds, metadata, list(warnings_meta.values())


def _drop_unknown_judgements(qrels: dict, split_files: dict[str, Path], queries: dict, doc_set: set) -> list[Problem]:
    """Judged queries that are not in queries.jsonl are left out (warned); judged documents not in the corpus
    stay (they count as relevant but cannot be retrieved, as in BEIR), warned too."""
    warnings: list[Problem] = []
    for split, table in qrels.items():
        unknown_q = [q for q in table if q not in queries]
        unknown_d = sum(1 for q, docs in table.items() if q in queries for d in docs if d not in doc_set)
        if unknown_q:
            warnings.append(Problem(split_files[split], None,
                                    f"{len(unknown_q)} judged query id(s) not in queries.jsonl "
                                    f"(e.g. {unknown_q[0]!r}); they are left out",
                                    "add those queries or remove their rows"))
            for q in unknown_q:
                del table[q]
        if unknown_d:
            warnings.append(Problem(split_files[split], None,
                                    f"{unknown_d} qrels row(s) name documents not in corpus.jsonl; they count as "
                                    "relevant but cannot be retrieved (BEIR does the same)",
                                    "add those documents or remove their rows"))
    return warnings


MAX_METADATA_FIELDS = 32
METADATA_VALUE_LIMIT = 200


def metadata_field_problem(name: object) -> str | None:
    """Why `name` cannot be a query metadata field (it becomes the `meta:<name>` column of queries.parquet, a URL
    parameter and a label), or None: the dataset/expert name rule (letters, digits, '-', '_')."""
    from .names import NAME, NAME_RULE

    if not isinstance(name, str) or not NAME.fullmatch(name):
        return f"a field name is {NAME_RULE}"
    return None


def metadata_value(value: object) -> str | None:
    """A metadata value as the string the workspace stores, or None when it is not a string or a finite number
    (lists, objects, booleans and null are not slicing values)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value[:METADATA_VALUE_LIMIT]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else None
    return None


def _metadata_fields(meta: dict, qid: str, line: int, path: Path, kept: dict[str, None],
                     left_out: dict[str, Problem]) -> dict[str, str]:
    """The query's metadata fields other than `kind`, values as strings; a field whose name breaks the name rule,
    or beyond the first MAX_METADATA_FIELDS fields of the file, is left out with one warning per field."""
    out = {}
    for name, value in meta.items():
        if name == "kind" or name in left_out:
            continue
        text = metadata_value(value)
        if text is None:
            continue
        if name not in kept:
            problem = metadata_field_problem(name)
            if problem is None and len(kept) >= MAX_METADATA_FIELDS:
                problem = f"the file has more than {MAX_METADATA_FIELDS} metadata fields"
            if problem:
                shown = name if len(name) <= 40 else name[:37] + "..."
                left_out[name] = Problem(path, line, f"metadata field {shown!r} (first in query {qid!r}) is left "
                                         f"out: {problem}", "rename the field (letters, digits, '-', '_'), or drop it")
                continue
            kept[name] = None
        out[name] = text
    return out


JUDGED_TRAIN, JUDGED_TEST = "judged-train", "judged-test"  # the two parts of a judged split, as qrels splits


def split_judged(ds: BeirDataset, split: str, share: float, seed: int, train_name: str, test_name: str) -> None:
    """Divide the judged queries of `split` in two (seeded): `share` of them become the qrels split `train_name`
    (training and pilot queries), the rest `test_name` (evaluated), as small-collection studies cross-validate."""
    import random

    qids = ds.split_queries(split)
    picked = set(random.Random(seed).sample(qids, int(round(share * len(qids)))))
    judged = ds.qrels[split]
    ds.qrels[train_name] = {q: judged[q] for q in qids if q in picked}
    ds.qrels[test_name] = {q: judged[q] for q in qids if q not in picked}
