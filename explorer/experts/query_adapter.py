"""Query-adapter experts (ERA): a different, stronger query encoder plus a linear map into the base document space.

Documents stay in the base model's index; only queries go through the other encoder and the map. Training is two
stages on precomputed embeddings, so it is cheap once the texts are encoded: (1) alignment on identical texts (corpus
passages, and with `align_queries` the expert's training queries, embedded by both encoders; least squares for
"mse", gradient steps for "cosine"), (2) supervised adaptation on labelled pairs with the same contrastive loss as the
other experts. `stages` picks "alignment-only", "labels-only" or "both". With `bias` the map is affine, ERA's setting
(a linear map with bias, then L2 normalisation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..base_model import resolve_base
from ..model_folders import MODEL_FIX, MODELS_DIR, MPNET, ModelFolderError, load_model, model_problem
from ..capabilities import OWN_ENCODER, TRAINS_ITSELF
from ..lazy import Lazy
from ..settings import Param
from .base import AdapterError, ExpertKind, check_adapter_keys, read_adapter_folder, read_tensors, register_kind

torch = Lazy("torch")
safetensors_torch = Lazy("safetensors.torch")

PEFT_TYPE = "ERA_QUERY_ADAPTER"
STAGES = ("alignment-only", "labels-only", "both")


BUNDLED_OPTIONS = {"layers": tuple(str(n) for n in range(1, 7)), "pooling": ("mean", "cls", "max")}


def _bundled_options(spec: str) -> dict:
    parts = [p for p in spec.partition(":")[2].split(",") if p]
    opts = dict(p.split("=", 1) for p in parts if "=" in p)
    if len(opts) != len(parts) or any(k not in BUNDLED_OPTIONS or v not in BUNDLED_OPTIONS[k] for k, v in opts.items()):
        raise ValueError(spec)
    return opts


def encoder_spec_problem(spec) -> str | None:
    """Why `spec` cannot name a query encoder, or None: the bundled encoder (cut with `bundled:layers=N,...`), or
    any model the project's one rule allows (explorer.model_folders: all-mpnet-base-v2 or a safe local folder; a
    hub name is refused, nothing is downloaded), whether a config or an adapter folder from elsewhere names it."""
    if not isinstance(spec, str) or not spec:
        return "is not an encoder name"
    if spec == "bundled" or spec.startswith("bundled:"):
        try:
            _bundled_options(spec)
        except ValueError:
            return "is not bundled[:layers=1..6][,pooling=mean|cls|max]"
        return None
    why = model_problem(spec)
    return f"{why} (fix: {MODEL_FIX})" if why else None


def load_query_encoder(spec: str):
    """A sentence-transformers query encoder from a name, a folder, or "bundled:layers=N,pooling=cls": the bundled
    MiniLM cut to N layers with another pooling, a second small encoder for tests and the sample."""
    from sentence_transformers import SentenceTransformer

    if spec == "bundled" or spec.startswith("bundled:"):
        opts = _bundled_options(spec)
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
    try:
        return load_model(spec)  # the project's one rule, checked again where the model loads
    except ModelFolderError as err:
        raise AdapterError(f"query encoder: {err}") from err


class QueryAdapter:
    """ERA's adapter: a stronger query encoder (frozen) and the trained linear map into the base document space."""

    def __init__(self, encoder_spec: str, model, out_dim: int, bias: bool = False):
        self.encoder_spec = encoder_spec
        self.model = model
        self.map = torch.nn.Linear(model.get_embedding_dimension(), out_dim, bias=bias)

    def project(self, q: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.map(q), dim=-1)


