"""Prefix-tuning experts (DDR): per-domain virtual key/value tokens prepended in every attention layer.

peft's prefix tuning cannot be injected through the transformers adapter mixin, so the kind wraps the shared base
transformer in one `PeftModel` holding every prefix module, and swaps it into the sentence-transformers module only
while a prefix expert is active (under the Encoder's lock). Documents stay encoded by the base model.

A mixture (DDR's soft router) mixes the prefixes themselves: the virtual tokens of a mixture are the weighted sum of
the modules' key/value tokens, held in one reserved adapter that is refilled for each mixture.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch
from peft import PrefixTuningConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from .base import AdapterError, ExpertKind, read_adapter_folder, register_kind

MIX = "ddr-mixture"  # the reserved adapter holding the current mixture's prefix


@register_kind
class PrefixKind(ExpertKind):
    name = "prefix"
    description = "prefix-tuning module on the query side (peft), mixable by weighting the prefixes (DDR)"
    mixable = True
    default_lr = 1e-2  # prefixes learn far slower than LoRA at LoRA's rate (loss flat after 3 epochs at 5e-4)
    defaults = {"virtual_tokens": 16}

    peft = None  # the PeftModel around the base transformer, made with the first prefix expert

    def _config(self, virtual_tokens: int) -> PrefixTuningConfig:
        return PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=int(virtual_tokens))

    def _add_adapter(self, expert: str, config: PrefixTuningConfig) -> None:
        if self.peft is None:
            self.peft = get_peft_model(self.transformer, config, adapter_name=expert)
        else:
            self.peft.add_adapter(expert, config)

    def _table(self, expert: str) -> torch.nn.Embedding:
        return self.peft.prompt_encoder[expert].embedding

    def _initialise(self, expert: str) -> None:
        """Start from the keys and values the base model gives real tokens, not peft's N(0, 1) noise, which
        scrambles every query embedding before training has begun."""
        n = self.peft.peft_config[expert].num_virtual_tokens
        ids = torch.arange(2000, 2000 + n).unsqueeze(0)  # ordinary word pieces of the BERT vocabulary
        captured: list[torch.Tensor] = []
        hooks = []
        for layer in self.transformer.encoder.layer:
            for proj in (layer.attention.self.key, layer.attention.self.value):
                hooks.append(proj.register_forward_hook(lambda m, i, out: captured.append(out[0].detach())))
        try:
            with torch.no_grad():
                self.transformer(input_ids=ids, attention_mask=torch.ones_like(ids))
        finally:
            for h in hooks:
                h.remove()
        with torch.no_grad():
            self._table(expert).weight.copy_(torch.cat(captured, dim=1))

    def add(self, expert: str, params: Mapping) -> int:
        p = {**self.defaults, **params}
        self._add_adapter(expert, self._config(p["virtual_tokens"]))
        self._initialise(expert)
        return sum(t.numel() for t in self.trainable_parameters(expert))

    def load(self, expert: str, folder: Path) -> int:
        folder = Path(folder)
        raw = read_adapter_folder(folder, "PREFIX_TUNING", self.name)
        if raw.get("prefix_projection"):
            raise AdapterError(f"{folder}: prefix_projection adapters are not supported "
                               "(fix: train without the reparameterisation MLP)")
        self._add_adapter(expert, self._config(raw.get("num_virtual_tokens", self.defaults["virtual_tokens"])))
        state = load_file(str(folder / "adapter_model.safetensors"))
        expected = self._table(expert).weight.shape
        table = next((t for k, t in state.items() if k.endswith("prompt_embeddings")), None)
        if table is None or table.shape != expected:
            self.peft.delete_adapter(expert)
            got = "no prompt_embeddings tensor" if table is None else f"prompt_embeddings {tuple(table.shape)}"
            raise AdapterError(f"{folder}: does not fit this base model: {got}, expected {tuple(expected)} "
                               "(fix: load prefixes trained on the same base encoder)")
        set_peft_model_state_dict(self.peft, {"prompt_embeddings": table}, adapter_name=expert)
        return table.numel()

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.peft.peft_config[expert].save_pretrained(str(folder))
        state = get_peft_model_state_dict(self.peft, adapter_name=expert)
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()},
                  str(folder / "adapter_model.safetensors"))

    def settings(self, expert: str) -> dict:
        return {"virtual_tokens": self.peft.peft_config[expert].num_virtual_tokens}

    def trainable_parameters(self, expert: str) -> list[torch.nn.Parameter]:
        return list(self.peft.prompt_encoder[expert].parameters())

    def _mixture(self, weights: Mapping[str, float]) -> str:
        tables = [(self._table(n).weight, float(w)) for n, w in weights.items()]
        if len({t.shape for t, _ in tables}) > 1:
            raise ValueError("prefix experts with different numbers of virtual tokens cannot be mixed")
        if MIX not in self.peft.peft_config or self._table(MIX).weight.shape != tables[0][0].shape:
            if MIX in self.peft.peft_config:
                self.peft.delete_adapter(MIX)
            self.peft.add_adapter(MIX, self._config(tables[0][0].shape[0]))
        with torch.no_grad():
            self._table(MIX).weight.copy_(sum(w * t for t, w in tables))
        return MIX

    @contextmanager
    def active(self, weights: Mapping[str, float]) -> Iterator[None]:
        names = [n for n, w in weights.items() if w]
        adapter = names[0] if len(names) == 1 and weights[names[0]] == 1 else self._mixture(
            {n: weights[n] for n in names})
        self.peft.set_adapter(adapter)
        original = self.holder.model
        self.holder.model = self.peft
        try:
            yield
        finally:
            self.holder.model = original
