"""LoRA experts (RouterRetriever, DAR): peft adapters injected into the shared base transformer.

Mixtures (DAR's merge) are exact: peft sums the deltas of every active adapter, so scaling each adapter by its
weight gives W + sum_i w_i B_i A_i.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

from .base import AdapterError, ExpertKind, read_adapter_folder, register_kind, switch_adapters


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
        read_adapter_folder(folder, "LORA", self.name)
        weights_path = folder / "adapter_model.safetensors"
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
                layer.scaling[n] = layer.scaling[n] * float(weights[n])
        try:
            yield
        finally:
            for layer, scaling in saved:
                layer.scaling.update(scaling)
