"""Name rules shared by configs and workspaces.

Dataset and expert names become folder names (`datasets/<name>/`, `experts/<name>/`) and peft adapter names, so
they are restricted to letters, digits, '-' and '_' and a length limit: no name can climb out of its folder or
carry markup into a page. Strategy names add ':' (`fixed:<expert>`), '/' and '.' (variants such as
`pilot-mean/skip-all`); they never name a path.
"""

from __future__ import annotations

import re

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
