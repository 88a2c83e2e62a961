"""Files, nothing project-specific: copies that never share storage, and content checksums of files and folders.

A workspace must never share writable storage with the build cache (a hard link let a workspace's file rewrite a
cache entry), so files are copied: a reflink (a copy-on-write clone) where the file system offers one, else bytes.
A cache entry carries a checksum of its content, written when it is stored and compared when it is read, so an
entry changed behind the cache's back is found and computed again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FICLONE = 0x40049409  # ioctl(dst, FICLONE, src): Linux's reflink (btrfs, xfs, overlayfs over them)
HASH = "sha256"
BLOCK = 1 << 20


@contextmanager
def exclusive(lock: Path | str) -> Iterator[None]:
    """Holds an flock on the file `lock` (created if missing) while the block runs: one holder at a time."""
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst`: a reflink where the file system makes one, else the bytes (never a hard link)."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def copy_tree(src: Path, dst: Path) -> None:
    """A folder copied file by file with `copy_file`."""
    shutil.copytree(src, dst, copy_function=lambda s, d: copy_file(Path(s), Path(d)))


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, read a block at a time."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, HASH).hexdigest()


def content_digests(entry: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of `entry` (a file: its own name), links not followed."""
    entry = Path(entry)
    if entry.is_file():
        return {entry.name: file_digest(entry)}
    out = {}
    for path in sorted(entry.rglob("*")):
        if path.is_symlink() or not path.is_file():
            if path.is_symlink():
                out[str(path.relative_to(entry))] = "link"
            continue
        out[str(path.relative_to(entry))] = file_digest(path)
    return out


def checksum_path(entry: Path) -> Path:
    """The sidecar beside a cache entry that holds its checksum."""
    return Path(entry).with_name(Path(entry).name + ".sum")


def write_checksum(entry: Path) -> None:
    """Record what `entry` holds now (written atomically, beside it)."""
    from .workspace import atomic_write

    body = json.dumps({"algorithm": HASH, "files": content_digests(entry)}, sort_keys=True)
    atomic_write(checksum_path(entry), lambda tmp: tmp.write_text(body, encoding="utf-8"))


def checksum_problem(entry: Path) -> str | None:
    """Why `entry` no longer holds what was stored (no checksum, an unreadable one, a file changed, added or
    missing), or None when every byte matches."""
    try:
        recorded = json.loads(checksum_path(entry).read_text(encoding="utf-8"))
        files = recorded["files"]
        if recorded.get("algorithm") != HASH or not isinstance(files, dict):
            raise ValueError("not a checksum")
    except FileNotFoundError:
        return "it has no checksum"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "its checksum cannot be read"
    try:
        now = content_digests(entry)
    except OSError as err:
        return f"it cannot be read ({err.strerror or err})"
    changed = sorted(set(now) ^ set(files) | {f for f in now if files.get(f) != now[f]})
    if changed:
        return f"its content does not match its checksum ({', '.join(changed[:3])} changed)"
    return None


def remove_entry(entry: Path) -> None:
    """Delete a cache entry (a file or a folder) and its checksum."""
    entry = Path(entry)
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
    checksum_path(entry).unlink(missing_ok=True)


def nearest_existing(path: Path) -> Path:
    """`path`, or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
