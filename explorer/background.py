"""A build that runs in its own process, independent of any browser tab: the app's first start builds the sample
workspace this way, so closing the tab (or every tab) does not abandon it, and several sessions share one build.

The build process writes where it is (stage i of n, items done) to a small JSON status file beside the workspace,
atomically; the page reads it to show progress. A lock file holding the builder's pid keeps it to one build.

`make run` starts the sample's build this way before it starts the server (`python -m explorer.background`), so
the build is under way by the time the page is first opened; the app joins it (or starts it, when the app was
started otherwise). This module imports nothing heavy, so that start costs a fraction of a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_WORKSPACE = ROOT / "workspaces" / "sample"  # what the app opens by default, built on its first start
SAMPLE_CONFIG = ROOT / "sample_data" / "sample.toml"


class BackgroundBuild:
    """`explorer build CONFIG --out OUT` in a detached process, with its status and log beside OUT."""

    def __init__(self, config: Path, out: Path):
        self.config, self.out = Path(config), Path(out)
        stem = self.out.parent / f".{self.out.name}.build"
        self.status_path, self.log_path, self.lock_path = (stem.with_suffix(s) for s in (".json", ".log", ".lock"))

    def running(self) -> bool:
        try:
            text = self.lock_path.read_text().strip()
            if not text:  # a starter between creating the lock and writing its builder's pid
                return time.time() - self.lock_path.stat().st_mtime < 10
            pid = int(text)
        except (OSError, ValueError):
            return False
        try:  # our own child: reap it once it has exited (a zombie would still answer to kill(pid, 0))
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return False
        except ChildProcessError:  # started by another process: ask the system
            pass
        from .workspace import process_running

        return process_running(pid)

    def start(self) -> bool:
        """Start the build unless one is running; True when this call started it."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.running():
            return False
        self.lock_path.unlink(missing_ok=True)  # a dead builder's lock
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another session won the race
            return False
        self.status_path.unlink(missing_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "explorer.cli", "build", str(self.config), "--out", str(self.out),
                 "--status", str(self.status_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        with os.fdopen(fd, "w") as handle:
            handle.write(str(proc.pid))
        return True

    def status(self) -> dict:
        """Where the build is: {stage, stages, label, done, items, state} with state running, done or failed (and
        the log's last lines when it failed)."""
        try:
            out = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out = {}
        if not isinstance(out, dict):
            out = {}
        if (self.out / "manifest.json").is_file() and not self.running():
            out["state"] = "done"
        elif self.running():
            out["state"] = "running"
        else:
            out["state"] = "failed" if self.log_path.exists() else "not started"
            out["log"] = self.log_tail()
        return out

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait(self, timeout: float = 600, poll: float = 0.2) -> dict:
        end = time.monotonic() + timeout
        while self.running() and time.monotonic() < end:
            time.sleep(poll)
        return self.status()


def progress_lines(status: dict) -> tuple[float, str, float | None, str | None]:
    """What a page shows of a running build: (overall fraction, "Stage i of n: label", the stage's own fraction or
    None, "k of m done in this stage" or None)."""
    stage, stages = int(status.get("stage") or 0), int(status.get("stages") or 0)
    overall = (stage - 1) / stages if stage and stages else 0.0
    head = f"Stage {stage} of {stages}: {status.get('label', '')}" if stage else "Starting (loading the libraries)"
    items, done = int(status.get("items") or 0), int(status.get("done") or 0)
    if not items:
        return overall, head, None, None
    return overall, head, min(done / items, 1.0), f"{done} of {items} done in this stage"


def status_writer(path: Path):
    """A `build(status=...)` callback that keeps `path` holding the latest status, written atomically."""
    from .workspace import atomic_write

    started = time.time()

    def write(status: dict) -> None:
        payload = {**status, "pid": os.getpid(), "started": started, "updated": time.time()}
        atomic_write(Path(path), lambda p: p.write_text(json.dumps(payload), encoding="utf-8"))

    return write


def start_sample_build(config: Path = SAMPLE_CONFIG, out: Path = SAMPLE_WORKSPACE) -> str:
    """The first start's build of the sample workspace when it is missing and none runs; says what happened."""
    if (Path(out) / "manifest.json").is_file():
        return f"{out} is built"
    job = BackgroundBuild(config, out)
    if job.start():
        return f"Building {out} in the background (log: {job.log_path}); the app shows its progress"
    return f"{out} is being built by another process (log: {job.log_path})"


if __name__ == "__main__":  # `make run`: the sample's build starts before the server does
    print(start_sample_build(), flush=True)
