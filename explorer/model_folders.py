"""Is a folder a sentence-transformers model that is safe to load? For model names that come from someone else's
file (a workspace's base model, an adapter's query encoder).

sentence-transformers imports the class that each entry of `modules.json` names and calls its `load`, so a folder
may only name sentence-transformers' own modules; weights must be safetensors (a pickled `pytorch_model.bin` is
never loaded).
"""

from __future__ import annotations

import json
from pathlib import Path

PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def model_folder_problem(folder: str | Path) -> str | None:
    """Why `folder` must not be loaded as a sentence-transformers model, or None when it may."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        types = [m["type"] for m in modules]
        files = [p for p in folder.rglob("*") if p.is_file()]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "is not a local sentence-transformers folder (no readable modules.json)"
    if not all(isinstance(t, str) and t.startswith("sentence_transformers.") for t in types):
        return "names modules outside sentence-transformers in its modules.json"
    if not any(p.suffix == ".safetensors" for p in files) and any(p.suffix in PICKLED for p in files):
        return "holds pickled weights only (.bin/.pt), which are never loaded"
    return None
