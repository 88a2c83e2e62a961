"""The whole benchmark report in one command: quality on real data, speed and memory, scale.

    python -m bench.report            # full: builds bench/real.toml if needed, rewrites docs/benchmarks.md sections
    python -m bench.report --quick    # small: a 3-domain sample workspace, small sizes, report in a temp folder

The full run regenerates the sections between `<!-- quality:start/end -->` and `<!-- speed:start/end -->` in
docs/benchmarks.md and the figures in docs/figures/. `--quick` is the smoke test of the suite: same code, small
inputs, a report that must be well-formed (its timings mean nothing).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer.build import build  # noqa: E402
from explorer.config import load_config  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

from . import quality, scale, speed  # noqa: E402
from .markdown import machine_line, replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK_DOMAINS = ("homefix", "pycode", "symptoms")


def quick_workspace(out: Path) -> Workspace:
    """The sample config cut to three domains and one training epoch: a real build in well under a minute."""
    cfg = load_config(ROOT / "sample_data" / "sample.toml")
    cfg.datasets = [d for d in cfg.datasets if d.name in QUICK_DOMAINS]
    cfg.experts = [e for e in cfg.experts if e.multi_task or set(e.datasets) <= set(QUICK_DOMAINS)]
    for e in cfg.experts:
        e.train.update(epochs=1)
        e.sources = [s for s in e.sources if s["dataset"] in QUICK_DOMAINS]
    cfg.layout["umap"] = False
    cfg.cache_dir = out.parent / "cache"
    return build(cfg, out, echo=lambda *_: None, progress=False)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, under 5 minutes; a smoke test")
    parser.add_argument("--workspace", help="a built workspace (default: workspaces/real, or a quick sample build)")
    parser.add_argument("--out", help="Markdown file whose sections are rewritten (default: docs/benchmarks.md; "
                                      "with --quick a new file in a temporary folder)")
    parser.add_argument("--figures", help="folder for the PNG figures (default: beside --out, in figures/)")
    parser.add_argument("--resamples", type=int, default=None, help="randomization-test resamples")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    out = Path(args.out) if args.out else (scratch / "benchmarks.md" if args.quick else ROOT / "docs" / "benchmarks.md")
    figures = Path(args.figures) if args.figures else out.parent / "figures"
    if args.workspace:
        ws = Workspace(args.workspace)
    elif args.quick:
        ws = quick_workspace(scratch / "workspace")
    else:
        path = ROOT / "workspaces" / "real"
        if not (path / "manifest.json").is_file():
            build(ROOT / "bench" / "real.toml", path)
        ws = Workspace(path)
    command = "python -m bench.report" + (" --quick" if args.quick else "")
    resamples = args.resamples or (200 if args.quick else 2000)
    body = quality.report(ws, figures, resamples, command)
    replace_section(out, "quality", body)
    speed_body = "\n\n".join(["## Speed, memory and scale", f"```\n{command}\n```", machine_line(),
                              speed.report(ws, args.quick, figures), scale.run(args.quick, scratch)])
    replace_section(out, "speed", speed_body)
    print(f"report written to {out} in {time.perf_counter() - start:.0f} s")
    return out


if __name__ == "__main__":
    main()