@register_kind
class QueryAdapterKind(ExpertKind):
    name = "query-adapter"
    description = "ERA: a stronger query encoder with a linear map into the base document space"
    capabilities = frozenset({OWN_ENCODER, TRAINS_ITSELF})
    default_lr = 1e-3
    params = (
        Param("encoder", str, MPNET, 'the stronger query encoder: "all-mpnet-base-v2" (make mpnet), '
              '"bundled:layers=N,pooling=mean|cls|max", or a sentence-transformers folder'),
        Param("stages", str, "both", "ERA's training stages", choices=STAGES),
        Param("align_passages", int, 500, "alignment passages per dataset (identical texts under both encoders)",
              min=1, max=1_000_000),
        Param("align_loss", str, "mse", "alignment loss: least squares or gradient steps on cosine",
              choices=("mse", "cosine")),
        Param("adapter_lr", float, 1e-3, "learning rate of the labelled-pairs stage", above=0, max=1),
        Param("align_queries", bool, False, "also align on the expert's training queries (each once), beside the "
              "passages"),
        Param("bias", bool, False, "an affine map (ERA's linear map with bias) rather than a linear one"),
    )

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
        self.adapters[expert] = QueryAdapter(p["encoder"], self._model(p["encoder"]),
                                             self.transformer.config.hidden_size, bool(p["bias"]))
        return sum(t.numel() for t in self.trainable_parameters(expert))

    @classmethod
    def check_folder(cls, folder: Path) -> dict:
        folder = Path(folder)
        raw = read_adapter_folder(folder, PEFT_TYPE, cls.name)
        config_path = folder / "adapter_config.json"
        accepted = check_adapter_keys(raw, config_path, cls.name, {
            "query_encoder": encoder_spec_problem,
            "in_dim": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536
            else "is not an integer in [1, 65536]",
            "out_dim": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536
            else "is not an integer in [1, 65536]",
            "bias": lambda v: None if isinstance(v, bool) else "is not true or false"}, {})
        missing = [k for k in ("query_encoder", "in_dim", "out_dim") if k not in accepted]
        if missing:
            raise AdapterError(f"{config_path}: no {missing[0]} (fix: save the query adapter with explorer)")
        return accepted

    @classmethod
    def check_settings(cls, params: Mapping) -> list[tuple[str, str, str]]:
        spec = params.get("encoder", cls.defaults["encoder"])
        why = encoder_spec_problem(spec)
        if why:
            message, _, fix = why.rpartition(" (fix: ")
            return [("encoder", f"{spec!r} {message or why}", (fix.rstrip(")") + ", or \"bundled:layers=3\"")
                     if message else 'use "all-mpnet-base-v2", "bundled:layers=3" or a local folder')]
        if spec == MPNET and not (MODELS_DIR / MPNET / "modules.json").is_file():
            return [("encoder", f"{MPNET!r} is not installed in {MODELS_DIR / MPNET}",
                     "run `make mpnet` (an optional 420 MB step), or use encoder = \"bundled:layers=3\"")]
        return []

    def load(self, expert: str, folder: Path) -> int:
        folder = Path(folder)
        s = self.check_folder(folder)
        if s["out_dim"] != self.transformer.config.hidden_size:
            raise AdapterError(f"{folder}: maps into {s['out_dim']} dimensions, the base model has "
                               f"{self.transformer.config.hidden_size} (fix: train it on this base encoder)")
        adapter = QueryAdapter(s["query_encoder"], self._model(s["query_encoder"]), s["out_dim"], s.get("bias", False))
        if adapter.map.in_features != s["in_dim"]:
            raise AdapterError(f"{folder}: in_dim {s['in_dim']} does not match encoder {s['query_encoder']!r} "
                               f"({adapter.map.in_features}) (fix: retrain the query adapter)")
        weights = dict(adapter.map.named_parameters())
        path = folder / "adapter_model.safetensors"
        tensors = read_tensors(path, {f"map.{k}": tuple(w.shape) for k, w in weights.items()}, lambda k: k)
        with torch.no_grad():
            for key, w in weights.items():
                w.copy_(tensors[f"map.{key}"])
        self.adapters[expert] = adapter
        return sum(w.numel() for w in weights.values())

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        a = self.adapters[expert]
        config = {"peft_type": PEFT_TYPE, "query_encoder": a.encoder_spec, "in_dim": a.map.in_features,
                  "out_dim": a.map.out_features, "bias": a.map.bias is not None}
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        safetensors_torch.save_file({f"map.{k}": w.detach().contiguous() for k, w in a.map.named_parameters()},
                                    str(folder / "adapter_model.safetensors"))

    def settings(self, expert: str) -> dict:
        a = self.adapters[expert]
        return {"encoder": a.encoder_spec, "encoder_dim": a.map.in_features, "bias": a.map.bias is not None,
                **getattr(a, "trained_with", {})}

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

    def _embed_both(self, spec: str, align_texts: Sequence[str], query_texts: Sequence[str]):
        """The alignment texts' and the training queries' embeddings (None where there are none), each distinct
        text encoded once: with `align_queries` the training queries are alignment texts too."""
        distinct = list(dict.fromkeys([*align_texts, *query_texts]))
        if not distinct:
            return None, None
        emb, row = self._embed(spec, distinct), {text: i for i, text in enumerate(distinct)}
        return tuple(emb[[row[t] for t in texts]] if len(texts) else None for texts in (align_texts, query_texts))

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
        a.trained_with = {"stages": p["stages"], "align_loss": p["align_loss"], "align_texts": len(align_texts),
                          "adapter_lr": float(p.get("adapter_lr", self.default_lr))}
        aligned, labelled = p["stages"] != "labels-only" and len(align_texts), p["stages"] != "alignment-only"
        aq, qq = self._embed_both(a.encoder_spec, align_texts if aligned else [], query_texts if labelled else [])
        curve = align(a, aq, torch.from_numpy(np.asarray(align_emb, dtype=np.float32)), p, progress)
        a.trained_with["alignment_steps"] = len(curve)  # the curve's first part; the labelled pairs follow
        if qq is not None:
            curve += adapt(a, qq, torch.as_tensor(list(targets)), docs, p, float(p.get("adapter_lr", self.default_lr)),
                           progress)
        return curve


