"""`explorer add-run`: a run file added to a built workspace as a new system, without a rebuild.

The workspace is replaced whole or left as it was, as a build replaces it: every file is copied into a temporary
sibling folder (links are copied as links, never followed), the new run's partitions and what depends on the set of
systems (the new strategy's decisions and metrics, the stored significance tables of the run's dataset, the
manifest) are written there, and the folder is swapped in (workspace.atomic_dir). The other strategies' decisions
keep their files: a reader gives them the new system's columns (Workspace._run_columns). A run added this way is never a
routing candidate: a candidate changes every router's decisions, and some of those (adapter merges) need the
model, so a candidate is declared in the build config ([[runs]] candidate = true) and built.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from . import WORKSPACE_FORMAT_VERSION
from .files import exclusive
from .names import name_problem
from .routing import ExternalRun, Fixed
from .routing.fixed import one_hot
from .runs import ImportedRun, RunTarget, import_run
from .workspace import SIGNIFICANCE_COLUMNS, Workspace, WorkspaceWriter, atomic_dir


class AddRunError(ValueError):
    """A run that cannot be added as asked (a name taken, a dataset the workspace does not have, ...)."""


def add_run(workspace: str | Path, path: str | Path, dataset: str, name: str, fmt: str = "auto") -> dict:
    """Add the run file `path`, ranking `dataset`'s queries, to `workspace` as the system `name`; returns its
    manifest record (with its warnings). Bad input raises before anything is written; a failure while writing
    leaves the workspace as it was."""
    ws = Workspace(workspace)
    _check(ws, dataset, name)
    run = _imported(ws, path, dataset, name, fmt)
    with _locked(ws.path), atomic_dir(ws.path) as tmp:
        shutil.copytree(ws.path, tmp, symlinks=True, dirs_exist_ok=True)
        _write(ws, tmp, run)
    return run.record


def _check(ws: Workspace, dataset: str, name: str) -> None:
    if not ws.partitioned:
        raise AddRunError(f"{ws.path}: a format 1 workspace (built before 2026-12-01) cannot take a run (fix: rebuild "
                          "it with `explorer build CONFIG --out DIR`, then add the run)")
    if dataset not in ws.datasets:
        raise AddRunError(f"--dataset {dataset!r} is not a dataset of {ws.path} (fix: use one of "
                          f"{', '.join(ws.datasets)})")
    bad = name_problem(name, "run")
    if bad:
        raise AddRunError(f"--name: {bad} (fix: rename the run)")
    mine = ws.external_datasets.get(name)
    if mine is None and (name in ws.systems or name in ws.strategies):
        raise AddRunError(f"--name {name!r} is already a system or strategy of {ws.path} (fix: choose another name)")
    if mine is not None and dataset in mine:
        raise AddRunError(f"run {name!r} already ranks {dataset!r} in {ws.path} (fix: choose another name, or "
                          "rebuild with the new file)")
    if mine is not None and name in ws.candidates:
        raise AddRunError(f"run {name!r} is a routing candidate, whose files are declared in the build config (fix: "
                          "add a [[runs]] table and rebuild, or choose another name)")


def _imported(ws: Workspace, path: str | Path, dataset: str, name: str, fmt: str) -> ImportedRun:
    """The file read against the dataset as the workspace holds it, and scored by the workspace's measures."""
    queries = ws.queries[ws.queries["dataset"] == dataset][["row", "qid", "role"]]
    target = RunTarget(dataset, ws.docs(dataset)["doc_id"].tolist(), set(queries["qid"]),
                       int(ws.manifest.get("index", {}).get("depth", 100)),
                       bool(ws.dataset_info(dataset).get("ignore_identical_ids", False)))
    qrels = {role: ws.qrels(dataset, role) for role in queries["role"].unique()}
    return import_run(name, Path(path).resolve(), target, queries, qrels, ws.measures, fmt, source="add-run")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One add-run at a time on a workspace: a second waits rather than losing the first one's run."""
    with exclusive(folder.parent / f".{folder.name}.add-run.lock"):
        yield


def _write(old: Workspace, tmp: Path, run: ImportedRun) -> None:
    """The new run's partitions, the decisions with a column pair for a new system, its strategy's decisions and
    metrics, the manifest, then the significance tables the workspace stored, recomputed over every system."""
    writer = WorkspaceWriter(tmp)
    writer.table("runs.parquet", run.runs)
    writer.table("metrics.parquet", run.metrics)
    # the other decisions keep their partitions: a reader gives them this system's columns (NaN score, 0 weight)
    systems = old.systems + ([run.name] if run.name not in old.systems else [])
    rows = run.metrics.merge(old.eval_rows(run.dataset)[["row"]], on="row")
    decision = one_hot(len(rows), len(systems), systems.index(run.name))
    writer.routed([(run.name, rows["row"].to_numpy(), decision, rows[old.measures].to_numpy())], systems,
                  old.measures)
    writer.manifest(_manifest(old, run))
    stored = old._significance
    if stored is not None:  # only the run's dataset and the average change: each is corrected on its own
        new = Workspace(tmp)
        keys = stored[["measure", "reference", "resamples"]].drop_duplicates().itertuples(index=False)
        writer.significance([(m, r, int(n), _significance(new, stored[
            (stored["measure"] == m) & (stored["reference"] == r) & (stored["resamples"] == n)], run.dataset, m, r,
            int(n))) for m, r, n in keys])


def _significance(new: Workspace, stored: pd.DataFrame, dataset: str, measure: str, reference: str,
                  resamples: int) -> pd.DataFrame:
    """One stored significance table after a run is added on `dataset`: the other datasets' rows as they were,
    that dataset's and the average column's computed again, in compute_significance's order."""
    from .analysis import AVERAGE, average_significance, compute_significance

    kept = stored[~stored["dataset"].isin([dataset, AVERAGE])][SIGNIFICANCE_COLUMNS]
    frames = [kept, compute_significance(new, measure, reference, resamples, datasets=[dataset])]
    if (stored["dataset"] == AVERAGE).any():
        frames.append(average_significance(new, measure, reference, resamples))
    order = {d: i for i, d in enumerate([*new.datasets, AVERAGE])}
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values("dataset", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def _manifest(old: Workspace, run: ImportedRun) -> dict:
    """The old manifest with the run's record, and its strategy beside the fixed systems when the name is new."""
    manifest = dict(old.manifest)
    manifest["format_version"] = WORKSPACE_FORMAT_VERSION
    manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")  # a new key for cached views
    manifest["runs"] = [*old.external_runs, run.record]
    strategies = list(manifest["strategies"])
    strategy = ExternalRun(run.name, [*old.external_datasets.get(run.name, []), run.dataset])
    # as the build records a fixed choice: judged against the instance oracle over the routing candidates
    record = {"name": strategy.name, "description": strategy.description, "family": strategy.family,
              "uses_oracle": False, "choices": old.candidates}
    if run.name in old.strategies:
        strategies = [record if s["name"] == run.name else s for s in strategies]
    else:
        families = (Fixed.family, ExternalRun.family)
        at = max((i + 1 for i, s in enumerate(strategies) if s.get("family") in families), default=0)
        strategies.insert(at, record)
    manifest["strategies"] = strategies
    return manifest
