"""Benchmarks of the app: first render of each page on a warm workspace (AppTest, server side), Playground
latency (route + expert encode + search) over ~50 queries, and app start time (`streamlit run` until it answers).

    python bench/app.py [--workspace workspaces/sample] [--runs 5] [--queries 50] [--json out.json]

Results are written up in docs/benchmarks.md (section "App").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.pages import PAGES as REGISTRY  # noqa: E402

# the default page opens without switching; every other page by its script, from the page registry
PAGES = {key: (None if page.default else page.script) for key, page in REGISTRY.items()}


def first_render(ws_path: str, runs: int) -> dict[str, dict[str, float]]:
    """Per page: seconds of one fresh session's first run (a new AppTest) once the process caches are warm."""
    from streamlit.testing.v1 import AppTest

    def once(page, params=None):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.session_state["workspace_path"] = ws_path
        if params:
            at.query_params.update(params)
        if page:
            at.run()  # registers the pages; then time the page itself
            at.switch_page(page)
        t = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        return elapsed

    out = {}
    cases = dict(PAGES)
    cases["playground+query"] = PAGES["playground"]
    for name, page in cases.items():
        params = {"q": "my kitchen tap keeps dripping", "dataset": "homefix"} if name == "playground+query" else None
        once(page, params)  # warm: caches of this page's tables (and the live router)
        times = [once(page, params) for _ in range(runs)]
        out[name] = {"median_s": statistics.median(times), "max_s": max(times)}
    return out


def playground_latency(ws_path: str, n: int) -> dict[str, float]:
    from explorer.ui.state import open_live_router  # the app's own way of opening it (thread settings included)
    from explorer.workspace import Workspace

    ws = Workspace(ws_path)
    router = open_live_router(ws)
    router.route("warm up")
    ev = ws.eval_rows()
    texts = ev["text"].tolist()[:n]
    datasets = ev["dataset"].tolist()[:n]
    strategy = "pilot-mean" if "pilot-mean" in ws.strategies else ws.strategies[0]
    router.search(texts[0], None, datasets[0])
    total, routes, searches = [], [], []
    for text, ds in zip(texts, datasets):
        t0 = time.perf_counter()
        res = router.route(text)
        t1 = time.perf_counter()
        router.search(text, router.choice(res.decisions[strategy]), ds, k=10)
        t2 = time.perf_counter()
        routes.append(t1 - t0)
        searches.append(t2 - t1)
        total.append(t2 - t0)

    def pct(values, q):
        s = sorted(values)
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

    return {"queries": len(total), "p50_ms": 1000 * pct(total, 0.5), "p95_ms": 1000 * pct(total, 0.95),
            "route_p50_ms": 1000 * pct(routes, 0.5), "encode_search_p50_ms": 1000 * pct(searches, 0.5)}


def start_time(ws_path: str) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false", "--", "--workspace", ws_path]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        out["health_s"] = time.perf_counter() - t0
        if Path("/usr/bin/chromium").is_file():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                b = p.chromium.launch(executable_path="/usr/bin/chromium",
                                      args=["--no-sandbox", "--headless", "--disable-gpu",
                                            "--disable-background-networking", "--disable-component-update",
                                            "--disable-sync", "--no-first-run"])
                pg = b.new_page()
                pg.goto(url + "/")
                pg.wait_for_selector('h1:has-text("Overview")', timeout=60_000)
                pg.wait_for_selector("table", timeout=60_000)
                out["overview_drawn_s"] = time.perf_counter() - t0
                b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", default=str(ROOT / "workspaces" / "sample"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    ws_path = str(Path(args.workspace).resolve())
    result = {"machine": f"{platform.node()} · {os.cpu_count()} cores · {platform.processor() or platform.machine()}",
              "date": time.strftime("%Y-%m-%d"), "workspace": ws_path}
    result["load_average_before"] = os.getloadavg()
    result["start"] = start_time(ws_path)
    result["first_render"] = first_render(ws_path, args.runs)
    result["playground"] = playground_latency(ws_path, args.queries)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