def align(a: QueryAdapter, aq: torch.Tensor | None, target: torch.Tensor, p: Mapping, progress=None) -> list[float]:
    """ERA's first stage on embeddings: the map from the query encoder's embeddings `aq` of the alignment texts to
    their base embeddings `target` (least squares for "mse", cosine steps otherwise). Returns its loss curve."""
    if aq is None:
        return []
    if p["align_loss"] == "mse":
        fit_least_squares(a.map, aq, target)
        with torch.no_grad():
            return [float(((a.map(aq) - target) ** 2).sum(dim=1).mean())]
    return _steps(a.map, lambda _: 1 - (a.project(aq) * target).sum(dim=1).mean(), 300, 1e-2, progress)


def adapt(a: QueryAdapter, qq: torch.Tensor, gold: torch.Tensor, docs: torch.Tensor, p: Mapping, lr: float,
          progress=None) -> list[float]:
    """ERA's second stage on embeddings: contrastive steps on the labelled pairs (query embeddings `qq`, each
    query's document row `gold` in `docs`), as the other experts train."""
    tau, batch, epochs = float(p["temperature"]), int(p["batch_size"]), int(p["epochs"])
    order = torch.Generator().manual_seed(int(p["seed"]))

    def loss(step):
        idx = torch.randint(len(qq), (min(batch, len(qq)),), generator=order)
        return torch.nn.functional.cross_entropy(a.project(qq[idx]) @ docs.T / tau, gold[idx])

    return _steps(a.map, loss, max(1, epochs * -(-len(qq) // batch)), lr, progress)


def fit_least_squares(linear: torch.nn.Linear, x: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3) -> None:
    """Set `linear` to argmin ||linear(x) - target||^2 + ridge ||W||^2 (the bias, where there is one, is not
    penalised: it is the difference of the means once the weights are fitted on centred data)."""
    x_mean = x.mean(dim=0) if linear.bias is not None else torch.zeros(x.shape[1], dtype=x.dtype)
    t_mean = target.mean(dim=0) if linear.bias is not None else torch.zeros(target.shape[1], dtype=x.dtype)
    xc, tc = x - x_mean, target - t_mean
    weight = torch.linalg.solve(xc.T @ xc + ridge * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ tc).T
    with torch.no_grad():
        linear.weight.copy_(weight)
        if linear.bias is not None:
            linear.bias.copy_(t_mean - x_mean @ weight.T)


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
