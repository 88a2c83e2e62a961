"""Expert kinds: how an expert is created, loaded, saved and switched on inside the shared base model.

An expert kind is one small class registered in `EXPERT_KINDS` (peft's tuners/ layout: one module per kind).
Experts of every kind live inside the one base model of an `Encoder`, so eight experts cost a few MB, not eight
models; the Encoder's lock makes switching between them safe across threads.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping


from ..capabilities import ALL as CAPABILITIES, MIXING, OWN_ENCODER, TRAINS_ITSELF
from ..lazy import Lazy
from ..settings import Param, defaults

torch = Lazy("torch")

EXPERT_KINDS: dict[str, type["ExpertKind"]] = {}
# Several adapters (and kinds) in one model is the design, not an accident; BERT's token types are all 0 anyway.
warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
warnings.filterwarnings("ignore", message="You are trying to modify a model with PEFT for a second time")
warnings.filterwarnings("ignore", message="Token type ids are not supported for parameter efficient tuning")


def register_kind(cls: type["ExpertKind"]) -> type["ExpertKind"]:
    """Register an expert kind under its name; its declared `params` give its defaults. Names are unique."""
    if cls.name in EXPERT_KINDS and EXPERT_KINDS[cls.name] is not cls:
        raise ValueError(f"an expert kind named {cls.name!r} is already registered")
    unknown = sorted(set(cls.capabilities) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"expert kind {cls.name!r} declares unknown capabilities {unknown}; known: {CAPABILITIES}")
    cls.defaults = defaults(cls.params)
    EXPERT_KINDS[cls.name] = cls
    return cls


def switch_adapters(layer, names: list[str] | None) -> None:
    """Set which adapters a peft layer applies (None: none). peft's own set_adapter/enable_adapters also walk every
    parameter to reset requires_grad, ~10 ms per query on this model; training sets requires_grad itself."""
    layer._disable_adapters = names is None
    if names is not None:
        layer._active_adapter = list(names)


class AdapterError(ValueError):
    """An adapter folder cannot be used as an expert; the message names the folder and the fix."""


# Keys peft writes into every adapter_config.json that say where it came from; never acted on.
PEFT_METADATA = frozenset({"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode",
                           "peft_version", "auto_mapping", "megatron_core"})
MAX_CONFIG_BYTES = 1 << 20


def neutral(value) -> bool:
    """A value that switches nothing on: peft writes every option it knows, mostly at these."""
    if isinstance(value, dict):
        return all(neutral(v) for v in value.values())
    return value in (None, False, "", "none", [], {})


def read_adapter_folder(folder: Path, peft_type: str, kind: str) -> dict:
    """Check a peft adapter folder before anything is loaded: its config is a JSON object of the expected peft type
    and its weights are safetensors (a pickle, adapter_model.bin, is never loaded). Returns the raw config."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    try:
        if not folder.is_dir():
            raise AdapterError(f"{folder}: not a folder (fix: point to a peft adapter folder)")
        if not config_path.is_file():
            raise AdapterError(f"{folder}: no adapter_config.json (fix: point to a peft adapter folder)")
        if not (folder / "adapter_model.safetensors").is_file():
            why = ("only adapter_model.bin, a pickle, which is never loaded"
                   if (folder / "adapter_model.bin").exists() else "no adapter_model.safetensors")
            raise AdapterError(f"{folder}: {why} (fix: save the adapter with safe_serialization=True)")
        if config_path.stat().st_size > MAX_CONFIG_BYTES:
            raise AdapterError(f"{config_path}: larger than 1 MB, not an adapter config (fix: re-save the adapter)")
        raw = json.loads(config_path.read_text(encoding="utf-8-sig"))
    except OSError as err:
        raise AdapterError(f"{folder}: cannot be read ({err.strerror or err}) (fix: check the folder and its "
                           "permissions)") from err
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise AdapterError(f"{config_path}: not valid JSON ({err}) (fix: re-save the adapter config)") from err
    if not isinstance(raw, dict):
        raise AdapterError(f"{config_path}: a JSON {type(raw).__name__}, not an object (fix: re-save the adapter "
                           "config)")
    if raw.get("peft_type", peft_type) != peft_type:
        raise AdapterError(f"{config_path}: peft_type {raw.get('peft_type')!r} is not {peft_type} "
                           f"(fix: use kind = \"{kind}\" only for {peft_type} adapters)")
    return raw


def check_adapter_keys(raw: Mapping, config_path: Path, kind: str, supported: Mapping[str, Callable],
                       refused: Mapping[str, str], inert: frozenset = frozenset()) -> dict:
    """Accept only what the kind supports. `supported` maps a key to a check that returns an error text or None;
    `refused` maps options that alter the base model (or that the kind cannot honour) to why; `inert` keys only
    matter beside an option that is refused anyway. Any other key must be at a neutral value (peft writes all its
    options). Returns the supported keys' values."""
    out = {}
    for key, value in raw.items():
        if key in supported:
            why = supported[key](value)
            if why:
                raise AdapterError(f"{config_path}: {key} = {json.dumps(value)[:80]} is refused: {why} (fix: re-save "
                                   f"the adapter with a supported {key})")
            out[key] = value
        elif key in PEFT_METADATA or key in inert or neutral(value):
            continue
        else:
            why = refused.get(key, f"is not supported by kind {kind!r}")
            raise AdapterError(f"{config_path}: {key} = {json.dumps(value)[:80]} is refused: {why}; loading it could "
                               f"change the shared base model (fix: re-save the adapter without {key})")
    return out


