"""What the readers rely on in a per-query table file (a partition, or a format-1 table), checked before any of its
rows is used, once per file per process.

A damaged or forged table changed scores silently: duplicate rows counted twice (67.8 -> 83.9), a doc of -1 showed
the corpus's last document at rank 1, a missing query averaged over fewer. So every file is checked for: its
columns and their types (integers, floats, strings: a TypeError never reaches a page), its size (no row group above
MAX_GROUP_ROWS, no more rows than the workspace can hold: reads stay bounded), and its rows, read a row group at a
time, key columns only: rows of the file's dataset (every one of them exactly once where the table has one value per
query), ranks 1..depth once per query, documents inside the corpus, decisions naming an encoder. A verdict is kept
per file (path, size, mtime, inode) and what it was checked against, so a warm page reads no table twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_GROUP_ROWS = 1 << 20  # the largest row group a reader accepts (the build writes runs in groups of 100,000)
INTEGER, FLOAT, STRING, BOOLEAN = "integer", "float", "string", "boolean"
KEY_TYPES = {"row": INTEGER, "rank": INTEGER, "doc": INTEGER, "chosen": STRING, "strategy": STRING,
             "system": STRING, "pilot": INTEGER, "ref": INTEGER, "size": INTEGER, "grade": INTEGER, "n": INTEGER,
             "resamples": INTEGER, "significant": BOOLEAN}
STRING_COLUMNS = ("qid", "dataset", "role", "text", "kind", "doc_id", "title", "expert", "label", "method", "item",
                  "measure", "reference")


class TableError(ValueError):
    """A table file the readers cannot rely on; the message names the file and what is wrong."""


def column_type(column: str) -> str:
    """The type a column must have: its declared one, a string for the text columns (and `meta:` fields), a float
    for every measure, margin, score and weight."""
    if column in KEY_TYPES:
        return KEY_TYPES[column]
    if column in STRING_COLUMNS or column.startswith("meta:"):
        return STRING
    return FLOAT


def _type_of(arrow_type) -> str | None:
    import pyarrow.types as t

    if t.is_integer(arrow_type):
        return INTEGER
    if t.is_floating(arrow_type):
        return FLOAT
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return STRING
    if t.is_boolean(arrow_type):
        return BOOLEAN
    if t.is_dictionary(arrow_type):
        return _type_of(arrow_type.value_type)
    return None


def check_columns(path: Path, schema, columns, rows: int) -> None:
    """Every column of `columns` is in `schema` with its type (column_type); integers may stand for floats, and an
    empty table's columns may be of any type (there is no value to misread)."""
    names = schema.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise TableError(f"{path}: no column(s) {', '.join(map(repr, missing))}")
    for c in columns if rows else ():
        arrow = schema.field(c).type
        found, wanted = _type_of(arrow), column_type(c)
        if found != wanted and not (wanted == FLOAT and found == INTEGER):
            raise TableError(f"{path}: column {c!r} holds {arrow}, expected {wanted}s")


def unreadable(path: Path, err: Exception) -> TableError:
    reason = str(err).replace(f" '{path}'", "").replace(str(path), "the file")[:200]
    return TableError(f"{path}: not a readable Parquet table ({reason})")


def check_footer(path: Path, columns, max_rows: int | None = None):
    """The file's footer, before any row is read: its columns and their types, no row group above MAX_GROUP_ROWS
    and at most `max_rows` rows (reads stay bounded). Returns the open pyarrow ParquetFile."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except (ValueError, OSError, pyarrow.ArrowException) as err:
        raise unreadable(path, err) from err
    meta = f.metadata
    check_columns(path, f.schema_arrow, columns, meta.num_rows)
    big = max((meta.row_group(i).num_rows for i in range(meta.num_row_groups)), default=0)
    if big > MAX_GROUP_ROWS:
        raise TableError(f"{path}: a row group of {big:,} rows, above the {MAX_GROUP_ROWS:,} a reader accepts")
    if max_rows is not None and meta.num_rows > max_rows:
        raise TableError(f"{path}: {meta.num_rows:,} rows, more than the {max_rows:,} this workspace's queries "
                         "can have")
    return f


@dataclass(frozen=True)
class RowRules:
    """What one file's rows must be: `rows` the query rows it may hold (sorted); in a partition, `exact`: each of
    them exactly once (a table of one value per query), `covered`: each at least once (every query has a run);
    `depth`: ranks 1..depth, unique per row (runs); `n_docs`: per query row, the corpus size of its dataset (runs:
    doc in 0..n-1, or -1 where `unknown_docs`: a run read from a file keeps a document its corpus lacks); `choices`: the values `chosen` may take (decisions); `key`: the system or strategy column of a
    format-1 table (None in a partition); `keys`: how many key values the file may hold."""

    rows: np.ndarray
    exact: bool = False
    covered: bool = False
    depth: int | None = None
    n_docs: np.ndarray | None = None
    unknown_docs: bool = False
    choices: tuple[str, ...] | None = None
    key: str | None = None
    keys: int = 1

    def max_rows(self) -> int:
        return len(self.rows) * self.keys * (self.depth or 1)


def _read_groups(path: Path, columns: list[str], rules: RowRules):
    """The file's key columns, one row group at a time, after its footer is checked: sizes, columns and types."""
    f = check_footer(path, columns, rules.max_rows())
    meta = f.metadata
    if rules.exact and meta.num_rows != rules.max_rows():
        raise TableError(f"{path}: {meta.num_rows:,} rows for {rules.max_rows():,} queries")
    import pyarrow

    for i in range(meta.num_row_groups):
        try:
            group = f.read_row_group(i, columns=columns)
        except (ValueError, OSError, pyarrow.ArrowException) as err:
            raise unreadable(path, err) from err
        yield group.to_pandas()


