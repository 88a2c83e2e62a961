"""A module imported on first use, so that parsing a config or opening a workspace never loads torch, peft or faiss.

`torch = Lazy("torch")` at the top of a module reads like the import it replaces; the first attribute access
(`torch.nn`, `peft.LoraConfig`) imports the real module, which Python then keeps in sys.modules as usual.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class Lazy:
    def __init__(self, name: str):
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str):
        return getattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
