"""The code stays readable as it grows (issue 24): no function in explorer/ over 60 lines, and the registries pick a
new module up without an edit elsewhere. Reads the source, runs nothing heavy."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "explorer"
MAX_FUNCTION_LINES = 60


def _functions():
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(SOURCE.parent), node.name, node.end_lineno - node.lineno + 1


def test_no_function_is_over_sixty_lines():
    long = [f"{path}:{name} ({lines} lines)" for path, name, lines in _functions() if lines > MAX_FUNCTION_LINES]
    assert not long, "split these functions: " + ", ".join(long)


def test_the_check_sees_every_function():
    found = list(_functions())
    assert len(found) > 500 and any(name == "resolve" for _, name, _ in found)
