"""Expert kinds, one module each (peft's tuners/ layout); importing this package registers them all."""

from .base import EXPERT_KINDS, AdapterError, ExpertKind, register_kind, switch_adapters
from .lora import LoraKind
from .prefix import PrefixKind
from .query_adapter import QueryAdapterKind
from .bm25 import Bm25Kind  # noqa: E402  (after the neural kinds: the order of kinds in the settings reference)

__all__ = ["EXPERT_KINDS", "AdapterError", "Bm25Kind", "ExpertKind", "LoraKind", "PrefixKind", "QueryAdapterKind", "register_kind", "switch_adapters"]
