"""LoRA experts (RouterRetriever, DAR): peft adapters injected into the shared base transformer.

Mixtures (DAR's merge) are exact: peft sums the deltas of every active adapter, so scaling each adapter by its
weight gives W + sum_i w_i B_i A_i.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping


from ..capabilities import MERGE_WEIGHTS
from ..lazy import Lazy
from ..settings import Param

torch = Lazy("torch")
peft = Lazy("peft")
peft_lora = Lazy("peft.tuners.lora")
safetensors_torch = Lazy("safetensors.torch")
from .base import (AdapterError, ExpertKind, check_adapter_keys, read_adapter_folder, read_tensors, register_kind,
                   switch_adapters)


def _plain_key(stored: str, expected: Mapping) -> str | None:
    """A stored tensor name as get_peft_model_state_dict names it (peft prefixes base_model.model. and may keep the
    adapter name: ...lora_A.<name>.weight)."""
    key = re.sub(r"\.(lora_[AB])\.[^.]+\.weight$", r".\1.weight", stored.removeprefix("base_model.model."))
    if key in expected:
        return key
    match = [k for k in expected if key.endswith("." + k) or k.endswith("." + key)]
    return match[0] if len(match) == 1 else None


# Linear layers of a BERT-style base that a LoRA may target (attention projections and the feed-forward layers).
TARGETS = ("query", "key", "value", "dense", "attention.output.dense", "intermediate.dense", "output.dense")
# The default recipe (with [training]'s early stopping and hard negatives): the best held-out MRR@10 of
# bench.recipes on the training queries of scifact and npl (docs/benchmarks.md, "Training recipes").
DEFAULT_TARGETS = ("query", "key", "value", "intermediate.dense", "output.dense")
REFUSED = {  # true, false and "gaussian" initialise A and B only; olora, pissa, corda, loftq... rewrite the base
    "init_lora_weights": "this initialisation rewrites the base weights",
    "layer_replication": "it adds and repeats transformer layers of the base model",
    "modules_to_save": "it replaces whole base modules with trained copies",
    "use_dora": "DoRA rescales the magnitude of the base weights",
    "lora_bias": "it adds a trained bias to the base layers",
    "bias": "it trains the base model's own biases",
    "fan_in_fan_out": "it transposes weights, which BERT's Linear layers do not need",
    "trainable_token_indices": "it changes the base model's token embeddings",
    "target_parameters": "it targets raw base parameters",
    "rank_pattern": "per-layer ranks are not supported",
    "alpha_pattern": "per-layer alphas are not supported",
    "layers_to_transform": "per-layer selection is not supported",
    "layers_pattern": "per-layer selection is not supported",
    "exclude_modules": "module exclusion is not supported",
}


def _bad_targets(value) -> str | None:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        return "is not a non-empty list of module names (a string is a regular expression, which is refused)"
    unknown = [t for t in value if t not in TARGETS]
    return f"names {unknown[0]!r}; supported: {', '.join(TARGETS)}" if unknown else None


def _number(lo: float, hi: float, integer: bool = False, closed_high: bool = True):
    def check(value) -> str | None:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (lo <= value and (value <= hi if closed_high else value < hi)):
            return f"is not {'an integer' if integer else 'a number'} in [{lo:g}, {hi:g}{']' if closed_high else ')'}"
        return None
    return check


SUPPORTED = {
    "r": _number(1, 256, integer=True),
    "lora_alpha": _number(1e-6, 4096),
    "lora_dropout": _number(0, 1, closed_high=False),
    "target_modules": _bad_targets,
    "use_rslora": lambda v: None if isinstance(v, bool) else "is not true or false",
    "init_lora_weights": lambda v: None if v is True or v is False or v == "gaussian" else REFUSED["init_lora_weights"],
}


@register_kind
class LoraKind(ExpertKind):
    name = "lora"
    description = "LoRA adapter on the query side (peft), mixable by weighted merge"
    capabilities = frozenset({MERGE_WEIGHTS})
    key_baseline = {"target_modules": ["query", "key", "value"]}  # the default before the feed-forward layers
    params = (
        Param("r", int, 8, "LoRA rank", min=1, max=256),
        Param("alpha", int, 32, "LoRA scaling α (the update is scaled by α / r)", min=1, max=4096),
        Param("dropout", float, 0.1, "dropout on the LoRA input while training", min=0, below=1),
        Param("target_modules", list, list(DEFAULT_TARGETS), "the base model's Linear layers that get a LoRA "
              "(default: attention and the feed-forward layers)",
              choices=TARGETS),
    )

    def _layers(self) -> list[LoraLayer]:
        """The LoRA layers, found once per added adapter (walking every module on each query cost ~5 ms)."""
        if getattr(self, "_layer_cache", None) is None:
            self._layer_cache = [m for m in self.transformer.modules() if isinstance(m, peft_lora.LoraLayer)]
        return self._layer_cache

    def _expected_keys(self, expert: str) -> dict[str, torch.Size]:
        return {k: v.shape for k, v in peft.get_peft_model_state_dict(self.transformer, adapter_name=expert).items()}

    def _check_targets(self, targets: list[str], where: Path | str) -> None:
        names = [n.removesuffix(".base_layer") for n, m in self.transformer.named_modules()
                 if isinstance(m, torch.nn.Linear)]  # a layer that already has a LoRA wraps its Linear
        for t in targets:
            if not any(n == t or n.endswith("." + t) for n in names):
                raise AdapterError(f"{where}: target module {t!r} is not a Linear layer of this base model "
                                   "(fix: target query, key, value or dense layers)")

    def add(self, expert: str, params: Mapping) -> int:
        p = {**self.defaults, **params}
        self._check_targets(list(p["target_modules"]), f"expert {expert!r}")
        config = peft.LoraConfig(r=int(p["r"]), lora_alpha=int(p["alpha"]), lora_dropout=float(p["dropout"]),
                            target_modules=list(p["target_modules"]))
        self.transformer.add_adapter(config, adapter_name=expert)
        self._layer_cache = None
        return sum(t.numel() for t in self.trainable_parameters(expert))

    @classmethod
    def check_folder(cls, folder: Path) -> dict:
        folder = Path(folder)
        raw = read_adapter_folder(folder, "LORA", cls.name)
        accepted = check_adapter_keys(raw, folder / "adapter_config.json", cls.name, SUPPORTED, REFUSED,
                                      inert=frozenset({"qalora_group_size"}))  # read only with use_qalora
        for key in ("r", "target_modules"):
            if key not in accepted:
                raise AdapterError(f"{folder / 'adapter_config.json'}: no {key} (fix: save the adapter with peft's "
                                   "save_pretrained)")
        return accepted

    def load(self, expert: str, folder: Path) -> int:
        """Load a LoRA folder as data: the config is rebuilt from the accepted keys only (no initialisation runs,
        nothing that restructures the base), tensors are checked against the expected shapes and for finite
        values, and a refused load leaves the model as it was."""
        folder = Path(folder)
        s = self.check_folder(folder)
        self._check_targets(list(s["target_modules"]), folder / "adapter_config.json")
        config = peft.LoraConfig(r=int(s["r"]), lora_alpha=s.get("lora_alpha", 8), lora_dropout=float(s.get(
            "lora_dropout", 0.0)), target_modules=list(s["target_modules"]), use_rslora=bool(s.get("use_rslora")),
            init_lora_weights=False, inference_mode=True)
        self.transformer.add_adapter(config, adapter_name=expert)
        self._layer_cache = None
        try:
            expected = self._expected_keys(expert)
            tensors = read_tensors(folder / "adapter_model.safetensors", expected, lambda k: _plain_key(k, expected))
        except BaseException:
            self.transformer.delete_adapter(expert)
            self._layer_cache = None
            raise
        peft.set_peft_model_state_dict(self.transformer, tensors, adapter_name=expert)
        return sum(t.numel() for t in tensors.values())

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer.peft_config[expert].save_pretrained(str(folder))
        state = peft.get_peft_model_state_dict(self.transformer, adapter_name=expert)
        safetensors_torch.save_file({f"base_model.model.{k}": v.detach().contiguous().cpu() for k, v in state.items()},
                  str(folder / "adapter_model.safetensors"))

    def settings(self, expert: str) -> dict:
        config = self.transformer.peft_config[expert]
        return {"r": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                "target_modules": sorted(config.target_modules)}

    def trainable_parameters(self, expert: str) -> list[torch.nn.Parameter]:
        return [p for n, p in self.transformer.named_parameters() if "lora_" in n and f".{expert}." in n]

    @contextmanager
    def active(self, weights: Mapping[str, float]) -> Iterator[None]:
        layers = self._layers()
        names = [n for n, w in weights.items() if w != 0]
        saved = [(layer, dict(layer.scaling)) for layer in layers]
        for layer in layers:
            switch_adapters(layer, names)
            for n in names:
                if n in layer.scaling:  # an adapter trained elsewhere may target fewer modules than ours
                    layer.scaling[n] = layer.scaling[n] * float(weights[n])
        try:
            yield
        finally:
            for layer, scaling in saved:
                layer.scaling.update(scaling)