def read_tensors(path: Path, expected: Mapping[str, tuple], rename: Callable[[str], str | None]) -> dict:
    """The tensors of a safetensors file, checked against `expected` shapes from its header before any tensor is
    read (a forged header cannot make us allocate), then checked finite. `rename` maps a stored key to an expected
    key, or None for a key that is not one of this kind's weights (refused)."""
    from safetensors import safe_open

    out = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            for key in keys:
                target = rename(key)
                if target is None or target not in expected:
                    raise AdapterError(f"{path}: holds {key!r}, which is not a weight of this adapter kind "
                                       "(fix: save only the adapter's own weights)")
                shape = tuple(handle.get_slice(key).get_shape())
                if shape != tuple(expected[target]):
                    raise AdapterError(f"{path}: does not fit this base model: {key} has shape {shape}, expected "
                                       f"{tuple(expected[target])} (fix: load adapters trained on the same base "
                                       "encoder with the same settings)")
                out[target] = handle.get_tensor(key)
    except AdapterError:
        raise
    except Exception as err:  # safetensors raises its own error type for a truncated, empty or forged file
        raise AdapterError(f"{path}: not a readable safetensors file ({str(err)[:200]}) (fix: re-save the adapter "
                           "with safe_serialization=True)") from err
    missing = [k for k in expected if k not in out]
    if missing:
        raise AdapterError(f"{path}: does not fit this base model: {len(missing)} tensor(s) missing (e.g. "
                           f"{missing[0]}) (fix: load adapters trained on the same base encoder)")
    for key, tensor in out.items():
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise AdapterError(f"{path}: tensor {key} is not finite floating point (fix: retrain or re-save the "
                               "adapter)")
    return out


class ExpertKind:
    """One way of specialising the query side of the base encoder. `transformer` is the base transformer (a
    Hugging Face model); `holder` is the sentence-transformers module that calls it, for kinds that must wrap it."""

    name: str = ""
    description: str = ""
    # what the kind can do (explorer.capabilities): routers, the analysis and the pages ask for these, never a name
    capabilities: frozenset[str] = frozenset()
    default_lr: float | None = None  # None: the training config's lr
    params: tuple[Param, ...] = ()  # the kind's own settings in an [[experts]] table (declared once, checked early)
    defaults: dict = {}  # filled from `params` by register_kind
    # settings whose default has changed, at their former default: the value an expert's cache key leaves out, so
    # an expert trained before keeps its key and one that relies on the new default gets a new one
    key_baseline: dict = {}
    # raised when the kind's training changes what it produces from the same settings: part of the cache key from 1
    key_version: int = 0

    @classmethod
    def can(cls, capability: str) -> bool:
        return capability in cls.capabilities

    @property
    def mixable(self) -> bool:
        """Several experts of this kind can be active at once, weighted."""
        return any(c in self.capabilities for c in MIXING)

    @property
    def encodes_itself(self) -> bool:
        """Has its own query encoder (ERA): Encoder.encode hands the texts to its encode()."""
        return OWN_ENCODER in self.capabilities

    @property
    def trains_itself(self) -> bool:
        """Has its own training (ERA: alignment, then the labelled pairs): training calls its fit()."""
        return TRAINS_ITSELF in self.capabilities

    @classmethod
    def check_folder(cls, folder: Path) -> dict:
        """Validate an adapter folder of this kind without a model (build configs check it before any model
        loads); raises AdapterError. Returns the accepted settings."""
        raise AdapterError(f"{folder}: kind {cls.name!r} cannot load adapter folders (fix: train it instead)")

    @classmethod
    def check_settings(cls, params: Mapping) -> list[tuple[str, str, str]]:
        """(key, problem, fix) for settings that pass their declared type and range but still cannot work (an
        encoder that is not installed, say): checked with the config, before any model loads."""
        return []

    def __init__(self, transformer: torch.nn.Module, holder: torch.nn.Module | None = None):
        self.transformer = transformer
        self.holder = holder

    def add(self, expert: str, params: Mapping) -> int:  # returns the number of trainable parameters
        raise NotImplementedError

    def load(self, expert: str, folder: Path) -> int:
        raise NotImplementedError

    def save(self, expert: str, folder: Path) -> None:
        raise NotImplementedError

    def trainable_parameters(self, expert: str) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    def settings(self, expert: str) -> dict:
        """What this expert was built with, for its card."""
        return {}

    def fit(self, expert: str, query_texts, targets, docs: torch.Tensor, align_texts, align_emb, params: Mapping,
            progress=None) -> list[float]:
        """Train the expert itself (kinds with `trains_itself`); returns the loss curve."""
        raise NotImplementedError

    @contextmanager
    def active(self, weights: Mapping[str, float]) -> Iterator[None]:
        raise NotImplementedError
        yield


