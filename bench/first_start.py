"""The first start as a newcomer meets it: a fresh clone, a new venv, an empty cache, `make run`, a browser.

    python -m bench.first_start                          # this checkout's HEAD, one run
    python -m bench.first_start --ref fe2c3aa --ref HEAD --runs 2 --lock /tmp/heavy.lock

Each run clones the repository at `--ref` into a temporary folder, times `make setup` (the install, reported
apart: the budget starts at the first page view), starts `make run` on a free port, opens the page in Debian's
chromium (Playwright) the moment the server answers, and records the seconds from that first page view until the
Overview shows its table of numbers, and until the build process has exited (the UMAP layout has landed). While it
runs, a sampler reads /proc every half second and counts the CPU time of every process that is not ours, so each
run says how loaded the machine was (cores busy with other work, on average). Several `--ref`s are interleaved
run by run, so a baseline and a change meet the same conditions; the summary gives medians. With `--lock`, the
measured part (not the install) holds that flock, as heavy work on a shared machine must.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

from explorer.files import exclusive

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The Overview is up when its title is drawn and its HTML table holds rows of numbers.
OVERVIEW_READY = """() => [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === 'Overview')
    && [...document.querySelectorAll('table')].some(t => t.innerText.split('\\n').length > 5
                                                        && /\\d+\\.\\d/.test(t.innerText))"""
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoadSampler:
    """CPU seconds of processes outside this one's tree, sampled from /proc: the machine's other load."""

    def __init__(self, roots: Callable[[], set[int]], period: float = 0.5):
        """`roots()`: pids besides this process whose trees are ours too (the build, detached from `make run`)."""
        self.roots, self.period, self.others, self.ours = roots, period, 0.0, 0.0
        self.seen: dict[int, float] | None = None  # pid -> CPU seconds at the last sample (None: no sample yet)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _snapshot() -> dict[int, tuple[int, float]]:
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)  # ppid, utime+stime
        return out

    def _ours(self, snap: dict[int, tuple[int, float]]) -> set[int]:
        mine, changed = {os.getpid(), *self.roots()}, True
        while changed:
            changed = False
            for pid, (ppid, _) in snap.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        return mine

    def _loop(self) -> None:
        while not self._stop.is_set():
            snap = self._snapshot()
            mine = self._ours(snap)
            first, self.seen = self.seen is None, self.seen or {}
            for pid, (_, cpu) in snap.items():
                delta = 0.0 if first else cpu - self.seen.get(pid, 0.0)  # a new process: all of its time is new
                self.seen[pid] = cpu
                if pid in mine:
                    self.ours += max(delta, 0.0)
                else:
                    self.others += max(delta, 0.0)
            self._stop.wait(self.period)

    def start(self) -> "LoadSampler":
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self.t0
        return {"others_cores": round(self.others / wall, 2), "ours_cores": round(self.ours / wall, 2)}


def clone(ref: str, into: Path) -> str:
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", ref], check=True)
    return subprocess.run(["git", "-C", str(into), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("make run exited before serving")
            time.sleep(0.05)
    raise TimeoutError("the server did not answer")


def build_lock(folder: Path) -> Path:
    """The first start's build's lock file (it holds the builder's pid), where explorer.background puts it."""
    from explorer.background import BackgroundBuild

    return BackgroundBuild(folder / "sample_data" / "sample.toml", folder / "workspaces" / "sample").lock_path


def builder_pid(folder: Path) -> set[int]:
    try:
        return {int(build_lock(folder).read_text().strip())}
    except (OSError, ValueError):
        return set()


def builder_gone(folder: Path) -> bool:
    pids = builder_pid(folder)
    if not pids:
        return (folder / "workspaces" / "sample" / "manifest.json").is_file()
    try:
        return Path(f"/proc/{pids.pop()}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie is gone
    except OSError:
        return True


def one_run(browser, ref: str, lock: str | None, keep: bool, timeout: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="fresh-first-start-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "NUMBA_", "EXPLORER_", "PYTHONDONTWRITEBYTECODE", "XDG_CACHE_HOME",
                                "HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_", "TORCH_HOME", "MPLCONFIGDIR"))}
    # every user cache empty (models, compiled code, fonts: XDG_CACHE_HOME and HF_HOME inside the clone); the
    # build's cache is the clone's own (sample.toml: ../.explorer-cache); pip keeps its download cache
    env.update(HF_HUB_OFFLINE="1", PATH=":".join(p for p in env["PATH"].split(":") if ".venv" not in p),
               XDG_CACHE_HOME=str(folder / ".fresh-cache"), HF_HOME=str(folder / ".fresh-cache" / "huggingface"),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"))
    result: dict = {"ref": ref, "commit": clone(ref, folder), "folder": str(folder)}
    result["caches_empty"] = not any((folder / d).exists() for d in (".fresh-cache", ".explorer-cache"))
    try:
        t = time.monotonic()
        subprocess.run(["make", "setup"], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        result["install_s"] = round(time.monotonic() - t, 1)
        with exclusive(lock) if lock else nullcontext():
            result.update(measure(browser, folder, env, timeout))
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def measure(browser, folder: Path, env: dict, timeout: float) -> dict:
    out: dict = {"loadavg_before": float(Path("/proc/loadavg").read_text().split()[0])}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sampler = LoadSampler(lambda: builder_pid(folder)).start()
    start = time.monotonic()
    with open(folder / "make-run.log", "w") as log:
        proc = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    try:
        wait_health(url, proc)
        out["serve_s"] = round(time.monotonic() - start, 1)
        t0, t0_wall = time.monotonic(), time.time()
        page.goto(url)
        page.wait_for_function(OVERVIEW_READY, timeout=timeout * 1000, polling=100)
        out["overview_s"] = round(time.monotonic() - t0, 1)
        lock = build_lock(folder)
        out["build_started_s"] = round(lock.stat().st_mtime - t0_wall, 1) if lock.exists() else None
        load = sampler.stop()
        out.update(load)
        while not builder_gone(folder) and time.monotonic() - t0 < timeout:
            time.sleep(0.2)
        out["builder_done_s"] = round(time.monotonic() - t0, 1)
        manifest = json.loads((folder / "workspaces" / "sample" / "manifest.json").read_text())
        out["layout_umap"] = manifest.get("layout", {}).get("umap")
        out["build_seconds"] = manifest.get("build_seconds")
        out["stages"] = _stage_groups(manifest.get("stages", {}))
        out["stage_seconds"] = manifest.get("stage_seconds")
        page.goto(f"{url}/map")
        page.wait_for_selector('h1:has-text("Routing map")', timeout=120_000)
        page.wait_for_selector('[data-testid="stRadio"]', timeout=120_000)
        out["map_offers_umap"] = page.locator('[data-testid="stRadio"] label:has-text("UMAP")').count() > 0
    finally:
        page.context.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out["loadavg_after"] = float(Path("/proc/loadavg").read_text().split()[0])
    return out


def _stage_groups(stages: dict) -> dict:
    groups: dict[str, float] = {}
    for name, info in stages.items():
        key = name.split(":")[0]
        groups[key] = round(groups.get(key, 0.0) + float(info.get("seconds", 0.0)), 1)
    return groups


def summary(results: list[dict]) -> str:
    lines = ["| ref | runs | install s | served s | first view → Overview s (median, each) | → UMAP s | others' "
             "cores |", "|---|---|---|---|---|---|---|"]
    for ref in dict.fromkeys(r["ref"] for r in results):
        rs = [r for r in results if r["ref"] == ref and "overview_s" in r]
        if not rs:
            continue
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        lines.append(f"| {ref} ({rs[0]['commit']}) | {len(rs)} | {med('install_s'):.0f} | {med('serve_s'):.1f} | "
                     f"**{med('overview_s'):.1f}** ({', '.join(str(r['overview_s']) for r in rs)}) | "
                     f"{med('builder_done_s'):.1f} | {', '.join(str(r['others_cores']) for r in rs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", help="git ref to measure (repeat to interleave; default HEAD)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--lock", help="flock held during each measured part (e.g. /tmp/heavy.lock)")
    parser.add_argument("--out", type=Path, help="append each run as a JSON line here")
    parser.add_argument("--keep", action="store_true", help="keep the clones")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(args.runs):
            for ref in args.ref or ["HEAD"]:
                result = one_run(browser, ref, args.lock, args.keep, args.timeout)
                result["run"] = i + 1
                print(json.dumps(result), flush=True)
                if args.out:
                    with open(args.out, "a") as handle:
                        handle.write(json.dumps(result) + "\n")
                results.append(result)
        browser.close()
    print(summary(results))


if __name__ == "__main__":
    main()
