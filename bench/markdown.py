"""Small Markdown writers shared by the benchmark reports (GitHub tables, the machine line, generated sections)."""

from __future__ import annotations

import os
import platform
import re
from datetime import date
from pathlib import Path


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A GitHub Markdown table; `align` is one character per column: l, r or c (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    """Cores, memory, platform, load and date: every figure carries the machine it was measured on."""
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, AttributeError):
        pass
    import torch

    return (f"Machine: {os.cpu_count()} cores ({platform.machine()}){mem}, CPU only, torch {torch.__version__}, "
            f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f} at start (timings on two "
            f"cores swing with other work). Date: {date.today().isoformat()}.")


def replace_section(doc: Path, name: str, body: str) -> None:
    """Write `body` between `<!-- name:start -->` and `<!-- name:end -->` in `doc` (appended if absent), so a
    benchmark command regenerates its own section of docs/benchmarks.md and nothing else."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")
