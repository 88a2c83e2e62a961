"""Expert kinds: how an expert is created, loaded, saved and switched on inside the shared base model.

An expert kind is one small class in `EXPERT_KINDS`. LoRA experts are peft adapters injected into the single base
transformer, so eight experts cost a few MB, not eight models. Mixtures of LoRA experts (DAR's merge) are exact:
peft sums the deltas of every active adapter, so scaling each adapter by its weight gives W + sum_i w_i B_i A_i.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

EXPERT_KINDS: dict[str, type["ExpertKind"]] = {}
# Several adapters in one model is the design, not an accident.
warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")


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


class ExpertKind:
    """One way of specialising the query side of the base encoder."""

    name: str = ""
    description: str = ""
    mixable: bool = False

    def __init__(self, transformer: torch.nn.Module):
        self.transformer = transformer

    def add(self, expert: str, params: Mapping) -> int:  # returns the number of trainable parameters
        raise NotImplementedError

    def load(self, expert: str, folder: Path) -> int:
        raise NotImplementedError

    def save(self, expert: str, folder: Path) -> None:
        raise NotImplementedError

    def trainable_parameters(self, expert: str) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    @contextmanager
    def active(self, weights: Mapping[str, float]) -> Iterator[None]:
        raise NotImplementedError
        yield


@register_kind
class LoraKind(ExpertKind):
    name = "lora"
    description = "LoRA adapter on the query side (peft), mixable by weighted merge"
    mixable = True
    defaults = {"r": 8, "alpha": 32, "dropout": 0.1, "target_modules": ["query", "key", "value"]}

    def _layers(self) -> list[LoraLayer]:
        """The LoRA layers, found once per added adapter (walking every module on each query cost ~5 ms)."""
        if getattr(self, "_layer_cache", None) is None:
            self._layer_cache = [m for m in self.transformer.modules() if isinstance(m, LoraLayer)]
        return self._layer_cache

    def _expected_keys(self, expert: str) -> dict[str, torch.Size]:
        return {k: v.shape for k, v in get_peft_model_state_dict(self.transformer, adapter_name=expert).items()}

    def add(self, expert: str, params: Mapping) -> int:
        p = {**self.defaults, **params}
        config = LoraConfig(r=int(p["r"]), lora_alpha=int(p["alpha"]), lora_dropout=float(p["dropout"]),
                            target_modules=list(p["target_modules"]))
        self.transformer.add_adapter(config, adapter_name=expert)
        self._layer_cache = None
        return sum(t.numel() for t in self.trainable_parameters(expert))

    def load(self, expert: str, folder: Path) -> int:
        folder = Path(folder)
        config_path = folder / "adapter_config.json"
        weights_path = folder / "adapter_model.safetensors"
        if not config_path.is_file():
            raise AdapterError(f"{folder}: no adapter_config.json (fix: point to a peft adapter folder)")
        if not weights_path.is_file():
            why = ("only adapter_model.bin, a pickle, which is never loaded"
                   if (folder / "adapter_model.bin").exists() else "no adapter_model.safetensors")
            raise AdapterError(f"{folder}: {why} (fix: save the adapter with safe_serialization=True)")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AdapterError(f"{config_path}: not valid JSON ({err}) (fix: re-save the adapter config)") from err
        if raw.get("peft_type", "LORA") != "LORA":
            raise AdapterError(f"{config_path}: peft_type {raw.get('peft_type')!r} is not LORA "
                               "(fix: use kind = \"lora\" only for LoRA adapters)")
        config = LoraConfig.from_pretrained(str(folder))
        config.inference_mode = True
        self.transformer.add_adapter(config, adapter_name=expert)
        self._layer_cache = None
        expected = self._expected_keys(expert)
        loaded = load_file(str(weights_path))
        mapped: dict[str, torch.Tensor] = {}
        for key, tensor in loaded.items():
            plain = key.replace(f".{expert}.", ".")
            match = [k for k in expected if plain.endswith(k)]
            if len(match) == 1:
                mapped[match[0]] = tensor
        missing = [k for k in expected if k not in mapped]
        wrong = [k for k, t in mapped.items() if t.shape != expected[k]]
        if missing or wrong:
            self.transformer.delete_adapter(expert)
            detail = f"{len(missing)} LoRA tensors missing (e.g. {missing[0]})" if missing else \
                f"shape mismatch for {wrong[0]}: {tuple(mapped[wrong[0]].shape)} vs {tuple(expected[wrong[0]])}"
            raise AdapterError(f"{folder}: does not fit this base model: {detail} "
                               "(fix: load adapters trained on the same base encoder)")
        set_peft_model_state_dict(self.transformer, mapped, adapter_name=expert)
        return sum(t.numel() for t in mapped.values())

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer.peft_config[expert].save_pretrained(str(folder))
        state = get_peft_model_state_dict(self.transformer, adapter_name=expert)
        save_file({f"base_model.model.{k}": v.detach().contiguous().cpu() for k, v in state.items()},
                  str(folder / "adapter_model.safetensors"))

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
                layer.scaling[n] = layer.scaling[n] * float(weights[n])
        try:
            yield
        finally:
            for layer, scaling in saved:
                layer.scaling.update(scaling)
