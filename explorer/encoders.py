"""The base sentence encoder and its query-side experts, behind one lock.

All experts live inside one base model (see experts.py). Switching experts changes module state, so every encode
configures the adapters and runs the forward pass while holding the encoder's lock: concurrent browser sessions
asking for different experts get exactly the serial results.
"""

from __future__ import annotations

import contextlib
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence, Union

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from .base_model import BUNDLED, PRECISIONS
from .model_folders import load_model
from .experts import EXPERT_KINDS, AdapterError, ExpertKind, switch_adapters
from .names import NAME as EXPERT_NAME

# Inputs up to this size go straight through the model: SentenceTransformer.encode() sets eval mode and resolves
# the device on every call, walking every module (~8 ms a query with ten experts loaded); bigger inputs keep its
# length-sorted batching.
SMALL_BATCH = 8
# None = the base model; a name = one expert; a mapping = a weighted mixture of experts (DAR's merge).
ExpertChoice = Union[None, str, Mapping[str, float]]


class Encoder:
    """A frozen sentence-transformers model with any number of query-side experts; thread-safe."""

    def __init__(self, base: str = BUNDLED, device: str = "cpu", max_seq_length: int | None = 256,
                 batch_size: int = 64, precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision = {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.base = base
        self.precision = precision
        self.model = load_model(base, device)  # the folder rule (explorer.model_folders), checked before it loads
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._transformer = self.model[0].auto_model
        self.batch_size = batch_size
        self.lock = threading.RLock()
        self.experts: dict[str, ExpertKind] = {}
        self._kinds: dict[str, ExpertKind] = {}

    @property
    def transformer(self) -> torch.nn.Module:
        """The base transformer (a kind may wrap it while one of its experts is active)."""
        return self._transformer

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def _kind(self, kind: str) -> ExpertKind:
        if kind not in EXPERT_KINDS:
            raise AdapterError(f"unknown expert kind {kind!r} (fix: use one of {', '.join(EXPERT_KINDS)})")
        if kind not in self._kinds:
            self._kinds[kind] = EXPERT_KINDS[kind](self.transformer, self.model[0])
        return self._kinds[kind]

    def add_expert(self, name: str, kind: str = "lora", params: Mapping | None = None) -> int:
        """Add a fresh, trainable expert; returns its parameter count."""
        with self.lock:
            self._check_new(name)
            handler = self._kind(kind)
            count = handler.add(name, params or {})
            self.experts[name] = handler
            self.model.eval()  # new adapter modules (LoRA dropout) start in training mode
            return count

    def load_expert(self, name: str, folder: str | Path, kind: str = "lora") -> int:
        """Load an expert saved by us or trained elsewhere on the same base; returns its parameter count."""
        with self.lock:
            self._check_new(name)
            handler = self._kind(kind)
            count = handler.load(name, Path(folder))
            self.experts[name] = handler
            self.model.eval()  # new adapter modules (LoRA dropout) start in training mode
            return count

    def save_expert(self, name: str, folder: str | Path) -> None:
        with self.lock:
            self.experts[name].save(name, Path(folder))

    def _tuner_layers(self) -> list:
        """Every adapter layer of any kind, found once per set of loaded experts (not on every query)."""
        key = tuple(self.experts)
        if getattr(self, "_tuners", (None,))[0] != key:
            from peft.tuners.tuners_utils import BaseTunerLayer

            self._tuners = (key, [m for m in self.transformer.modules() if isinstance(m, BaseTunerLayer)])
        return self._tuners[1]

    def _check_new(self, name: str) -> None:
        if not EXPERT_NAME.fullmatch(name):
            raise ValueError(f"expert name {name!r}: use letters, digits, '-' and '_' only (it names a folder and "
                             "a module inside the model)")
        if name in self.experts or name == "base":
            raise ValueError(f"an expert named {name!r} is already loaded (or reserved); choose another name")

    @contextmanager
    def using(self, choice: ExpertChoice) -> Iterator[None]:
        """Hold the lock with the adapters set for `choice` (base, one expert, or a weighted mixture)."""
        with self.lock:
            weights = self._weights(choice)
            for layer in self._tuner_layers():  # every injected adapter off; the chosen kind switches its own on
                switch_adapters(layer, None)
            if not weights:
                yield
                return
            kinds = {id(self.experts[n]) for n in weights}
            if len(kinds) > 1:
                raise ValueError("a mixture must use experts of one kind")
            handler = self.experts[next(iter(weights))]
            if len(weights) > 1 and not handler.mixable:
                raise ValueError(f"experts of kind {handler.name!r} cannot be mixed")
            with handler.active(weights):
                yield

    def _weights(self, choice: ExpertChoice) -> dict[str, float]:
        if choice is None or choice == "base":
            return {}
        if isinstance(choice, str):
            choice = {choice: 1.0}
        unknown = [n for n in choice if n not in self.experts]
        if unknown:
            raise KeyError(f"unknown expert(s) {unknown}; loaded: {list(self.experts)}")
        return {n: float(w) for n, w in choice.items() if w}

    def encode(self, texts: Sequence[str], expert: ExpertChoice = None, batch_size: int | None = None,
               show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 embeddings of `texts` under the base, one expert, or a mixture."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        handler = self.experts.get(expert) if isinstance(expert, str) else None
        if handler is not None and handler.encodes_itself:  # an expert with its own query encoder (ERA)
            with self.lock:
                return handler.encode(expert, texts, batch_size or self.batch_size)
        with self.using(expert), torch.inference_mode(), self._autocast():
            if len(texts) <= SMALL_BATCH:  # a live query: skip encode()'s per-call walks over every module
                return self.forward_train(texts).numpy().astype(np.float32)
            emb = self.model.encode(list(texts), batch_size=batch_size or self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=show_progress)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _autocast(self):
        """Half precision for an embedding pass when asked for (torch autocast keeps the reductions in float32);
        float32 otherwise. Training never runs under it."""
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=torch.float16)

    def encode_on(self, texts: Sequence[str], devices: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Base-model embeddings of `texts` on several devices at once (sentence-transformers' multi-process pool:
        one process per device, e.g. every GPU of the machine), in order. Only the base model: experts are never
        copied into the pool, so this serves the corpus pass before any expert is loaded."""
        if self.experts:
            raise RuntimeError("encode_on runs the base model only; it is for the corpus pass, before the experts")
        pool = self.model.start_multi_process_pool(target_devices=list(devices))
        try:
            emb = self.model.encode(list(texts), pool=pool, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=show_progress)
        finally:
            self.model.stop_multi_process_pool(pool)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def forward_train(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised embeddings of one batch, with gradients unless called under inference mode (training the
        active expert; the caller holds `using`)."""
        features = self.model.preprocess(list(texts))
        features = {k: v.to(self.model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        out = self.model(features)["sentence_embedding"]
        return torch.nn.functional.normalize(out, dim=-1)

