"""Name rules shared by configs and workspaces.

Dataset and expert names become folder names (`datasets/<name>/`, `experts/<name>/`) and peft adapter names, so
they are restricted to letters, digits, '-' and '_' and a length limit: no name can climb out of its folder or
carry markup into a page. Strategy names add ':' (`fixed:<expert>`), '/' and '.' (variants such as
`pilot-mean/skip-all`); they never name a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_LENGTH = 64
NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}")
STRATEGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:./-]{0,127}")
RESERVED = frozenset({"base"})  # column 0 of every embedding table: the base model itself

NAME_RULE = f"1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_', starting with a letter or digit"
STRATEGY_RULE = "1 to 128 letters, digits, '-', '_', ':', '.' or '/', starting with a letter or digit"


def name_problem(name: object, what: str) -> str | None:
    """Why `name` cannot name a dataset or an expert (`what`), or None when it can."""
    if not isinstance(name, str):
        return f"the {what} name must be a string, not {type(name).__name__}"
    if not NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        return f"the {what} name {shown!r} is not {NAME_RULE}"
    if name in RESERVED:
        return f"{name!r} is reserved for the base model"
    return None


def strategy_name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"a strategy name must be a string, not {type(name).__name__}"
    if not STRATEGY_NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        return f"the strategy name {shown!r} is not {STRATEGY_RULE}"
    return None


@dataclass(frozen=True)
class SystemName:
    """The one grammar of system names, parsed and printed here only. A system is what a run, a metric row or a
    strategy is named by:

    - `base`: the base model alone;
    - `<expert>`: an encoder (the base model with that expert), a column of the embedding and metric tables;
    - `fixed:<expert>`: the strategy that always routes to that expert;
    - `mix:<strategy>`: the runs of queries a strategy routed to a weighted mixture;
    - any other name is a strategy: a registered router, optionally a variant `<router>/<variant>`.
    """

    kind: str  # "base", "encoder", "fixed", "mix" or "strategy"
    target: str  # the expert or strategy named ("base" for the base model)

    FIXED = "fixed:"
    MIX = "mix:"

    @classmethod
    def parse(cls, text: str, encoders: tuple[str, ...] | list[str] = ()) -> "SystemName":
        """`text` read by the grammar; a plain name among `encoders` is an encoder, otherwise a strategy."""
        if text == "base":
            return cls("base", "base")
        for prefix, kind in ((cls.FIXED, "fixed"), (cls.MIX, "mix")):
            if text.startswith(prefix):
                return cls(kind, text[len(prefix):])
        return cls("encoder" if text in encoders else "strategy", text)

    @classmethod
    def fixed(cls, expert: str) -> "SystemName":
        return cls("fixed", expert)

    @classmethod
    def mix(cls, strategy: str) -> "SystemName":
        return cls("mix", strategy)

    @property
    def expert(self) -> str | None:
        """The expert a fixed strategy or an encoder stands for ("base" for the base model), else None."""
        return self.target if self.kind in ("base", "encoder", "fixed") else None

    @property
    def router(self) -> str | None:
        """A strategy's registered router: the part before a variant's '/'."""
        return self.target.split("/", 1)[0] if self.kind == "strategy" else None

    def __str__(self) -> str:
        return {"fixed": self.FIXED, "mix": self.MIX}.get(self.kind, "") + self.target
