"""A router is one file (issue 24): a module placed in explorer/routing/, editing no other file, appears in
`explorer settings` (its declared setting), in the build's workspace, in every page's data and in the CLI. Done in a
subprocess on a copy of the package, so the source tree and this process's registries stay as they are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.pages import PAGES
from tests.conftest import two_domain_config

ROOT = Path(__file__).resolve().parents[1]
ROUTER = '''"""A router dropped into the package by tests/test_dropin.py."""

import numpy as np

from ..settings import Param
from .base import Router, register


@register
class DroppedIn(Router):
    name = "dropped-in-first"
    description = "test router: always the first candidate"
    family = "baseline"
    params = (Param("dropped_in_pick", int, 0, "which candidate position it picks", min=0, max=10),)

    def score(self, ctx, emb):
        out = np.full((len(emb), len(ctx.encoders)), np.nan)
        out[:, ctx.candidates[int(ctx.param("dropped_in_pick"))]] = 1.0
        return out
'''


def _run(args: list[str], package: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(package), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", "import sys; from explorer.cli import main; sys.exit(main())", *args],
                          env=env, capture_output=True, text=True, timeout=900, cwd=package)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_a_router_module_dropped_into_the_package_appears_everywhere(tmp_path, trains):
    package = tmp_path / "pkg"
    shutil.copytree(ROOT / "explorer", package / "explorer", ignore=shutil.ignore_patterns("__pycache__"))
    (package / "explorer" / "routing" / "dropped_in.py").write_text(ROUTER)
    assert "dropped_in_pick" in _run(["settings"], package)
    config = two_domain_config(tmp_path / "dropin.toml", tmp_path / "cache", "[routing]\ndropped_in_pick = 1\n")
    _run(["build", str(config), "--out", str(tmp_path / "ws"), "--quiet"], package)
    assert "dropped-in-first" in _run(["eval", str(tmp_path / "ws")], package)
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    shown = [s["name"] for s in manifest["strategies"] if s["name"] not in manifest["encoders"]]
    for key, page in PAGES.items():
        params = ["--param", "strategy=dropped-in-first"] if key != "playground" and "strategy" in {
            p.name for p in page.params} else []
        text = json.dumps(json.loads(_run(["view", key, str(tmp_path / "ws"), "--json", *params], package)))
        # every page that shows strategies shows the dropped-in one (Complementarity shows encoders only)
        assert "dropped-in-first" in text or not any(f'"{s}"' in text for s in shown), key
    assert manifest["routing"]["dropped_in_pick"] == 1  # its declared setting, checked and recorded
    assert not (ROOT / "explorer" / "routing" / "dropped_in.py").exists()
