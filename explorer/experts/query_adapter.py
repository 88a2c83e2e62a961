"""Query-adapter experts (ERA): a different, stronger query encoder plus a linear map into the base document space.

Documents stay in the base model's index; only queries go through the other encoder and the map. Training is two
stages on precomputed embeddings, so it is cheap once the texts are encoded: (1) alignment on identical texts (corpus
passages embedded by both encoders; least squares for "mse", gradient steps for "cosine"), (2) supervised
adaptation on labelled pairs with the same contrastive loss as the other experts. `stages` picks
"alignment-only", "labels-only" or "both".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .base import AdapterError, ExpertKind, read_adapter_folder, register_kind

PEFT_TYPE = "ERA_QUERY_ADAPTER"
STAGES = ("alignment-only", "labels-only", "both")
MPNET = "all-mpnet-base-v2"
MODELS_DIR = Path(os.environ.get("EXPLORER_MODELS", Path(__file__).resolve().parents[2] / ".models"))


def load_query_encoder(spec: str):
    """A sentence-transformers query encoder from a name, a folder, or "bundled:layers=N,pooling=cls": the bundled
    MiniLM cut to N layers with another pooling, a second small encoder for tests and the sample."""
    from sentence_transformers import SentenceTransformer

    from ..encoders import resolve_base

    if spec == "bundled" or spec.startswith("bundled:"):
        opts = dict(part.split("=", 1) for part in spec.partition(":")[2].split(",") if part)
        model = SentenceTransformer(resolve_base("bundled"), device="cpu")
        layers = int(opts.get("layers", 6))
        model[0].auto_model.encoder.layer = model[0].auto_model.encoder.layer[:layers]
        model[0].auto_model.config.num_hidden_layers = layers
        model[1].pooling_mode = opts.get("pooling", "mean")
        return model
    if spec == MPNET:
        folder = MODELS_DIR / MPNET
        if not (folder / "modules.json").is_file():
            raise AdapterError(f"query encoder {MPNET!r} is not installed in {folder} (fix: run `make mpnet`, which "
                               "installs its five PyPI parts and unpacks them there; it is an optional 420 MB step)")
        spec = str(folder)
    return SentenceTransformer(spec, device="cpu")


class QueryAdapter(torch.nn.Module):
    def __init__(self, encoder_spec: str, model, out_dim: int):
        super().__init__()
        self.encoder_spec = encoder_spec
        self.model = model
        self.map = torch.nn.Linear(model.get_embedding_dimension(), out_dim, bias=False)

    def project(self, q: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.map(q), dim=-1)


@register_kind
class QueryAdapterKind(ExpertKind):
    name = "query-adapter"
    description = "ERA: a stronger query encoder with a linear map into the base document space"
    mixable = False
    encodes_itself = True
    trains_itself = True
    default_lr = 1e-3
    defaults = {"encoder": MPNET, "stages": "both", "align_passages": 500, "align_loss": "mse"}

    def __init__(self, transformer, holder=None):
        super().__init__(transformer, holder)
        self.adapters: dict[str, QueryAdapter] = {}
        self._models: dict[str, object] = {}  # one loaded query encoder per spec, shared by its adapters
        self._embedded: dict[tuple, torch.Tensor] = {}  # (spec, texts) -> embeddings: adapters of one encoder
        # (ERA's stage options side by side) encode the same passages and queries once

    def _model(self, spec: str):
        if spec not in self._models:
            model = load_query_encoder(spec)
            model.max_seq_length = min(model.max_seq_length or 256, 256)  # the base model reads 256 tokens too
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._models[spec] = model
        return self._models[spec]

    def add(self, expert: str, params: Mapping) -> int:
        p = {**self.defaults, **params}
        if p["stages"] not in STAGES:
            raise ValueError(f"stages = {p['stages']!r}; choose one of {', '.join(STAGES)}")
        self.adapters[expert] = QueryAdapter(p["encoder"], self._model(p["encoder"]), self.transformer.config.hidden_size)
        return sum(t.numel() for t in self.trainable_parameters(expert))

    def load(self, expert: str, folder: Path) -> int:
        folder = Path(folder)
        raw = read_adapter_folder(folder, PEFT_TYPE, self.name)
        adapter = QueryAdapter(raw["query_encoder"], self._model(raw["query_encoder"]), int(raw["out_dim"]))
        weight = load_file(str(folder / "adapter_model.safetensors")).get("map.weight")
        if weight is None or tuple(weight.shape) != tuple(adapter.map.weight.shape):
            raise AdapterError(f"{folder}: the map does not fit encoder {raw['query_encoder']!r} and this base model "
                               f"(expected {tuple(adapter.map.weight.shape)}) (fix: retrain the query adapter)")
        if int(raw["out_dim"]) != self.transformer.config.hidden_size:
            raise AdapterError(f"{folder}: maps into {raw['out_dim']} dimensions, the base model has "
                               f"{self.transformer.config.hidden_size} (fix: train it on this base encoder)")
        with torch.no_grad():
            adapter.map.weight.copy_(weight)
        self.adapters[expert] = adapter
        return weight.numel()

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        a = self.adapters[expert]
        config = {"peft_type": PEFT_TYPE, "query_encoder": a.encoder_spec, "in_dim": a.map.in_features,
                  "out_dim": a.map.out_features}
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        save_file({"map.weight": a.map.weight.detach().contiguous()}, str(folder / "adapter_model.safetensors"))

    def settings(self, expert: str) -> dict:
        a = self.adapters[expert]
        return {"encoder": a.encoder_spec, "encoder_dim": a.map.in_features, **getattr(a, "trained_with", {})}

    def trainable_parameters(self, expert: str) -> list[torch.nn.Parameter]:
        return list(self.adapters[expert].map.parameters())

    def _embed(self, spec: str, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """The query encoder's normalised embeddings; large inputs are kept (a few entries) for the next adapter of
        the same encoder. Cloned: sentence-transformers returns inference tensors, which autograd refuses."""
        key = (spec, hash(tuple(texts)))
        if key in self._embedded:
            return self._embedded[key]
        emb = self._models[spec].encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                                        normalize_embeddings=True).clone()
        if len(texts) > 64:
            while len(self._embedded) >= 4:
                self._embedded.pop(next(iter(self._embedded)))
            self._embedded[key] = emb
        return emb

    def encode(self, expert: str, texts: Sequence[str], batch_size: int) -> np.ndarray:
        a = self.adapters[expert]
        q = self._embed(a.encoder_spec, texts, batch_size)
        with torch.inference_mode():
            return a.project(q).numpy().astype(np.float32)

    def fit(self, expert: str, query_texts: Sequence[str], targets: Sequence[int], docs: torch.Tensor,
            align_texts: Sequence[str], align_emb: np.ndarray, params: Mapping,
            progress: Callable[[int, int, float], None] | None = None) -> list[float]:
        """Train the map: alignment on (align_texts, align_emb), then the labelled pairs against `docs`."""
        p = {**self.defaults, **params}
        a = self.adapters[expert]
        a.trained_with = {"stages": p["stages"], "align_loss": p["align_loss"], "align_passages": len(align_texts),
                          "adapter_lr": float(p.get("adapter_lr", self.default_lr))}
        curve: list[float] = []
        aq = self._embed(a.encoder_spec, align_texts) if p["stages"] != "labels-only" and len(align_texts) else None
        qq = self._embed(a.encoder_spec, query_texts) if p["stages"] != "alignment-only" and len(query_texts) else None
        target = torch.from_numpy(np.asarray(align_emb, dtype=np.float32))
        if aq is not None and p["align_loss"] == "mse":
            # least squares with a small ridge: W = argmin ||aq W^T - target||^2
            gram = aq.T @ aq + 1e-3 * torch.eye(aq.shape[1])
            with torch.no_grad():
                a.map.weight.copy_(torch.linalg.solve(gram, aq.T @ target).T)
                curve.append(float(((aq @ a.map.weight.T - target) ** 2).sum(dim=1).mean()))
        elif aq is not None:
            curve += _steps(a.map, lambda _: 1 - (a.project(aq) * target).sum(dim=1).mean(), 300, 1e-2, progress)
        a.trained_with["alignment_steps"] = len(curve)  # the curve's first part; the labelled pairs follow
        if qq is not None:
            gold = torch.as_tensor(list(targets))
            tau, batch, epochs = float(p["temperature"]), int(p["batch_size"]), int(p["epochs"])
            order = torch.Generator().manual_seed(int(p["seed"]))

            def loss(step):
                idx = torch.randint(len(qq), (min(batch, len(qq)),), generator=order)
                return torch.nn.functional.cross_entropy(a.project(qq[idx]) @ docs.T / tau, gold[idx])

            steps = max(1, epochs * -(-len(qq) // batch))
            curve += _steps(a.map, loss, steps, float(p.get("adapter_lr", self.default_lr)), progress)
        return curve


def _steps(module: torch.nn.Module, loss_fn, steps: int, lr: float, progress) -> list[float]:
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    curve = []
    for step in range(steps):
        loss = loss_fn(step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        curve.append(float(loss.detach()))
        if progress:
            progress(step + 1, steps, curve[-1])
    return curve
