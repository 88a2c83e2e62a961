"""Declared settings: every key of a build config is declared once, with its type, default, range and a doc line.

The owners declare their own settings (an expert kind its `params`, a router its `params`, training, the index,
the layout), in the shape of ir_measures' `SUPPORTED_PARAMS`. `check_table` validates one TOML table against such
a declaration and collects every problem (unknown key with the nearest valid name, wrong type, out of range, not
one of the choices) instead of stopping at the first, so a config is repaired in one pass. The README's tables of
keys are generated from the same declarations (`explorer settings`).

Values are returned as written (an int stays an int where a float is allowed): the build's cache keys hash them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

_NO_DEFAULT = object()
REQUIRED = _NO_DEFAULT  # `default=REQUIRED`: the key must be given


@dataclass(frozen=True)
class Param:
    """One setting. `type` is bool, int, float, str or list (a list of `item`). Bounds: `min`/`max` inclusive,
    `above`/`below` exclusive. `choices` limits a str (or each list item). `nullable`: None/absent allowed."""

    name: str
    type: type
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    item: type = str
    nullable: bool = False
    default_doc: str | None = None  # how the default reads in the docs, when it is not a plain value

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT

    def type_text(self) -> str:
        if self.type is list:
            return f"list of {TYPE_NAMES[self.item]}s"
        return TYPE_NAMES[self.type]

    def range_text(self) -> str:
        parts = []
        if self.choices:
            parts.append(" / ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in self.choices))
        for bound, op in ((self.min, "≥"), (self.above, ">"), (self.max, "≤"), (self.below, "<")):
            if bound is not None:
                parts.append(f"{op} {int(bound):,}" if float(bound).is_integer() else f"{op} {bound:g}")
        if self.type is bool:
            parts.append("true / false")
        return ", ".join(parts)

    def default_text(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if self.required:
            return "required"
        return _toml(self.default)

    def problem(self, value: Any) -> tuple[str, str] | None:
        """(message, fix) when `value` does not fit this setting, else None."""
        if value is None:
            return None if self.nullable else (f"needs a {self.type_text()}", f"give a {self.type_text()} value")
        expected = self.type_text()
        if not _is(value, self.type):
            return (f"is {_toml(value)} ({_kind(value)}), not {_a(expected)}",
                    f"write {_a(expected)}{', ' + self.range_text() if self.range_text() else ''}")
        values = value if self.type is list else [value]
        if self.type is list:
            bad = [v for v in value if not _is(v, self.item)]
            if bad:
                return (f"has {_toml(bad[0])} ({_kind(bad[0])}), not {_a(TYPE_NAMES[self.item])}",
                        f"write {_a(expected)}")
        if self.choices is not None:
            for v in values:
                if v not in self.choices:
                    near = nearest(str(v), [str(c) for c in self.choices])
                    hint = f"did you mean {_toml(near)}? " if near else ""
                    return (f"{_toml(v)} is not one of {self.range_text()}", f"{hint}use one of {self.range_text()}")
        if self.type in (int, float):
            for bound, ok, op in ((self.min, lambda b: value >= b, "≥"), (self.above, lambda b: value > b, ">"),
                                  (self.max, lambda b: value <= b, "≤"), (self.below, lambda b: value < b, "<")):
                if bound is not None and not ok(bound):
                    return f"is {_toml(value)}, out of range", f"use a value {self.range_text()}"
        return None


TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "table"}


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{...}"
    if value is None:
        return "(none)"
    return repr(value)


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one, for "did you mean ...?"."""
    options = list(options)
    lowered: dict[str, str] = {}
    for o in options:  # the first spelling wins where options differ only by case
        lowered.setdefault(o.lower(), o)
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None


@dataclass(frozen=True)
class ConfigProblem:
    table: str  # e.g. "training", "experts 'scifact'", "datasets #2"
    key: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        key = f" `{self.key}`" if self.key else ""
        return f"[{self.table}]{key} {self.message} (fix: {self.fix})"


class Problems(list):
    """The problems of one config, collected in order."""

    def add(self, table: str, key: str | None, message: str, fix: str) -> None:
        self.append(ConfigProblem(table, key, message, fix))


def check_table(raw: Any, params: Sequence[Param], table: str, problems: Problems,
                handled: Sequence[str] = (), elsewhere: Mapping[str, str] | None = None, fill: bool = True) -> dict:
    """Validate one TOML table against its declared `params`; returns {name: value}, with defaults filled in for
    the keys not given or refused unless `fill` is off (required keys missing are problems). `handled` are keys
    the caller checks itself; `elsewhere` maps keys that belong to another table (or kind) to where they belong."""
    if not isinstance(raw, dict):
        problems.add(table, None, f"is {_kind(raw)}, not a table", f"write it as [{table}] with key = value lines")
        return {p.name: p.default for p in params if not p.required}
    declared = {p.name: p for p in params}
    out: dict = {}
    for key, value in raw.items():
        if key in handled:
            continue
        p = declared.get(key)
        if p is None:
            if elsewhere and key in elsewhere:
                problems.add(table, key, f"is {elsewhere[key]}", "move it or remove it")
                continue
            near = nearest(key, [*declared, *handled])
            problems.add(table, key, "is not a setting of this table",
                         f"did you mean `{near}`?" if near else f"valid keys: {', '.join(sorted([*declared, *handled]))}")
            continue
        bad = p.problem(value)
        if bad:
            problems.add(table, key, *bad)
            continue
        out[key] = value
    for p in params:
        if p.name in out or p.name in handled:
            continue
        if p.name in raw:  # given but refused (reported above): its default stands in, so checking goes on
            if fill and not p.required:
                out[p.name] = p.default
            continue
        if p.required:
            problems.add(table, p.name, "is missing", f"add {p.name} = <{p.type_text()}>: {p.doc}")
        elif fill:
            out[p.name] = p.default
    return out


def defaults(params: Sequence[Param]) -> dict:
    return {p.name: p.default for p in params if not p.required}


def markdown_table(params: Sequence[Param]) -> str:
    """The README's table of one declaration: key, type, default, range, doc."""
    lines = ["| key | type | default | allowed | what it does |", "|---|---|---|---|---|"]
    for p in params:
        lines.append(f"| `{p.name}` | {p.type_text()} | {p.default_text()} | {p.range_text() or 'any'} | {p.doc} |")
    return "\n".join(lines)
