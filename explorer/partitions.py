"""Per-query tables stored as hive-partitioned Parquet folders (workspace format 2), so a page reads the partitions
it shows and not the whole table: `<table>/<key>=<value>/<key>=<value>/part-0.parquet`.

Values are percent-encoded (system names hold `:` and `/`), which is pyarrow's "uri" segment encoding: pyarrow.dataset,
DuckDB or Spark open such a folder as one table with hive partitioning. Reading never lets the folder decide what is
read: every level is listed here, each entry must be a real folder (no link) named `<key>=<value>` whose value is one
of the names the manifest declares, and each leaf holds real `.parquet` files only; pyarrow then reads that explicit
list of files, with the row filters pushed down.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import quote, unquote

import pandas as pd

from .data import NOT_A_FILE, NOT_A_FOLDER, path_kind

PART_FILE = "part-0.parquet"


class PartitionError(ValueError):
    """A partitioned table's folder is not what the format says; the message names the path."""


def partition_dir(folder: Path, keys: Sequence[str], values: Sequence[str]) -> Path:
    """The folder of one partition (values percent-encoded, so no value can name another folder)."""
    return Path(folder).joinpath(*(f"{k}={quote(str(v), safe='')}" for k, v in zip(keys, values)))


def write_partitioned(folder: Path, frame: pd.DataFrame, keys: Sequence[str], save) -> None:
    """One Parquet file per distinct value of `keys` (in order of first appearance), without the key columns:
    the folder names carry them. `save(path, frame)` writes one file (the workspace's atomic table writer)."""
    keys = list(keys)
    for values, part in frame.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        save(partition_dir(folder, keys, values) / PART_FILE, part.drop(columns=keys).reset_index(drop=True))


def _level(folder: Path, key: str, allowed: Sequence[str]) -> list[tuple[str, Path]]:
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # a hidden file (an editor's or a file manager's) is not a partition
        kind = path_kind(entry)
        if entry.is_symlink() or kind != "folder":
            why = NOT_A_FOLDER.get(kind, "is a symbolic link") if kind != "folder" else "is a symbolic link"
            raise PartitionError(f"{entry}: {why}; a partition is a {key}=<value> folder")
        name, sep, value = entry.name.partition("=")
        value = unquote(value)
        if not sep or name != key or value not in allowed:
            raise PartitionError(f"{entry}: not a partition of this table (expected {key}=<one of the manifest's "
                                 f"names>)")
        out.append((value, entry))
    return out


def partitions(folder: Path, keys: Sequence[str], allowed: Mapping[str, Sequence[str]],
               where: Mapping[str, Sequence[str]] | None = None) -> list[tuple[tuple[str, ...], list[Path]]]:
    """Every partition of the table in `folder` as (its key values, its Parquet files), pruned to `where` (key ->
    the values wanted) before any file is opened."""
    where = where or {}
    found: list[tuple[tuple[str, ...], Path]] = [((), Path(folder))]
    for key in keys:
        wanted = set(where[key]) if key in where else None
        found = [(values + (v,), sub) for values, path in found for v, sub in _level(path, key, allowed[key])
                 if wanted is None or v in wanted]
    out = []
    for values, path in found:
        files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        if not files:
            raise PartitionError(f"{path}: an empty partition (it holds no .parquet file)")
        for f in files:
            kind = path_kind(f)
            if f.is_symlink() or kind != "file" or f.suffix != ".parquet":
                why = NOT_A_FILE.get(kind, "is a symbolic link" if f.is_symlink() else "is not a .parquet file")
                raise PartitionError(f"{f}: {why}; a partition holds plain .parquet files only")
        out.append((values, files))
    return out


def _missing(folder: Path, keys: Sequence[str], allowed: Mapping[str, Sequence[str]],
             where: Mapping[str, Sequence[str]], found: list, needed: Callable[[tuple[str, ...]], bool]) -> None:
    """Every partition the request covers and `needed` says must exist is there: a missing one would silently
    leave its rows out of every average."""
    present = {values for values, _ in found}
    levels = [[v for v in allowed[k] if k not in where or v in set(where[k])] for k in keys]
    for values in itertools.product(*levels):
        if values not in present and needed(values):
            raise PartitionError(f"{partition_dir(folder, keys, values)}: is missing (the manifest names its "
                                 f"{' and '.join(keys)})")


def read_partitioned(folder: Path, keys: Sequence[str], allowed: Mapping[str, Sequence[str]],
                     where: Mapping[str, Sequence[str]] | None = None, filters: list | None = None,
                     required: Sequence[str] = (), check: Callable[[tuple[str, ...], Path], None] | None = None,
                     needed: Callable[[tuple[str, ...]], bool] | None = None) -> pd.DataFrame:
    """The rows of the partitions in `where` that pass `filters` (DNF, as pandas.read_parquet takes them), with the
    key columns first, partitions in the order of `allowed` (the manifest's), rows in stored order (an empty result
    has the `required` columns). Every partition
    that `needed` says must exist is there, and every file passes `check(values, path)` (its own footer and rows:
    pyarrow would take the first file's schema for all of them and fill a missing column with nulls) before any
    row is read."""
    import pyarrow as pa
    import pyarrow.dataset as pds
    import pyarrow.parquet as pq

    rank = {k: {v: i for i, v in enumerate(allowed[k])} for k in keys}
    found = sorted(partitions(folder, keys, allowed, where),
                   key=lambda p: tuple(rank[k][v] for k, v in zip(keys, p[0])))
    if needed is not None:
        _missing(folder, keys, allowed, where or {}, found, needed)
    for values, fs in found if check is not None else ():
        for f in fs:
            check(values, f)
    if not found:
        return pd.DataFrame(columns=list(dict.fromkeys([*keys, *required])))
    schema = pa.schema([(k, pa.string()) for k in keys])
    files = [str(f) for _, fs in found for f in fs]
    # one schema for every file, promoted where partitions differ (a run read from a file keeps float64 scores
    # beside the encoders' float32): pyarrow would otherwise cast every file to the first one's types
    try:
        columns = pa.unify_schemas([pq.read_schema(f).remove_metadata() for f in files], promote_options="permissive")
    except (pa.ArrowException, ValueError, OSError) as err:
        raise PartitionError(f"{folder}: its partitions hold columns of types that do not agree ({err})") from err
    data = pds.dataset(files, format="parquet", partition_base_dir=str(folder),
                       schema=pa.unify_schemas([columns, schema]),
                       partitioning=pds.HivePartitioning(schema, segment_encoding="uri"))
    table = data.to_table(filter=pq.filters_to_expression(filters) if filters else None)
    frame = table.to_pandas()
    return frame[list(keys) + [c for c in frame.columns if c not in keys]]
