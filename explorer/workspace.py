"""The workspace on disk: written atomically by the build, read lazily by the CLI and the app.

Layout and columns are documented in docs/workspace.md. Tables are Parquet, vectors `.npy` read with
`allow_pickle=False`, adapters peft folders, indexes faiss files; nothing is ever unpickled.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from . import WORKSPACE_FORMAT_VERSION
from .base_model import PRECISIONS
from .data import NOT_A_FILE, NOT_A_FOLDER, path_kind
from .evaluation import default_label_measure
from .fusion import NORMS
from .files import copy_file, copy_tree
from .names import SystemName, name_problem, strategy_name_problem

REBUILD = "rebuild the workspace with `explorer build CONFIG --out DIR`"
# manifest layout.umap while the build still computes the UMAP layout of a workspace it has already written
UMAP_PENDING = "pending"


class WorkspaceError(ValueError):
    pass


# --- processes that own temporary folders --------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a process of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    return True


def process_running(pid: int) -> bool:
    """Whether process `pid` still runs and is not a zombie: one that has exited (killed, say) but whose parent has
    not reaped it yet (e.g. a builder `make run` started, whose parent shell waits on the server) does no work."""
    if not pid_alive(pid):
        return False
    try:
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, from /proc), or None where that cannot be read."""
    try:
        ticks = int(Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _stale(entry: Path, prefix: str) -> bool:
    """Whether `entry`, named `<prefix><pid>[-...]`, belongs to a process that is gone (or to this one: a folder
    of our own pid left over from an earlier process that had it). A name without a pid is not ours to judge."""
    pid = entry.name[len(prefix):].split("-", 1)[0].split(".", 1)[0]
    if not pid.isdigit():
        return False
    return int(pid) == os.getpid() or not pid_alive(int(pid))


def _starting(parent: Path, prefix: str) -> list[Path]:
    """Entries of `parent` whose name starts with `prefix` (no glob: a name may hold '[' or '*')."""
    try:
        return [parent / name for name in os.listdir(parent) if name.startswith(prefix)]
    except FileNotFoundError:
        return []


def remove_stale(parent: Path, prefix: str) -> None:
    """Delete the entries `<prefix><pid>...` of `parent` whose process is gone; a live build's are left alone."""
    for entry in _starting(Path(parent), prefix):
        if _stale(entry, prefix):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# --- writing -------------------------------------------------------------------------------------------------
def inside(root: Path, *parts: str, what: str = "workspace") -> Path:
    """`root / parts...`, refused (WorkspaceError) when its resolved path leaves `root`: a name with '..' or '/', an
    absolute name, or a symbolic link pointing out. Every join of a name to a workspace path goes through here."""
    path = Path(root).joinpath(*parts)
    try:
        real_root, real = os.path.realpath(root), os.path.realpath(path)
    except (ValueError, OSError) as err:  # an embedded NUL byte
        raise WorkspaceError(f"{root}: the name {'/'.join(map(str, parts))!r} cannot be a path ({err}) "
                             f"(fix: use names of letters, digits, '-' and '_')") from err
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise WorkspaceError(f"{path}: leads outside the {what} folder {root} (fix: use names of letters, digits, "
                             f"'-' and '_', and no symbolic links that point out of the {what})")
    return path


_WRITES = itertools.count()


def atomic_write(path: Path, writer: Callable[[Path], Any]) -> Path:
    """Write a file all at once: `writer(tmp)` writes a temporary sibling (same suffix, so numpy keeps the name),
    which then replaces `path`. A failed or killed write never leaves a half-written `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.stem}.tmp-"
    remove_stale(path.parent, prefix)
    tmp = path.with_name(f"{prefix}{os.getpid()}-{next(_WRITES)}{path.suffix}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_output(out: Path) -> None:
    """Refuse an output path a build must not replace: anything but a folder, or a folder that is not a workspace
    (no manifest.json) and not empty, such as a home folder given as --out by mistake."""
    out = Path(out)
    kind = path_kind(out)
    if kind not in ("folder", "missing"):
        raise WorkspaceError(f"{out}: {NOT_A_FOLDER[kind]} (fix: remove it, or choose another --out)")
    if kind == "folder" and path_kind(out / "manifest.json") != "file" and any(os.scandir(out)):
        raise WorkspaceError(f"{out}: a folder that is not a workspace (no manifest.json), so a build will not "
                             f"replace it (fix: choose another --out, or empty the folder)")


READ_ONLY_FIX = "make it writable (chmod u+w; chattr -i where it is immutable), or choose another folder"


def writable_problem(folder: Path) -> str | None:
    """Why a build cannot write in `folder` (a folder it fills, or creates inside the nearest existing one above):
    read-only, or immutable (which os.access reports for root too), or not a folder; None when it can."""
    from .files import nearest_existing

    folder = Path(os.path.abspath(folder))
    here = nearest_existing(folder)
    if not here.is_dir():
        return f"is inside {here}, which is not a folder"
    if not os.access(here, os.W_OK | os.X_OK):
        return "is read-only" if here == folder else f"would be made inside {here}, which is read-only"
    return None


def check_writable(out: Path, cache: Path) -> None:
    """Before any work: the workspace's folder (it is replaced by a renamed sibling), the folder that holds it and
    the cache with its stage folders can all be written; WorkspaceError naming the first that cannot."""
    out = Path(os.path.abspath(out))
    places = [out.parent] + ([out] if out.is_dir() else [])
    places += [cache] + [p for p in (Path(cache) / s for s in CACHE_FOLDERS) if p.is_dir()]
    for place in places:
        problem = writable_problem(place)
        if problem:
            raise WorkspaceError(f"{place}: {problem}, so the build cannot write there (fix: {READ_ONLY_FIX})")


CACHE_FOLDERS = ("docs", "queries", "index", "layout", "experts")


@contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `out`, on failure or a kill `out` is untouched.

    Temporary folders of other builds are deleted only once their process is gone: a live build's is left alone."""
    check_output(Path(out))
    out = Path(os.path.realpath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    remove_stale(out.parent, f".{out.name}.tmp-")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
    except OSError as err:
        raise WorkspaceError(f"{out.parent}: cannot be written ({err.strerror or err}) (fix: {READ_ONLY_FIX})") from err
    try:
        yield tmp
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(tmp: Path, out: Path) -> None:
    """Rename the finished `tmp` over `out`; should a rename fail, `out` is put back as it was."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except OSError as err:
        if old.exists() and not out.exists():
            old.rename(out)
        raise WorkspaceError(f"{out}: cannot be replaced ({err.strerror or err}) (fix: {READ_ONLY_FIX})") from err
    shutil.rmtree(old, ignore_errors=True)


def recover_interrupted_swap(out: Path) -> None:
    """If a build died between its two renames, put the previous workspace back (never one a live build is
    swapping right now)."""
    if not out.exists():
        prefix = f".{out.name}.old-"
        olds = sorted((p for p in _starting(out.parent, prefix) if _stale(p, prefix)),
                      key=lambda p: p.stat().st_mtime)
        if olds:
            olds[-1].rename(out)


def save_array(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


RUN_ROW_GROUP = 100_000  # rows of runs.parquet per row group: a filtered read skips the groups that cannot match


def save_table(path: Path, frame: pd.DataFrame, row_group_size: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=row_group_size)


# --- reading -------------------------------------------------------------------------------------------------
def _not_a_file(path: Path) -> WorkspaceError | None:
    kind = path_kind(path)
    if kind == "file":
        return None
    what = "is missing" if kind == "missing" else NOT_A_FILE[kind]
    return WorkspaceError(f"{path}: {what} (fix: {REBUILD})")


def load_array(path: Path, mmap: bool = False, ndim: int | None = None) -> np.ndarray:
    """A `.npy` read without pickles; WorkspaceError naming the file when it is missing, truncated, holds objects
    (refused by allow_pickle=False) or is not a numeric array of `ndim` dimensions."""
    problem = _not_a_file(path)
    if problem:
        raise problem
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as err:
        raise WorkspaceError(f"{path}: not a readable .npy array ({err}) (fix: {REBUILD})") from err
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        getattr(array, "close", lambda: None)()
        raise WorkspaceError(f"{path}: not a .npy array (fix: {REBUILD})")
    if array.dtype.kind not in "biuf" or (ndim is not None and array.ndim != ndim):
        raise WorkspaceError(f"{path}: holds a {array.ndim}-D {array.dtype} array, expected {ndim or 'a'}-D numbers "
                             f"(fix: {REBUILD})")
    return array


def load_parquet(path: Path, columns: tuple[str, ...] = (), filters: list | None = None) -> pd.DataFrame:
    """A Parquet table (only its rows that pass `filters`, pyarrow's predicate pushdown: row groups whose
    statistics cannot match are not read); WorkspaceError naming the file when it is missing, truncated, not
    Parquet, lacks one of `columns` or holds it with another type (table_checks.column_type), or has a row group
    above table_checks.MAX_GROUP_ROWS."""
    import pyarrow

    from .table_checks import TableError, check_footer

    problem = _not_a_file(path)
    if problem:
        raise problem
    try:
        check_footer(path, columns)  # columns and their types, row groups of a bounded size, before any row
        return pd.read_parquet(path, filters=filters)
    except TableError as err:
        raise WorkspaceError(f"{err} (fix: {REBUILD})") from err
    except (ValueError, OSError, EOFError, pyarrow.ArrowException) as err:
        reason = str(err).replace(f" '{path}'", "").replace(str(path), "the file")[:200]
        raise WorkspaceError(f"{path}: not a readable Parquet table ({reason}) (fix: {REBUILD})") from err


def encoder_file(index: int) -> str:
    return f"enc{index:02d}.npy"


# --- the manifest --------------------------------------------------------------------------------------------
def _is(kind: str, value: object) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str, "dict": dict, "list": list, "null": type(None)}[kind])


TYPE_WORDS = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
              "dict": "an object", "list": "a list", "null": "null"}


@dataclass(frozen=True)
class Key:
    """One manifest value: its type(s), whether it must be there, a check of the value (message or None), and for
    a list its items, for an object its fields (a record) or the rule of its keys and values (a mapping)."""

    type: str | tuple[str, ...]
    required: bool = True
    check: Callable[[Any], str | None] | None = None
    items: "Key | None" = None
    fields: "dict[str, Key] | None" = None
    keys: Callable[[Any], str | None] | None = None
    values: "Key | None" = None


def _version(v: int) -> str | None:
    if not 1 <= v <= WORKSPACE_FORMAT_VERSION:
        return f"is {v}, expected 1 to {WORKSPACE_FORMAT_VERSION}"
    return None


def _umap_state(v) -> str | None:
    return None if v in (True, False, UMAP_PENDING) else f'is {str(v)[:40]!r}, expected true, false or "{UMAP_PENDING}"'


def _positive(v: int) -> str | None:
    return None if v > 0 else f"is {v}, expected a process id above 0"


def _measure(m: str) -> str | None:
    import ir_measures

    if len(m) > 100:
        return f"{m[:40]!r}... is too long for a measure"
    try:
        ir_measures.parse_measure(m)
    except Exception as err:  # the parser raises ValueError, NameError, ...
        return f"{m!r} is not an ir_measures measure ({err})"
    return None


def _dataset(n) -> str | None:
    return name_problem(n, "dataset")


def _expert(n) -> str | None:
    return name_problem(n, "expert")


def _encoder(n) -> str | None:
    return None if n == "base" else name_problem(n, "expert")


def _role(n) -> str | None:
    return None if n in ("route", "evaluate") else 'is not "route" or "evaluate"'


def _kind(n) -> str | None:
    return name_problem(n, "expert kind")


def _group(v) -> str | None:
    from .routing import GROUPS

    return None if v in GROUPS else f"is not one of {', '.join(GROUPS)}"


def _positive(v) -> str | None:
    return None if v > 0 else "is not above 0"


def _share(v) -> str | None:
    return None if 0 < v < 1 else "is not between 0 and 1"


def _run(n) -> str | None:
    return name_problem(n, "run")


STRINGS = Key("list", items=Key("str"))
STRATEGY_NAMES = Key("list", items=Key("str", check=strategy_name_problem))
MANIFEST: dict[str, Key] = {
    "format_version": Key("int", check=_version),
    "title": Key("str", required=False),
    "created": Key("str", required=False),
    "updated": Key("str", required=False),
    "base_model": Key("dict", fields={
        "name": Key("str"), "max_seq_length": Key("int", required=False), "parameters": Key("int", required=False),
        "fingerprint": Key("str", required=False),
        "precision": Key("str", required=False, check=lambda v: None if v in PRECISIONS else
                         f"is not one of {', '.join(PRECISIONS)}")}),
    "datasets": Key("list", items=Key("dict", fields={
        "name": Key("str", check=_dataset), "n_docs": Key("int", required=False),
        "test_split": Key("str", required=False), "train_split": Key(("str", "null"), required=False),
        "ignore_identical_ids": Key("bool", required=False), "pilot_source": Key("str", required=False),
        "role": Key("str", required=False, check=_role),
        "index": Key("str", required=False, check=lambda v: None if v in INDEX_STORAGE else
                     f"is not one of {', '.join(INDEX_STORAGE)}"),
        "ivf": Key("dict", required=False),
        "judged_split": Key("dict", required=False, fields={
            "share": Key("number"), "seed": Key("int"), "of": Key("str"), "train": Key("int"), "test": Key("int")}),
        "warnings": Key("list", required=False, items=Key("str"))})),
    "encoders": Key("list", items=Key("str", check=_encoder)),
    "experts": Key("list", items=Key("dict", fields={
        "name": Key("str", check=_expert), "kind": Key("str", check=_kind), "multi_task": Key("bool"),
        "datasets": Key("list", items=Key("str", check=_dataset)), "candidate": Key("bool", required=False),
        "adapter": Key("str", required=False), "card": Key("dict", required=False),
        "capabilities": Key("list", required=False, items=Key("str"))})),
    "candidates": Key("list", items=Key("str", check=_encoder)),
    "own_expert": Key("dict", keys=_dataset, values=Key("str", check=_expert)),
    "strategies": Key("list", items=Key("dict", fields={
        "name": Key("str", check=strategy_name_problem), "family": Key("str"),
        "description": Key("str", required=False), "uses_oracle": Key("bool", required=False),
        "whatif": Key("str", required=False),
        "group": Key("str", required=False, check=_group),
        "settings": Key("dict", required=False, fields={
            "soft_k": Key("int", required=False, check=lambda v: None if 1 <= v <= 64 else "is not in [1, 64]"),
            "soft_temperature": Key("number", required=False, check=_positive),
            "hybrid_weight": Key("number", required=False, check=_share),
            "soft_cv": Key("dict", required=False, values=Key("number")),
            "hybrid_on": Key("dict", required=False, keys=_dataset, values=Key("bool")),
            "hybrid_cv": Key("dict", required=False, keys=_dataset, values=Key("list", items=Key("number")))}),
        "choices": Key("list", required=False, items=Key("str", check=_encoder)),
        "cannot_choose": Key("list", required=False, items=Key("str", check=_run))})),
    "routing": Key("dict"),  # its fields come from the routers' declarations (routing_key), read when checked
    "runs": Key("list", required=False, items=Key("dict", fields={  # format 3: runs read from files (runs.py)
        "name": Key("str", check=_run), "dataset": Key("str", check=_dataset), "candidate": Key("bool"),
        "file": Key("str", required=False), "format": Key("str", required=False),
        "sha256": Key("str", required=False), "lines": Key("int", required=False),
        "warnings": Key("list", required=False, items=Key("str"))})),
    "measures": Key("list", check=lambda v: None if v else "is empty", items=Key("str", check=_measure)),
    "reference": Key("str", required=False, check=strategy_name_problem),
    "label_measure": Key("str", required=False, check=_measure),
    "index": Key("dict", required=False, fields={"kind": Key("str", required=False),
                                                 "depth": Key("int", required=False),
                                                 "chunk_docs": Key("int", required=False),
                                                 "exact_max_docs": Key("int", required=False),
                                                 "memory_max_docs": Key("int", required=False)}),
    "layout": Key("dict", required=False, fields={"sampled": Key("bool", required=False),
                                                  "points": Key("int", required=False),
                                                  "umap": Key(("bool", "str"), required=False, check=_umap_state),
                                                  "pending": Key("dict", required=False, fields={
                                                      "pid": Key("int", check=_positive), "host": Key("str")})}),
    "stages": Key("dict", required=False),
    "versions": Key("dict", required=False),
}


PARAM_TYPES = {bool: "bool", int: "int", float: "number", str: "str", list: "list"}


def routing_key() -> Key:
    """The manifest's `routing`: what the build adds (strategies, variants, the tie rule chosen) and every routing
    setting as its router declares it (routing_params), so a router's new setting is checked without an edit here."""
    from .routing import routing_params

    fields = {
        "strategies": Key("list", required=False, items=Key("str", check=strategy_name_problem)),
        "variants": Key("list", required=False, items=Key("dict", fields={
            "name": Key("str", check=strategy_name_problem), "router": Key("str", check=strategy_name_problem)})),
        "tie_rule": Key("str", required=False), "ties_chosen": Key("str", required=False),
        "ties_cv": Key("dict", required=False)}
    for p in routing_params():
        kinds = (PARAM_TYPES[p.type], *(("null",) if p.nullable else ()))  # "number" takes an int too
        fields.setdefault(p.name, Key(kinds, required=False, check=lambda v, p=p: (p.problem(v) or (None,))[0]))
    return Key("dict", fields=fields)


def _check(value: object, key: Key, where: str, out: list[str]) -> None:
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    if not any(_is(t, value) for t in types):
        shown = json.dumps(value)[:60] if value is None or isinstance(value, (bool, int, float, str)) else \
            type(value).__name__
        out.append(f"{where!r} is {shown}, expected {' or '.join(TYPE_WORDS[t] for t in types)}")
        return
    if key.check and value is not None and (problem := key.check(value)):
        out.append(f"{where!r}: {problem}")
    if key.items and isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, key.items, f"{where}[{i}]", out)
    if key.fields and isinstance(value, dict):
        _check_fields(value, key.fields, f"{where}.", out)
    if isinstance(value, dict):
        for k, v in value.items():
            if key.keys and (problem := key.keys(k)):
                out.append(f"{where!r}: {problem}")
            if key.values:
                _check(v, key.values, f"{where}.{k}", out)


def _check_fields(record: dict, fields: dict[str, Key], prefix: str, out: list[str]) -> None:
    for name, key in fields.items():
        if name in record:
            _check(record[name], key, f"{prefix}{name}", out)
        elif key.required:
            out.append(f"{prefix + name!r} is missing")


def _consistency(m: dict, out: list[str]) -> None:
    """What the types alone cannot say: names that must agree between keys."""
    encoders, experts = m["encoders"], [e["name"] for e in m["experts"]]
    datasets = [d["name"] for d in m["datasets"]]
    if encoders[:1] != ["base"] or encoders[1:] != experts:
        out.append("'encoders' must be 'base' followed by the experts' names in order")
    for key, names in (("datasets", datasets), ("experts", experts),
                       ("strategies", [s["name"] for s in m["strategies"]])):
        if len(set(names)) != len(names):
            out.append(f"{key!r} repeats a name")
    if not datasets:
        out.append("'datasets' is empty")
    if "label_measure" in m and m["label_measure"] not in m["measures"]:
        out.append(f"'label_measure' {m['label_measure']!r} is not among the measures")
    _runs_consistency(m, out)
    systems = encoders + [r["name"] for r in m.get("runs", [])]
    for c in m["candidates"]:
        if c not in systems:
            out.append(f"'candidates': {c!r} is not among the encoders or runs")
    for s in m["strategies"]:
        for c in s.get("choices", []):
            if c not in systems:
                out.append(f"'strategies': {s['name']!r} chooses among {c!r}, which is not among the encoders or runs")
    for d, e in m["own_expert"].items():
        if d not in datasets or e not in encoders:
            out.append(f"'own_expert': {d!r} -> {e!r} names an unknown dataset or expert")
    from .routing import ROUTERS

    for v in m["routing"].get("variants", []):
        if v["router"] not in ROUTERS:
            out.append(f"'routing.variants': {v['name']!r} names router {v['router']!r}, which is not registered")
    for e in m["experts"]:
        for d in e["datasets"]:
            if d not in datasets:
                out.append(f"'experts': {e['name']!r} was trained on {d!r}, which is not among the datasets")


def _runs_consistency(m: dict, out: list[str]) -> None:
    """A run read from a file is one system: a name of its own, one record per dataset it ranks, one strategy
    record of the same name (whose decision is that run), and the same `candidate` in every record."""
    datasets = {d["name"] for d in m["datasets"]}
    taken = set(m["encoders"])
    strategies = {s["name"] for s in m["strategies"]}
    seen: dict[str, bool] = {}
    for r in m.get("runs", []):
        name = r["name"]
        if name in taken:
            out.append(f"'runs': {name!r} is the name of an encoder")
        if r["dataset"] not in datasets:
            out.append(f"'runs': {name!r} ranks {r['dataset']!r}, which is not among the datasets")
        if name not in strategies:
            out.append(f"'runs': {name!r} has no strategy record of its name")
        if seen.setdefault(name, r["candidate"]) != r["candidate"]:
            out.append(f"'runs': {name!r} is a candidate in one record and not in another")
    pairs = [(r["name"], r["dataset"]) for r in m.get("runs", [])]
    if len(set(pairs)) != len(pairs):
        out.append("'runs' lists a (name, dataset) twice")


def validate_manifest(manifest: object, path: Path) -> None:
    """Raise one WorkspaceError naming `path`, every bad key and the fix, unless `manifest` has every key the
    readers use, of the right type, with names that cannot leave the workspace."""
    if not isinstance(manifest, dict):
        raise WorkspaceError(f"{path}: the manifest is not a JSON object (fix: {REBUILD})")
    version = manifest.get("format_version")
    if _is("int", version) and version > WORKSPACE_FORMAT_VERSION:
        raise WorkspaceError(f"{path.parent}: workspace format {version} is newer than this explorer reads "
                             f"({WORKSPACE_FORMAT_VERSION}) (fix: upgrade router-explorer, or rebuild the "
                             f"workspace with this version)")
    problems: list[str] = []
    _check_fields(manifest, {**MANIFEST, "routing": routing_key()}, "", problems)
    if not problems:
        _consistency(manifest, problems)
    if problems:
        shown = "\n".join(f"  - key {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise WorkspaceError(f"{path}: {len(problems)} problem(s) in the manifest:\n{shown}{more}\n(fix: {REBUILD}; "
                             f"a workspace made by another version of router-explorer may need that version)")


NOT_IN_CORPUS = "(not in the corpus)"  # a run file's document the dataset does not have (runs' doc = -1)

# queries.parquet: `meta:<field>` columns hold the queries' metadata fields (strings; "" = the query has none)
META_PREFIX = "meta:"
KIND = "kind"  # metadata.kind has a column of its own in every workspace

# column each table must have (the measure, score: and weight: columns are checked against the manifest)
TABLE_COLUMNS = {
    "queries.parquet": ("row", "qid", "dataset", "role", "text", "kind"),
    "qrels.parquet": ("dataset", "role", "qid", "doc_id", "grade"),
    "runs.parquet": ("system", "row", "rank", "doc", "score"),
    "metrics.parquet": ("system", "row"),
    "strategy_metrics.parquet": ("strategy", "row"),
    "decisions.parquet": ("strategy", "row", "chosen", "margin"),
    "pilots.parquet": ("pilot", "dataset", "expert", "size"),
    "pilot_labels.parquet": ("row", "label"),
    "layout.parquet": ("method", "item", "ref", "x", "y"),
    "significance.parquet": ("measure", "reference", "resamples", "dataset", "system", "delta", "p_t", "p_rand",
                             "n", "p_t_holm", "p_rand_holm", "significant"),
    "docs.parquet": ("doc_id", "title", "text"),
}


def _kind_capabilities(kind: str) -> list[str]:
    from .experts import EXPERT_KINDS

    return sorted(EXPERT_KINDS[kind].capabilities) if kind in EXPERT_KINDS else []


# How a dataset's documents are searched (manifest datasets[].index): index.faiss; exact over the memory-mapped
# doc_emb.npy, chunk by chunk; index.faiss with its IVF lists in index.ivfdata beside it (explorer.ondisk).
INDEX_STORAGE = ("faiss", "chunked-exact", "faiss-on-disk")

# Format 2 stores the per-query tables partitioned (explorer.partitions): <table>/dataset=<d>/<key>=<value>/.
# Format 1 workspaces keep one <table>.parquet file each and still open.
PARTITIONED = {"runs.parquet": ("dataset", "system"), "metrics.parquet": ("dataset", "system"),
               "strategy_metrics.parquet": ("dataset", "strategy"), "decisions.parquet": ("dataset", "strategy")}


def table_folder(name: str) -> str:
    """The folder of a partitioned table: runs.parquet -> runs."""
    return name.removesuffix(".parquet")


SIGNIFICANCE_COLUMNS = ["system", "delta", "p_t", "p_rand", "n", "p_t_holm", "p_rand_holm", "significant", "dataset"]


MAX_DEPTH = 10_000  # the deepest run a build writes ([index] depth), for workspaces that do not state theirs
ROLES = ("pilot", "eval")


def _queries_problem(q: pd.DataFrame, datasets: list[str]) -> str | None:
    """What is wrong with queries.parquet for the readers (every array and table indexes queries by `row`), or
    None."""
    if not np.array_equal(q["row"].to_numpy(), np.arange(len(q))):
        return "its rows are not 0, 1, 2, ... in order (each query's position in every array)"
    unknown = sorted(set(q["dataset"]) - set(datasets)) or sorted(set(q["role"]) - set(ROLES))
    if unknown:
        return f"names {str(unknown[0])[:60]!r}, which is not one of the manifest's datasets or query roles"
    if q.duplicated(["dataset", "role", "qid"]).any():
        return "lists a query twice"
    empty = [d for d in datasets if not ((q["dataset"] == d) & (q["role"] == "eval")).any()]
    if empty:
        return f"holds no evaluated query of dataset {empty[0]!r}, which the manifest names"
    return None


def _needed(external: dict[str, list[str]], values: tuple[str, str]) -> bool:
    """Whether the partition (dataset, system or strategy) must exist: every dataset under every encoder (runs,
    metrics) and every strategy (decisions, strategy metrics); a strategy's mixture runs only where it mixed; a run
    read from a file (and its strategy of the same name) only for the datasets it ranks."""
    dataset, name = values
    if name in external:
        return dataset in external[name]
    return SystemName.parse(name).kind != "mix"


def _row_datasets(queries: pd.DataFrame) -> np.ndarray:
    """Each query row's dataset, indexed by row: the partition key of the per-query tables."""
    return queries.set_index("row")["dataset"].sort_index().to_numpy()


class WorkspaceWriter:
    """Writes a workspace's files under `root` (the build's temporary folder, swapped in whole at the end): the
    one place besides `Workspace` that knows the file names and their columns (TABLE_COLUMNS). Names given to it
    can never write outside `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._row_dataset: np.ndarray | None = None  # each query row's dataset, from queries.parquet

    def _save(self, name: str, frame: pd.DataFrame) -> None:
        """A table: partitioned by dataset and its system or strategy (PARTITIONED), or one file."""
        group = RUN_ROW_GROUP if name == "runs.parquet" else None
        if name not in PARTITIONED:
            save_table(self.root / name, frame, group)
            return
        if self._row_dataset is None:  # a writer opened on a folder that has its queries already
            self._row_dataset = _row_datasets(load_parquet(self.root / "queries.parquet", ("row", "dataset")))
        from .partitions import write_partitioned

        keyed = frame.assign(dataset=self._row_dataset[frame["row"].to_numpy()])
        write_partitioned(self.root / table_folder(name), keyed, PARTITIONED[name],
                          lambda path, part: save_table(path, part, group))

    def dataset(self, name: str, ids, titles, texts, doc_emb: np.ndarray, index, storage: str = "faiss") -> None:
        """A corpus: its documents, base embeddings (a memory-mapped cache file is copied, never read whole) and
        index, stored as `storage` (INDEX_STORAGE) says: none for a corpus searched exactly chunk by chunk (its
        embeddings are the index), the index and its lists file for an on-disk IVF."""
        from .index import save_index

        folder = inside(self.root, "datasets", name)
        save_table(folder / "docs.parquet", pd.DataFrame({"doc_id": ids, "title": titles, "text": texts}))
        if isinstance(doc_emb, np.memmap) and doc_emb.filename:
            copy_file(Path(doc_emb.filename), folder / "doc_emb.npy")  # never a link into the cache
        else:
            save_array(folder / "doc_emb.npy", doc_emb)
        if storage == "faiss-on-disk":
            from .ondisk import copy_on_disk

            copy_on_disk(index, folder)
        elif storage == "faiss":
            save_index(index, folder / "index.faiss")

    def expert(self, name: str, folder: Path) -> None:
        """The expert's adapter folder (weights and card.json), copied from the cache."""
        copy_tree(folder, inside(self.root, "experts", name))

    def query_embeddings(self, embeddings: list[np.ndarray | None]) -> None:
        """One array per encoder, in the manifest's encoder order (row = the query's row); None for an encoder
        without one (a lexical expert), which gets no file."""
        for i, emb in enumerate(embeddings):
            if emb is not None:
                save_array(self.root / "embeddings" / encoder_file(i), emb)

    def table(self, name: str, frame: pd.DataFrame) -> None:
        """A table the build made in the declared layout (queries, qrels, runs, layout)."""
        missing = [c for c in TABLE_COLUMNS[name] if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: columns {missing} are missing")
        if name == "queries.parquet":
            self._row_dataset = _row_datasets(frame)
        self._save(name, frame)

    def metrics(self, systems: list[str], cube: np.ndarray, measures: list[str]) -> None:
        """metrics.parquet from a (system, row, measure) cube: every encoder's per-query scores."""
        frames = []
        for e, name in enumerate(systems):
            frame = pd.DataFrame(cube[e], columns=measures)
            frame.insert(0, "row", np.arange(cube.shape[1]))
            frame.insert(0, "system", name)
            frames.append(frame)
        self._save("metrics.parquet", pd.concat(frames, ignore_index=True))

    def routed(self, routed: list[tuple[str, np.ndarray, Any, np.ndarray]], encoders: list[str],
               measures: list[str]) -> None:
        """decisions.parquet and strategy_metrics.parquet from (strategy, evaluated rows, its Decision, its
        per-query values of every measure), one per strategy."""
        decisions, values = [], []
        for strategy, rows, dec, scores in routed:
            frame = pd.DataFrame({"strategy": strategy, "row": rows,
                                  "chosen": [encoders[c] if c >= 0 else "mixture" for c in dec.chosen],
                                  "margin": dec.margin})
            for prefix, matrix in (("score", dec.scores), ("weight", dec.weights)):
                for j, name in enumerate(encoders):
                    frame[f"{prefix}:{name}"] = matrix[:, j]
            decisions.append(frame)
            sm = pd.DataFrame(scores, columns=measures)
            sm.insert(0, "row", rows)
            sm.insert(0, "strategy", strategy)
            values.append(sm)
        self._save("decisions.parquet", pd.concat(decisions, ignore_index=True))
        self._save("strategy_metrics.parquet", pd.concat(values, ignore_index=True))

    def pilots(self, library, encoders: list[str], pilot_rows: np.ndarray, labels: np.ndarray) -> None:
        """The pilot library (centroids and who they stand for) and each pilot query's label."""
        save_array(self.root / "pilots.npy", library.centroids)
        save_table(self.root / "pilots.parquet", pd.DataFrame({
            "pilot": np.arange(len(library)), "dataset": library.dataset.astype(str),
            "expert": [encoders[c] for c in library.expert], "size": library.size}))
        save_table(self.root / "pilot_labels.parquet", pd.DataFrame({
            "row": pilot_rows, "label": [encoders[c] if c >= 0 else "" for c in labels]}))

    def layout(self, coords: dict[str, np.ndarray], n_pilots: int, n_queries: int) -> None:
        """layout.parquet: every method's 2-D points, the pilot centroids first, then every query."""
        frames = [pd.DataFrame({"method": method, "item": ["pilot"] * n_pilots + ["query"] * n_queries,
                                "ref": np.concatenate([np.arange(n_pilots), np.arange(n_queries)]),
                                "x": xy[:, 0], "y": xy[:, 1]}) for method, xy in coords.items()]
        # atomic: the build replaces it in a finished workspace when its UMAP lands (build.add_umap)
        atomic_write(self.root / "layout.parquet", lambda p: save_table(p, pd.concat(frames, ignore_index=True)))

    def significance(self, tables: list[tuple[str, str, int, pd.DataFrame]]) -> None:
        """significance.parquet: analysis.significance_table of each (measure, reference, resamples), precomputed
        because the randomization tests are the slowest thing a page would otherwise compute."""
        frames = [t.assign(measure=m, reference=r, resamples=n) for m, r, n, t in tables]
        save_table(self.root / "significance.parquet", pd.concat(frames, ignore_index=True)[
            list(TABLE_COLUMNS["significance.parquet"])])

    def manifest(self, manifest: dict) -> None:
        atomic_write(self.root / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2, default=str),
                                                                        encoding="utf-8"))


class Workspace:
    """Read API over a built workspace; every table is loaded on first use and kept.

    The manifest is validated whole on opening; every read names its file and the fix when the file is missing,
    truncated or not what the format says, and no read follows a name or a link out of the workspace folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        kind = path_kind(self.path)
        if kind == "missing":
            raise WorkspaceError(f"{self.path}: no such folder (fix: build one with `explorer build CONFIG --out "
                                 f"{self.path}`)")
        if kind != "folder":
            raise WorkspaceError(f"{self.path}: {NOT_A_FOLDER[kind]} (fix: point to a workspace folder made by "
                                 f"`explorer build`)")
        manifest_kind = path_kind(manifest_path)
        if manifest_kind == "missing":
            raise WorkspaceError(f"{self.path}: not a workspace, it has no manifest.json (fix: point to a folder "
                                 f"made by `explorer build`)")
        if manifest_kind != "file":
            raise WorkspaceError(f"{manifest_path}: {NOT_A_FILE[manifest_kind]} (fix: {REBUILD})")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise WorkspaceError(f"{manifest_path}: unreadable ({err}) (fix: {REBUILD})") from err
        except RecursionError as err:
            raise WorkspaceError(f"{manifest_path}: unreadable (JSON nested too deeply) (fix: {REBUILD})") from err
        except OSError as err:
            raise WorkspaceError(f"{manifest_path}: cannot be read ({err.strerror or err}) (fix: check the file's "
                                 f"permissions, or {REBUILD})") from err
        validate_manifest(self.manifest, manifest_path)

    def file(self, *parts: str) -> Path:
        """The path of a workspace file, refused when it would lead outside the workspace folder."""
        return inside(self.path, *parts)

    def _dataset_dir(self, dataset: str) -> tuple[str, ...]:
        if dataset not in self.datasets:
            raise WorkspaceError(f"{self.path}: no dataset {str(dataset)[:80]!r} in manifest.json (fix: use one of "
                                 f"{', '.join(self.datasets)}, or {REBUILD})")
        return ("datasets", dataset)

    def _expert_dir(self, name: str) -> tuple[str, ...]:
        if name not in self.encoders[1:]:
            raise WorkspaceError(f"{self.path}: no expert {str(name)[:80]!r} in manifest.json (fix: use one of "
                                 f"{', '.join(self.encoders[1:]) or '(none)'}, or {REBUILD})")
        return ("experts", name)

    # --- manifest views -------------------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.manifest.get("title", self.path.name)

    @property
    def encoders(self) -> list[str]:
        return list(self.manifest["encoders"])

    @property
    def external_runs(self) -> list[dict]:
        """The manifest's records of runs read from files (format 3; none before): one per (name, dataset)."""
        return list(self.manifest.get("runs", []))

    @property
    def external_datasets(self) -> dict[str, list[str]]:
        """Each run read from a file -> the datasets it ranks (its files), in manifest order."""
        out: dict[str, list[str]] = {}
        for r in self.external_runs:
            out.setdefault(r["name"], []).append(r["dataset"])
        return out

    @property
    def systems(self) -> list[str]:
        """Column order of every per-system table (metrics, decisions' score: and weight: columns, routing): the
        encoders, then the runs read from files. Only the encoders have embeddings."""
        return self.encoders + list(self.external_datasets)

    @property
    def experts(self) -> list[dict]:
        """The manifest's expert records; `capabilities` from the kind's registry where a workspace built before
        they were recorded lacks them (or [] for a kind not registered here)."""
        return [e if "capabilities" in e else {**e, "capabilities": _kind_capabilities(e["kind"])}
                for e in self.manifest["experts"]]

    @property
    def candidates(self) -> list[str]:
        return list(self.manifest["candidates"])

    @property
    def datasets(self) -> list[str]:
        return [d["name"] for d in self.manifest["datasets"]]

    @property
    def zero_shot_datasets(self) -> list[str]:
        """Evaluate-only datasets (role = "evaluate"): no pilot queries and no expert, as in the paper's Table 2."""
        return [d["name"] for d in self.manifest["datasets"] if d.get("role") == "evaluate"]

    def dataset_info(self, name: str) -> dict:
        self._dataset_dir(name)
        return next(d for d in self.manifest["datasets"] if d["name"] == name)

    @property
    def strategies(self) -> list[str]:
        return [s["name"] for s in self.manifest["strategies"]]

    def strategy_info(self, name: str) -> dict:
        if name not in self.strategies:
            raise WorkspaceError(f"{self.path}: no strategy {str(name)[:80]!r} in manifest.json (fix: use one of "
                                 f"{', '.join(self.strategies)})")
        return next(s for s in self.manifest["strategies"] if s["name"] == name)

    @property
    def measures(self) -> list[str]:
        return list(self.manifest["measures"])

    @property
    def label_measure(self) -> str:
        """The measure pilots were labelled by and the oracles chose by: the default of every read-side view."""
        return self.manifest.get("label_measure") or default_label_measure(self.measures)

    def measure(self, asked: str | None = None) -> str:
        """`asked`, or the label measure when none is asked for."""
        return self.label_measure if asked is None else asked

    @property
    def own_expert(self) -> dict[str, str]:
        return dict(self.manifest["own_expert"])

    def expert_card(self, name: str) -> dict:
        path = self.file(*self._expert_dir(name), "card.json")
        if path_kind(path) == "missing":
            return {}
        if (problem := _not_a_file(path)) is not None:
            raise problem
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, OSError) as err:
            raise WorkspaceError(f"{path}: unreadable ({str(err)[:200]}) (fix: {REBUILD})") from err
        if not isinstance(card, dict):
            raise WorkspaceError(f"{path}: not a JSON object (fix: {REBUILD})")
        return card

    def adapter_dir(self, name: str) -> Path:
        return self.file(*self._expert_dir(name))

    @cached_property
    def dim(self) -> int:
        """The dimension of the base embeddings (the stored queries'): every index must be of it."""
        return int(load_array(self.file("embeddings", encoder_file(0)), mmap=True, ndim=2).shape[1])

    def index_structure(self, dataset: str) -> str:
        """The faiss structure a dataset's index.faiss must be, by its manifest: ivf-disk for lists on disk, ivf for
        an IVF index (its tuned `ivf` record, or an IVF build), hnsw for an HNSW build, else flat."""
        from .index_files import FLAT, HNSW, IVF, IVF_DISK

        info = self.dataset_info(dataset)
        if info.get("index") == "faiss-on-disk":
            return IVF_DISK
        kind = self.manifest.get("index", {}).get("kind", FLAT)
        return IVF if "ivf" in info or kind == IVF else HNSW if kind == HNSW else FLAT

    def index(self, dataset: str):
        """The index of a dataset's documents: its faiss index, or for a corpus built to be searched chunk by chunk
        an exact search over its memory-mapped embeddings. Checked before any search: the structure the manifest
        states, no file outside the workspace, the dimension of the stored queries and one row per document
        (WorkspaceError naming the file otherwise)."""
        key = f"_index:{dataset}"
        if key not in self.__dict__:
            self.__dict__[key] = self._load_index(dataset, len(self.docs(dataset)))
        return self.__dict__[key]

    def _load_index(self, dataset: str, n_docs: int):
        from .index import IndexFileError, load_index
        from .ondisk import load_on_disk

        if self.dataset_info(dataset).get("index") == "chunked-exact":
            from .chunked import ChunkedFlat

            path = self.file(*self._dataset_dir(dataset), "doc_emb.npy")
            emb = load_array(path, mmap=True, ndim=2)
            if emb.shape != (n_docs, self.dim):
                raise WorkspaceError(f"{path}: holds {emb.shape[0]} x {emb.shape[1]} embeddings, expected {n_docs} "
                                     f"documents (docs.parquet) x {self.dim} (fix: {REBUILD})")
            return ChunkedFlat(emb, self.manifest.get("index", {}).get("chunk_docs", 50_000))
        path, structure = self.file(*self._dataset_dir(dataset), "index.faiss"), self.index_structure(dataset)
        try:
            if structure == "ivf-disk":
                return load_on_disk(path.parent, self.dim, n_docs)
            return load_index(path, structure, self.dim, n_docs)
        except IndexFileError as err:
            raise WorkspaceError(f"{err} (fix: {REBUILD})") from err

    # --- tables ---------------------------------------------------------------------------------------------
    def _table(self, name: str, *parts: str, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
        if name in PARTITIONED and self.partitioned:
            return self._partitioned(name, columns=columns)
        path = self.file(*parts, name)
        required = TABLE_COLUMNS.get(name, ()) + tuple(columns or ())
        if name in PARTITIONED:  # a format-1 table: one file, checked as a partition is
            self._checked_file(name, path, required)
        return load_parquet(path, required)

    def _checked_file(self, name: str, path: Path, required: tuple[str, ...]) -> None:
        from .table_checks import TableError

        if (problem := _not_a_file(path)) is not None:
            raise problem
        try:
            self._check_rows(name, path, required)
        except TableError as err:
            raise WorkspaceError(f"{err} (fix: {REBUILD})") from err

    @property
    def partitioned(self) -> bool:
        """Format 2 and later: the per-query tables are partitioned folders (format 1: one file each)."""
        return int(self.manifest["format_version"]) >= 2

    def _partition_names(self) -> dict[str, list[str]]:
        mixes = [str(SystemName.mix(s)) for s in self.strategies]
        return {"dataset": self.datasets, "system": self.systems + mixes, "strategy": self.strategies}

    def _partitioned(self, name: str, where: dict | None = None, filters: list | None = None,
                     columns: tuple[str, ...] | None = None) -> pd.DataFrame:
        """Rows of a partitioned table, only from the partitions in `where` (key -> values), in the layout format 1
        gave (no dataset column: a row's dataset is in queries.parquet); WorkspaceError naming the path when a
        partition is missing, foreign or damaged."""
        import pyarrow

        from .partitions import PartitionError, read_partitioned
        from .table_checks import TableError

        folder = self.file(table_folder(name))
        kind = path_kind(folder)
        if kind != "folder":
            raise WorkspaceError(f"{folder}: {'is missing' if kind == 'missing' else NOT_A_FOLDER[kind]} (fix: "
                                 f"{REBUILD})")
        self.queries  # checked first: every partition is checked against its queries
        required = TABLE_COLUMNS[name] + tuple(columns or ())
        in_file = tuple(c for c in required if c not in PARTITIONED[name])  # the keys live in the folder names
        try:
            frame = read_partitioned(folder, PARTITIONED[name], self._partition_names(), where, filters, required,
                                     lambda values, path: self._check_rows(name, path, in_file, *values),
                                     partial(_needed, self.external_datasets))
        except (PartitionError, TableError) as err:
            raise WorkspaceError(f"{err} (fix: {REBUILD})") from err
        except (ValueError, OSError, pyarrow.ArrowException) as err:
            raise WorkspaceError(f"{folder}: a partition is not a readable Parquet table ({str(err)[:200]}) (fix: "
                                 f"{REBUILD})") from err
        key = PARTITIONED[name][1]  # format 1's order: by system (or strategy) as the manifest lists them, then row
        codes = pd.Categorical(frame[key], categories=self._partition_names()[key]).codes
        frame = frame.drop(columns="dataset").take(np.lexsort((frame["row"].to_numpy(), codes))).reset_index(drop=True)
        if name == "decisions.parquet":
            frame = self._run_columns(frame)
        return frame[[c for c in TABLE_COLUMNS[name] if c in frame.columns] +
                     [c for c in frame.columns if c not in TABLE_COLUMNS[name]]]

    def _run_columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Decisions with a score: and weight: column for every run read from a file. A partition written before a
        run was added (explorer add-run) has none: no decision there scored it (NaN) or sent a query to it (0)."""
        for run in self.external_datasets:
            if f"score:{run}" not in frame.columns:
                frame[f"score:{run}"] = np.nan
            weight = frame[f"weight:{run}"] if f"weight:{run}" in frame.columns else None
            frame[f"weight:{run}"] = 0.0 if weight is None else weight.fillna(0.0).astype(float)
        return frame

    @cached_property
    def queries(self) -> pd.DataFrame:
        """One row per query (`row` = its position in every embedding array): qid, dataset, role, text, kind.
        Checked whole: rows 0..n-1 in order, each query once, datasets of the manifest, each with evaluated
        queries."""
        queries = self._table("queries.parquet")
        problem = _queries_problem(queries, self.datasets)
        if problem:
            raise WorkspaceError(f"{self.file('queries.parquet')}: {problem} (fix: {REBUILD})")
        return queries

    # --- what the per-query tables are checked against ------------------------------------------------------
    @cached_property
    def _facts(self) -> dict:
        """Each dataset's query rows (all, evaluated), each query row's corpus size, the run depth, and what
        identifies them (the check verdicts are kept under it)."""
        q = self.queries
        n_docs = {d: self._doc_count(d) for d in self.datasets}
        rows = {d: np.sort(q.loc[q["dataset"] == d, "row"].to_numpy()) for d in self.datasets}
        evaluated = {d: np.sort(q.loc[(q["dataset"] == d) & (q["role"] == "eval"), "row"].to_numpy())
                     for d in self.datasets}
        depth = int(self.manifest.get("index", {}).get("depth", MAX_DEPTH))
        from .table_checks import stamp

        return {"rows": rows, "eval": evaluated, "depth": depth, "n_docs": q["dataset"].map(n_docs).to_numpy(),
                "all": np.sort(q["row"].to_numpy()), "all_eval": np.sort(q.loc[q["role"] == "eval", "row"].to_numpy()),
                "id": (stamp(self.file("queries.parquet")), tuple(n_docs.items()), depth, tuple(self.encoders))}

    def _doc_count(self, dataset: str) -> int:
        """The rows of a dataset's docs.parquet (its footer only, unless the documents are read already)."""
        if f"_docs:{dataset}" in self.__dict__:
            return len(self.__dict__[f"_docs:{dataset}"])
        import pyarrow
        import pyarrow.parquet as pq

        path = self.file(*self._dataset_dir(dataset), "docs.parquet")
        if (problem := _not_a_file(path)) is not None:
            raise problem
        try:
            return pq.read_metadata(path).num_rows
        except (ValueError, OSError, pyarrow.ArrowException) as err:
            raise WorkspaceError(f"{path}: not a readable Parquet table ({str(err)[:200]}) (fix: {REBUILD})") from err

    def _rules(self, name: str, dataset: str | None = None, value: str | None = None):
        """What a file of table `name` must hold: of one partition (dataset, value), or a whole format-1 table."""
        from .table_checks import RowRules

        f = self._facts
        evaluated = name in ("decisions.parquet", "strategy_metrics.parquet") or (
            value is not None and SystemName.parse(value).kind == "mix")
        rows = (f["eval"] if evaluated else f["rows"])[dataset] if dataset else f["all_eval" if evaluated else "all"]
        whole = {} if dataset else {"key": PARTITIONED[name][1],
                                    "keys": len(self._partition_names()[PARTITIONED[name][1]])}
        if name == "runs.parquet":  # a run read from a file may lack queries and name documents a corpus lacks;
            # BM25 finds nothing for a query that shares no term with the corpus: only a dense search ranks every one
            from_file = value in self.external_datasets if dataset else bool(self.external_datasets)
            dense = value in self.encoders and self.has_embedding(value)
            return RowRules(rows, covered=bool(dataset) and not evaluated and dense, depth=f["depth"],
                            n_docs=f["n_docs"], unknown_docs=from_file, **whole)
        choices = (*self.systems, "mixture") if name == "decisions.parquet" else None
        return RowRules(rows, exact=bool(dataset), choices=choices, **whole)

    def _check_rows(self, name: str, path: Path, columns: tuple[str, ...], dataset: str | None = None,
                    value: str | None = None) -> None:
        """Check one file of a per-query table against what the readers rely on, once per file per process."""
        from .table_checks import check_rows, checked

        checked(path, (name, dataset, value, columns, self._facts["id"]),
                lambda: check_rows(path, self._rules(name, dataset, value), list(columns)))

    @cached_property
    def metadata_fields(self) -> list[str]:
        """The query metadata fields a slice can be taken by: `kind`, then every `meta:<field>` column of
        queries.parquet whose field name keeps the name rule (a workspace built before those columns: `kind`)."""
        from .names import NAME

        fields = [c[len(META_PREFIX):] for c in self.queries.columns if str(c).startswith(META_PREFIX)]
        return [KIND, *(f for f in fields if NAME.fullmatch(f) and f != KIND)]

    def metadata(self, field: str) -> pd.Series:
        """One metadata field of every query as strings, indexed like `queries` ("" where a query has none)."""
        if field not in self.metadata_fields:
            raise KeyError(f"{field!r} is not a query metadata field of this workspace "
                           f"(it has: {', '.join(self.metadata_fields)})")
        column = self.queries[KIND if field == KIND else META_PREFIX + field]
        return column.fillna("").astype(str)

    @cached_property
    def qrels_table(self) -> pd.DataFrame:
        return self._table("qrels.parquet")

    def _columns(self, name: str) -> tuple[str, ...]:
        """The columns a per-query table must hold beyond TABLE_COLUMNS: its measures, or a decision's scores and
        weights per encoder."""
        if name == "decisions.parquet":  # a run's own columns may be absent from a partition (Workspace._run_columns)
            return tuple(f"{c}:{e}" for c in ("score", "weight") for e in self.encoders)
        return tuple(self.measures) if name in ("metrics.parquet", "strategy_metrics.parquet") else ()

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """Per-query metrics of every encoder on every query: system, row, one column per measure."""
        return self._table("metrics.parquet", columns=self._columns("metrics.parquet"))

    @cached_property
    def strategy_metrics(self) -> pd.DataFrame:
        """Per-query metrics of every strategy on the evaluated queries: strategy, row, measures."""
        return self._table("strategy_metrics.parquet", columns=self._columns("strategy_metrics.parquet"))

    @cached_property
    def decisions(self) -> pd.DataFrame:
        """strategy, row, chosen, margin, score:<encoder>..., weight:<encoder>..."""
        return self._table("decisions.parquet", columns=self._columns("decisions.parquet"))

    @cached_property
    def runs(self) -> pd.DataFrame:
        """system, row, rank, doc (corpus position), score. system = an encoder, or mix:<strategy>."""
        return self._table("runs.parquet")

    @cached_property
    def _significance(self) -> pd.DataFrame | None:
        return self._table("significance.parquet") if self.file("significance.parquet").exists() else None

    def stored_significance(self, measure: str, reference: str, resamples: int) -> pd.DataFrame | None:
        """The significance table the build stored for (measure, reference, resamples), or None (not stored, or a
        workspace from before it was)."""
        t = self._significance
        if t is None:
            return None
        hit = t[(t["measure"] == measure) & (t["reference"] == reference) & (t["resamples"] == resamples)]
        if hit.empty:
            return None
        return hit.reset_index(drop=True)[SIGNIFICANCE_COLUMNS]

    @cached_property
    def pilots(self) -> pd.DataFrame:
        return self._table("pilots.parquet")

    @cached_property
    def pilot_labels(self) -> pd.DataFrame:
        return self._table("pilot_labels.parquet")

    @cached_property
    def layout(self) -> pd.DataFrame:
        return self._table("layout.parquet")

    @cached_property
    def pilot_centroids(self) -> np.ndarray:
        return load_array(self.file("pilots.npy"), ndim=2)

    def has_embedding(self, encoder: str) -> bool:
        """Whether `encoder` embeds queries: a lexical expert (BM25) has runs but no query embedding."""
        from .capabilities import LEXICAL

        return not any(e["name"] == encoder and LEXICAL in e["capabilities"] for e in self.experts)

    def embeddings(self, encoder: str = "base") -> np.ndarray:
        return self._embeddings(self._encoder_index(encoder))

    def _encoder_index(self, encoder: str) -> int:
        if encoder not in self.encoders:
            raise WorkspaceError(f"{self.path}: no encoder {str(encoder)[:80]!r} in manifest.json (fix: use one of "
                                 f"{', '.join(self.encoders)})")
        if not self.has_embedding(encoder):
            with_emb = [e for e in self.encoders if self.has_embedding(e)]
            raise WorkspaceError(f"{encoder} has no query embedding: it is a lexical expert (BM25 scores words, it "
                                 f"embeds nothing) (fix: ask for one of {', '.join(with_emb)})")
        return self.encoders.index(encoder)

    def _embedding_array(self, index: int, mmap: bool = False) -> np.ndarray:
        path = self.file("embeddings", encoder_file(index))
        array = load_array(path, mmap=mmap, ndim=2)
        if len(array) != len(self.queries):
            raise WorkspaceError(f"{path}: {len(array)} rows for {len(self.queries)} queries in queries.parquet "
                                 f"(fix: {REBUILD})")
        return array

    def _embeddings(self, index: int) -> np.ndarray:
        key = f"_emb{index}"
        if key not in self.__dict__:
            self.__dict__[key] = self._embedding_array(index)
        return self.__dict__[key]

    def embedding_rows(self, encoder: str, rows) -> np.ndarray:
        """Some rows of one encoder's query embeddings, read through a memory map: a few queries of a large
        workspace without loading every encoder's whole array (an array already loaded is indexed in memory)."""
        index = self._encoder_index(encoder)
        rows = np.asarray(list(rows), dtype=np.int64)
        if f"_emb{index}" in self.__dict__:
            return self.__dict__[f"_emb{index}"][rows]
        array = self._embedding_array(index, mmap=True)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(array)):
            raise IndexError(f"query rows run from 0 to {len(array) - 1}, not {int(rows.max())}")
        return np.array(array[rows])

    def docs(self, dataset: str) -> pd.DataFrame:
        key = f"_docs:{dataset}"
        if key not in self.__dict__:
            self.__dict__[key] = self._table("docs.parquet", *self._dataset_dir(dataset))
        return self.__dict__[key]

    def doc_embeddings(self, dataset: str) -> np.ndarray:
        return load_array(self.file(*self._dataset_dir(dataset), "doc_emb.npy"), ndim=2)

    def qrels(self, dataset: str, role: str = "eval") -> dict[str, dict[str, int]]:
        t = self.qrels_table
        t = t[(t["dataset"] == dataset) & (t["role"] == role)]
        out: dict[str, dict[str, int]] = {}
        for qid, did, grade in zip(t["qid"], t["doc_id"], t["grade"]):
            out.setdefault(qid, {})[did] = int(grade)
        return out

    def eval_rows(self, dataset: str | None = None) -> pd.DataFrame:
        q = self.queries
        q = q[q["role"] == "eval"]
        return q if dataset is None else q[q["dataset"] == dataset]

    def select(self, name: str, values: list[str] | None = None, rows=None) -> pd.DataFrame:
        """Rows of a per-query table (PARTITIONED) for the systems or strategies `values` (None: all) and query
        `rows` (None: all), read with filters: format 2 opens only the partitions of the rows' datasets under those
        values, and the row filter skips row groups; a table already read whole is filtered in memory."""
        table, key = table_folder(name), PARTITIONED[name][1]
        rows = None if rows is None else sorted({int(r) for r in rows})
        if table in self.__dict__ or (not self.partitioned and name != "runs.parquet"):
            whole = getattr(self, table)
            keep = np.ones(len(whole), bool)
            if values is not None:
                keep &= whole[key].isin(values).to_numpy()
            if rows is not None:
                keep &= whole["row"].isin(rows).to_numpy()
            return whole[keep]
        filters = [(key, "in", list(values))] if values is not None and not self.partitioned else []
        if rows is not None:  # the range lets pyarrow skip row groups by their statistics
            filters += [("row", ">=", rows[0]), ("row", "<=", rows[-1]), ("row", "in", rows)] if rows else [
                ("row", "<", 0)]
        if not self.partitioned:
            self._checked_file(name, self.file(name), TABLE_COLUMNS[name] + self._columns(name))
            return load_parquet(self.file(name), TABLE_COLUMNS[name] + self._columns(name), filters or None)
        where = {} if values is None else {key: list(values)}
        if rows is not None:  # only the partitions of the datasets these rows belong to are opened
            of = self.queries.set_index("row")["dataset"]
            where["dataset"] = sorted(set(of.reindex(rows).dropna()))
        return self._partitioned(name, where, filters or None, self._columns(name))

    def run_rows(self, systems: list[str] | None = None, rows=None) -> pd.DataFrame:
        """The runs of `systems` (None: all) on query `rows` (None: all): what `select` reads, never the whole
        table (which `runs` reads, once, when something needs all of it)."""
        return self.select("runs.parquet", systems, rows)

    def metric_rows(self, systems: list[str] | None = None, rows=None) -> pd.DataFrame:
        """Per-query metrics of `systems` on `rows` (select)."""
        return self.select("metrics.parquet", systems, rows)

    def decision_rows(self, strategies: list[str] | None = None, rows=None) -> pd.DataFrame:
        """Decisions of `strategies` on `rows` (select)."""
        return self.select("decisions.parquet", strategies, rows)

    def strategy_metric_rows(self, strategies: list[str] | None = None, rows=None) -> pd.DataFrame:
        """Per-query metrics of `strategies` on `rows` (select)."""
        return self.select("strategy_metrics.parquet", strategies, rows)

    def ranking(self, system: str, row: int, depth: int = 10) -> pd.DataFrame:
        """Top `depth` of one query under one system (an encoder, a run read from a file, or mix:<strategy>): rank,
        doc_id, title, text, score, grade. A document a run file names that the corpus does not have (doc -1)
        keeps its rank, with NOT_IN_CORPUS as its id and no text."""
        r = self.run_rows([system], [row])
        hits = r.sort_values("rank").head(depth)
        q = self.queries.iloc[row]
        docs = self.docs(q["dataset"])
        judged = self.qrels(q["dataset"], q["role"]).get(q["qid"], {})
        positions = hits["doc"].to_numpy()
        out = docs.iloc[np.maximum(positions, 0)][["doc_id", "title", "text"]].reset_index(drop=True)
        out.loc[positions < 0, ["doc_id", "title", "text"]] = [NOT_IN_CORPUS, "", ""]
        out.insert(0, "rank", hits["rank"].to_numpy())
        out["score"] = hits["score"].to_numpy()
        out["grade"] = [judged.get(d) for d in out["doc_id"]]
        return out

    def strategy_system(self, strategy: str, row: int) -> str:
        """The run a strategy used for a query: its chosen encoder, or mix:<strategy> for a merged encode."""
        chosen = self.decision_rows([strategy], [row])["chosen"].iloc[0]
        return str(SystemName.mix(strategy)) if chosen == "mixture" else chosen
