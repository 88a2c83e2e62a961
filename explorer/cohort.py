"""Cohorts: a named set of evaluated queries (rows), kept in a link, usable as a filter on every page, exported.

A cohort's rows travel in the URL as compact text, whichever of two forms is shorter:

- `r.<ranges>`: sorted row ranges joined by `_`, e.g. `r.3-9_12_40-41`;
- `b.<base64>`: the rows as a bitset over the workspace's queries (bit i = row i, least significant bit first),
  zlib-compressed and written in URL-safe base64 without padding.

Both are read as untrusted input: only these characters, at most MAX_CHARS of them, rows that exist and are
evaluated queries, a bitset no longer than the workspace's queries (decompressed with that bound, so a small link
cannot expand into a large one). The name is plain text of at most MAX_NAME characters, shown escaped.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zlib
from typing import Iterable

import numpy as np
import pandas as pd

from .workspace import Workspace

MAX_CHARS = 4000  # the longest cohort text a link may carry
MAX_NAME = 60
COHORT_FIELD = "@cohort"  # a slice by cohort: (COHORT_FIELD, its text); no metadata field can take this name
DEFAULT_NAME = "selection"
_RANGES = re.compile(r"[0-9]+(-[0-9]+)?(_[0-9]+(-[0-9]+)?)*")
_BASE64 = re.compile(r"[A-Za-z0-9_-]*")


class CohortError(ValueError):
    """A cohort text that cannot be read: the message says why and how to fix it."""


def _ranges(rows: np.ndarray) -> str:
    if not len(rows):
        return ""
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]]
    return "_".join(str(s) if s == e else f"{s}-{e}" for s, e in zip(starts, ends))


def _bitset(rows: np.ndarray, n_rows: int) -> str:
    bits = np.zeros(n_rows, dtype=bool)
    bits[rows] = True
    packed = np.packbits(bits, bitorder="little").tobytes()
    return base64.urlsafe_b64encode(zlib.compress(packed, 9)).decode("ascii").rstrip("=")


def encode(rows: Iterable[int], n_rows: int) -> str:
    """The shorter text of `rows` (positions among `n_rows` queries); CohortError when it exceeds MAX_CHARS."""
    rows = np.unique(np.fromiter((int(r) for r in rows), dtype=np.int64))
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_rows):
        raise CohortError(f"a cohort holds rows 0–{n_rows - 1} of this workspace, not {int(rows[-1])}")
    text = min(f"r.{_ranges(rows)}", f"b.{_bitset(rows, n_rows)}", key=len)
    if len(text) > MAX_CHARS:
        raise CohortError(f"these {len(rows):,} queries need {len(text):,} characters in a link, more than the "
                          f"{MAX_CHARS:,} it may carry (fix: select fewer queries, or a box rather than scattered "
                          "points)")
    return text


def decode(text: str, n_rows: int) -> np.ndarray:
    """The sorted rows a cohort text names (CohortError for anything else, with why and the fix)."""
    text = str(text).strip()
    if len(text) > MAX_CHARS:
        raise CohortError(f"the cohort in the link is {len(text):,} characters long; at most {MAX_CHARS:,} are read")
    scheme, _, body = text.partition(".")
    if scheme == "r" and (body == "" or _RANGES.fullmatch(body)):
        rows = _read_ranges(body, n_rows)
    elif scheme == "b" and _BASE64.fullmatch(body):
        rows = _read_bitset(body, n_rows)
    else:
        raise CohortError("the cohort in the link is neither 'r.<ranges>' nor 'b.<bitset>' (fix: select the "
                          "queries again on the Routing map and save them as a cohort)")
    return rows


def _read_ranges(body: str, n_rows: int) -> np.ndarray:
    parts = []
    for item in filter(None, body.split("_")):
        start, _, end = item.partition("-")
        lo, hi = int(start), int(end or start)
        if lo > hi or hi >= n_rows:
            raise CohortError(f"the cohort names rows {lo}–{hi}; this workspace has rows 0–{n_rows - 1}")
        parts.append(np.arange(lo, hi + 1))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _read_bitset(body: str, n_rows: int) -> np.ndarray:
    size = -(-n_rows // 8)
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, size + 1)
    except (binascii.Error, ValueError, zlib.error) as err:
        raise CohortError(f"the cohort's bitset cannot be read ({err})") from err
    if len(raw) != size or not inflate.eof or inflate.unconsumed_tail:
        raise CohortError(f"the cohort's bitset is not one of {n_rows} queries (a link from another workspace?)")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n_rows:].any():
        raise CohortError(f"the cohort's bitset names rows past the last one of this workspace ({n_rows - 1})")
    return np.flatnonzero(bits[:n_rows]).astype(np.int64)


def clean_name(name: str | None) -> str:
    """A cohort's name as plain text: printable characters, spaces collapsed, at most MAX_NAME long."""
    text = " ".join("".join(c for c in str(name or "") if c.isprintable()).split())[:MAX_NAME]
    return text or DEFAULT_NAME


def cohort_rows(ws: Workspace, text: str) -> np.ndarray:
    """The evaluated rows of a cohort text on this workspace; CohortError when it names a pilot (training) query,
    which has no evaluated scores, or nothing."""
    rows = decode(text, len(ws.queries))
    roles = ws.queries["role"].to_numpy()[rows]
    if (roles != "eval").any():
        raise CohortError(f"the cohort names {int((roles != 'eval').sum())} pilot (training) queries; a cohort holds "
                          "test queries only (fix: save the selection again)")
    if not len(rows):
        raise CohortError("the cohort is empty (fix: select at least one test query)")
    return rows


def cohort_queries(ws: Workspace, rows: Iterable[int]) -> pd.DataFrame:
    """The cohort's queries: row, dataset, qid, text (its qids export)."""
    q = ws.queries.set_index("row").loc[sorted({int(r) for r in rows}), ["dataset", "qid", "text"]]
    return q.reset_index()


def cohort_matrix(ws: Workspace, rows: Iterable[int], measure: str | None = None) -> pd.DataFrame:
    """Per query of the cohort x strategy: its `measure` score (a fraction), with row, dataset and qid first."""
    measure = ws.measure(measure)
    keep = sorted({int(r) for r in rows})
    sm = ws.strategy_metric_rows(None, keep)
    wide = sm.pivot(index="row", columns="strategy", values=measure).reindex(index=keep, columns=ws.strategies)
    q = ws.queries.set_index("row").loc[keep, ["dataset", "qid"]]
    out = q.join(wide)
    out.index.name = "row"
    out.columns.name = None
    return out.reset_index()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
