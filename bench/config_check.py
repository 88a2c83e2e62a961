"""How fast a config with mistakes stops: `explorer build` on a config holding every mistake class of the declared
settings (unknown keys, wrong types, out-of-range values, bad names, a qrels source without its split), timed as a
whole process from start to exit (Python start and the imports of torch and peft included).

    python -m bench.config_check
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
MISTAKES = f"""
[trainig]
epochs = 2
[training]
lr = "fast"
[index]
kind = "hsnw"
depth = -5
[routing]
tie = "first"
strategies = ["pilot-men"]
tau = 0
[[routing.variants]]
name = "base"
router = "pilot-mean"
[evaluation]
measures = ["ndcg@10"]
reference = "pilot_mean"
[[datasets]]
name = "glossary"
path = "{SAMPLE / 'glossary'}"
train_spilt = "train"
ignore_identical_id = true
[[datasets]]
name = "../../escape"
path = "{SAMPLE / 'pycode'}"
[[experts]]
name = "glossary"
epoch = 7
r = "eight"
sources = [{{dataset = "glossary", source = "qrels"}}]
"""


def _run(config: Path, out: Path) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "explorer.cli", "build", str(config), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - t, proc.returncode, proc.stderr


def main(runs: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mistakes.toml"
        config.write_text(f'cache_dir = "{Path(tmp) / "cache"}"\n' + MISTAKES)
        results = [_run(config, Path(tmp) / "ws") for _ in range(runs)]
        times = sorted(r[0] for r in results)
        codes = {r[1] for r in results}
        problems = results[0][2].count("\n  - ")
        wrote = sorted(p.name for p in Path(tmp).iterdir())
    print(f"a config with {problems} mistakes: exit status {sorted(codes)}, stopped after "
          f"min {times[0]:.2f} s / median {statistics.median(times):.2f} s / max {times[-1]:.2f} s "
          f"({runs} runs, whole process incl. Python start and imports; {os.cpu_count()} cores); "
          f"files in its folder afterwards: {wrote}")


if __name__ == "__main__":
    main()
