"""Independent CPU work of a build in forked worker processes, each with its share of the cores' threads.

On a CPU, the build's heavy items are independent: each corpus is encoded on its own, and each expert trains on its
own (seeded at its start, so its result does not depend on what trained before it) and then encodes the queries.
Their small matrices use a second thread only in part, and threads that wait on each other suffer badly from any
other process on the machine, so processes of one thread each do more work together (the sample on 2 cores: its
workspace 12 s sooner than in one process with two threads, docs/benchmarks.md). So a CPU build forks `workers`
processes after the model is loaded (they share its memory, copy-on-write) and hands them the items in the order
given, one at a time as each finishes. A worker returns small values by pipe and writes what the parent reads back
through the build cache (atomic files), so a killed worker leaves nothing half-written (and stops the build:
BrokenProcessPool). An exception in a worker is raised in the build.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Sequence

MAX_WORKERS = 4  # more processes than this each hold a model copy's activations for little gain on small sets

_task: Callable[[int], Any] | None = None  # the forked workers' task, inherited from the parent


def cores() -> int:
    """The cores this process may use: those it is pinned to, fewer where a cgroup's CPU quota allows fewer (a CI
    container sees every core of its host but may run on a share of them)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _cgroup_quota() or n))


def _cgroup_quota() -> int | None:
    """Whole cores of the cgroup v2 CPU quota (cpu.max "QUOTA PERIOD"), or None without one ("max", no file)."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max", encoding="ascii").read().split()[:2]
        return max(1, int(quota) // int(period))
    except (OSError, ValueError):
        return None


def worker_count(items: int, asked: int, device: str) -> int:
    """Processes to fork for `items` independent items: none (work in the build's own process) on a GPU, with fewer
    than 2 items or fewer than 2 cores, or when `asked` is 1; else `asked` (0: at most MAX_WORKERS), never more than
    the cores (more processes than cores only slow each other, most of all on a loaded CI machine) nor the items."""
    if device != "cpu" or items < 2 or asked == 1 or not hasattr(os, "fork"):
        return 0
    n = min(asked or MAX_WORKERS, cores(), items)
    return n if n >= 2 else 0


def run_in_workers(task: Callable[[int], Any], items: Sequence, workers: int,
                   done: Callable[[int, Any], None]) -> None:
    """`task(i)` for every index of `items` in `workers` forked processes (items handed out in order as workers
    free up), `done(i, result)` called in this process as each finishes. The first exception is raised here, and a
    worker that dies (killed, out of memory) stops the build with BrokenProcessPool instead of leaving it waiting."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    global _task
    _task = task
    threads = max(1, cores() // workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_set_threads,
                                 initargs=(threads,)) as pool:
            futures = [pool.submit(_run, i) for i in range(len(items))]
            try:
                for future in as_completed(futures):
                    i, result = future.result()
                    if isinstance(result, _Failed):
                        raise result.error
                    done(i, result)
            finally:
                for future in futures:
                    future.cancel()
    finally:
        _task = None


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _run(i: int) -> tuple[int, Any]:
    try:
        return i, _task(i)
    except Exception as err:  # noqa: BLE001 - handed to the build, which raises it
        import traceback

        err.add_note(f"(in worker process {os.getpid()})\n{traceback.format_exc().rstrip()}")
        return i, _Failed(_portable(err))


def _portable(err: Exception) -> Exception:
    """The exception itself when it survives the pipe (pickled and read back), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(err).__name__}: {err}")
