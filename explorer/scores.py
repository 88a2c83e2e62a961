"""Scores as every table, page and export shows them: ×100 with one decimal (nDCG@10 = 0.923 is shown as 92.3).

The one place that scales and rounds scores for people; the workspace and every computation keep fractions.
"""

from __future__ import annotations

import math

MISSING = "—"


def points(value, decimals: int | None = 1):
    """A score (a number, a pandas Series or DataFrame) ×100, rounded to `decimals` (None: not rounded)."""
    scaled = 100 * value
    if decimals is None:
        return scaled
    return scaled.round(decimals) if hasattr(scaled, "round") else round(float(scaled), decimals)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def x100(value, missing: str = MISSING) -> str:
    """A score as text: ×100, one decimal (`missing` when there is none)."""
    return missing if _missing(value) else f"{100 * float(value):.1f}"


def signed(value, missing: str = MISSING) -> str:
    """A difference of scores as text, in points (×100) with its sign: +1.2, -0.4."""
    return missing if _missing(value) else f"{100 * float(value):+.1f}"
