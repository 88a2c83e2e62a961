"""Expert kinds, one module each (peft's tuners/ layout). Every module of this package is imported here, so a kind
added as one module (with `@register_kind`) is registered without editing this file."""

import importlib
import pkgutil

from .base import EXPERT_KINDS, AdapterError, ExpertKind, register_kind, switch_adapters

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # registration, in a stable order
    importlib.import_module(f"{__name__}.{_module}")

from .lora import LoraKind  # noqa: E402
from .prefix import PrefixKind  # noqa: E402
from .query_adapter import QueryAdapterKind  # noqa: E402

__all__ = ["EXPERT_KINDS", "AdapterError", "ExpertKind", "LoraKind", "PrefixKind", "QueryAdapterKind", "register_kind",
           "switch_adapters"]
