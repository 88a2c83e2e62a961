"""Expert kinds, one module each (peft's tuners/ layout). The neural kinds are imported first (their order is the
settings reference's), then every other module of this package, so a kind added as one module (with
`@register_kind`) is registered without editing this file."""

import importlib
import pkgutil

from .base import EXPERT_KINDS, AdapterError, ExpertKind, register_kind, switch_adapters
from .lora import LoraKind
from .prefix import PrefixKind
from .query_adapter import QueryAdapterKind

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # every other kind, in a stable order
    importlib.import_module(f"{__name__}.{_module}")

from .bm25 import Bm25Kind  # noqa: E402

__all__ = ["EXPERT_KINDS", "AdapterError", "Bm25Kind", "ExpertKind", "LoraKind", "PrefixKind", "QueryAdapterKind",
           "register_kind", "switch_adapters"]
