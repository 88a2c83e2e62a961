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


from ..capabilities import MIX_PREFIXES
from ..lazy import Lazy
from ..settings import Param

torch = Lazy("torch")
peft = Lazy("peft")
safetensors_torch = Lazy("safetensors.torch")
from .base import (AdapterError, ExpertKind, check_adapter_keys, read_adapter_folder, read_tensors, register_kind,
                   switch_adapters)

MIX = "ddr-mixture"  # the reserved adapter holding the current mixture's prefix


def _positive_int(value, most: int = 1 << 16) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most
    return None if ok else f"is not an integer in [1, {most}]"


@register_kind
class PrefixKind(ExpertKind):
    name = "prefix"
    description = "prefix-tuning module on the query side (peft), mixable by weighting the prefixes (DDR)"
    capabilities = frozenset({MIX_PREFIXES})
    default_lr = 1e-2  # prefixes learn far slower than LoRA at LoRA's rate (loss flat after 3 epochs at 5e-4)
    params = (
        Param("virtual_tokens", int, 16, "virtual key/value tokens per layer", min=1, max=128),
        Param("adapter_lr", float, 1e-2, "learning rate of the prefix (LoRA's rate leaves it flat)", above=0, max=1),
    )

    peft = None  # the PeftModel around the base transformer, made with the first prefix expert
    # 1: the first prefix of a build is initialised from the base model's keys and values, like every other one
    # (before, from those of whichever LoRA expert was active last, so it depended on the training order)
    key_version = 1

    def _config(self, virtual_tokens: int) -> PrefixTuningConfig:
        return peft.PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=int(virtual_tokens))

    def _add_adapter(self, expert: str, config: PrefixTuningConfig) -> None:
        if self.peft is None:
            self.peft = peft.get_peft_model(self.transformer, config, adapter_name=expert)
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
        from peft.tuners.tuners_utils import BaseTunerLayer

        for layer in self.transformer.modules():  # the base model's keys and values: every adapter off (the
            if isinstance(layer, BaseTunerLayer):  # Encoder switches the chosen one on again for each pass)
                switch_adapters(layer, None)
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

    @classmethod
    def check_folder(cls, folder: Path) -> dict:
        folder = Path(folder)
        raw = read_adapter_folder(folder, "PREFIX_TUNING", cls.name)
        sizes = {k: _positive_int for k in ("token_dim", "num_layers", "num_attention_heads",
                                           "num_transformer_submodules", "encoder_hidden_size")}
        accepted = check_adapter_keys(raw, folder / "adapter_config.json", cls.name,
                                      {"num_virtual_tokens": lambda v: _positive_int(v, 128), **sizes},
                                      {"prefix_projection": "the reparameterisation MLP is not supported"})
        if "num_virtual_tokens" not in accepted:
            raise AdapterError(f"{folder / 'adapter_config.json'}: no num_virtual_tokens (fix: save the prefix "
                               "with peft's save_pretrained)")
        return accepted

    def load(self, expert: str, folder: Path) -> int:
        folder = Path(folder)
        s = self.check_folder(folder)
        cfg = self.transformer.config
        model = {"token_dim": cfg.hidden_size, "num_layers": cfg.num_hidden_layers, "encoder_hidden_size":
                 cfg.hidden_size, "num_attention_heads": cfg.num_attention_heads, "num_transformer_submodules": 1}
        wrong = [k for k, v in model.items() if k in s and s[k] != v]
        if wrong:
            raise AdapterError(f"{folder / 'adapter_config.json'}: {wrong[0]} = {s[wrong[0]]}, this base model has "
                               f"{model[wrong[0]]} (fix: load prefixes trained on the same base encoder)")
        first = self.peft is None
        self._add_adapter(expert, self._config(s["num_virtual_tokens"]))
        try:
            expected = {"prompt_embeddings": tuple(self._table(expert).weight.shape)}
            state = read_tensors(folder / "adapter_model.safetensors", expected,
                                 lambda k: "prompt_embeddings" if k.endswith("prompt_embeddings") else None)
        except BaseException:
            if first:  # the wrapper holds nothing else: drop it (the base transformer inside is untouched)
                self.peft = None
            else:
                self.peft.delete_adapter(expert)
            raise
        peft.set_peft_model_state_dict(self.peft, state, adapter_name=expert)
        return state["prompt_embeddings"].numel()

    def save(self, expert: str, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.peft.peft_config[expert].save_pretrained(str(folder))
        state = peft.get_peft_model_state_dict(self.peft, adapter_name=expert)
        safetensors_torch.save_file({k: v.detach().contiguous().cpu() for k, v in state.items()},
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
