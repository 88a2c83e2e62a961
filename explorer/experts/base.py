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
from typing import Iterator, Mapping

import torch

EXPERT_KINDS: dict[str, type["ExpertKind"]] = {}
# Several adapters (and kinds) in one model is the design, not an accident; BERT's token types are all 0 anyway.
warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
warnings.filterwarnings("ignore", message="You are trying to modify a model with PEFT for a second time")
warnings.filterwarnings("ignore", message="Token type ids are not supported for parameter efficient tuning")


def register_kind(cls: type["ExpertKind"]) -> type["ExpertKind"]:
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


def read_adapter_folder(folder: Path, peft_type: str, kind: str) -> dict:
    """Check a peft adapter folder before anything is loaded: its config is JSON of the expected peft type and its
    weights are safetensors (a pickle, adapter_model.bin, is never loaded). Returns the raw config."""
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(f"{folder}: no adapter_config.json (fix: point to a peft adapter folder)")
    if not (folder / "adapter_model.safetensors").is_file():
        why = ("only adapter_model.bin, a pickle, which is never loaded"
               if (folder / "adapter_model.bin").exists() else "no adapter_model.safetensors")
        raise AdapterError(f"{folder}: {why} (fix: save the adapter with safe_serialization=True)")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterError(f"{config_path}: not valid JSON ({err}) (fix: re-save the adapter config)") from err
    if raw.get("peft_type", peft_type) != peft_type:
        raise AdapterError(f"{config_path}: peft_type {raw.get('peft_type')!r} is not {peft_type} "
                           f"(fix: use kind = \"{kind}\" only for {peft_type} adapters)")
    return raw


class ExpertKind:
    """One way of specialising the query side of the base encoder. `transformer` is the base transformer (a
    Hugging Face model); `holder` is the sentence-transformers module that calls it, for kinds that must wrap it."""

    name: str = ""
    description: str = ""
    mixable: bool = False
    encodes_itself: bool = False  # has its own query encoder (ERA): Encoder.encode hands the texts to its encode()
    trains_itself: bool = False  # has its own training (ERA: alignment, then the labelled pairs): calls fit()
    default_lr: float | None = None  # None: the training config's lr

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