def _check_group(path: Path, frame, rules: RowRules) -> None:
    rows = frame["row"].to_numpy()
    at = np.minimum(np.searchsorted(rules.rows, rows), max(len(rules.rows) - 1, 0))
    ok = rules.rows[at] == rows if len(rules.rows) else np.zeros(len(rows), bool)
    if not ok.all():
        raise TableError(f"{path}: row {int(rows[~ok][0])} is not one of this table's queries")
    if rules.depth is not None:
        rank = frame["rank"].to_numpy()
        if len(rank) and (rank.min() < 1 or rank.max() > rules.depth):
            raise TableError(f"{path}: a rank outside 1..{rules.depth}")
    if rules.n_docs is not None:
        doc = frame["doc"].to_numpy()
        bad = (doc < (-1 if rules.unknown_docs else 0)) | (doc >= rules.n_docs[rows])
        if bad.any():
            raise TableError(f"{path}: document {int(doc[bad][0])} is outside its corpus")
    if rules.choices is not None:
        bad = ~frame["chosen"].isin(rules.choices)
        if bad.any():
            raise TableError(f"{path}: a decision chose {str(frame['chosen'][bad].iloc[0])[:60]!r}, which is not "
                             "an encoder of the manifest")


def _codes(frame, rules: RowRules, key_codes: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the file, one integer per (key value, query) and one per (key value, query, rank): a repeated
    second one is a duplicate row."""
    query = frame["row"].to_numpy().astype(np.int64)
    if rules.key is not None:
        span = int(rules.rows[-1]) + 1 if len(rules.rows) else 1
        query = query + span * np.array([key_codes.setdefault(v, len(key_codes)) for v in frame[rules.key]],
                                        dtype=np.int64)
    full = query * (rules.depth + 1) + frame["rank"].to_numpy() if rules.depth is not None else query
    return query, full


def check_rows(path: Path, rules: RowRules, columns: list[str]) -> None:
    """Read the file's key columns a row group at a time and check them against `rules`; TableError naming it.
    `columns` are every column the readers use (checked for presence and type from the footer)."""
    keyed = ["row"] + (["rank", "doc"] if rules.depth is not None else []) + \
        (["chosen"] if rules.choices is not None else []) + ([rules.key] if rules.key else [])
    queries, fulls, key_codes = [], [], {}
    for frame in _read_groups(path, list(dict.fromkeys([*columns, *keyed])), rules):
        _check_group(path, frame, rules)
        query, full = _codes(frame, rules, key_codes)
        queries.append(np.unique(query))
        fulls.append(full)
    every = np.concatenate(fulls) if fulls else np.zeros(0, np.int64)
    if len(np.unique(every)) != len(every):
        raise TableError(f"{path}: duplicate rows (a query listed twice{' at one rank' if rules.depth else ''})")
    if rules.exact or rules.covered:
        seen = len(np.unique(np.concatenate(queries))) if queries else 0
        if seen != len(rules.rows):
            raise TableError(f"{path}: holds {seen:,} of its dataset's {len(rules.rows):,} queries")


_VERDICTS: set[tuple] = set()


def stamp(path: Path) -> tuple:
    """What identifies a file's current content without reading it."""
    s = os.stat(path)
    return (os.path.realpath(path), s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev)


def checked(path: Path, context: tuple, check) -> None:
    """Run `check()` unless this file, unchanged, already passed it against the same `context`."""
    key = (stamp(path), context)
    if key not in _VERDICTS:
        check()
        _VERDICTS.add(key)
