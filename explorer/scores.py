"""Scores as every table, page and export shows them: ×100 with one decimal (nDCG@10 = 0.923 is shown as 92.3).

The one place that scales and rounds scores for people; the workspace and every computation keep fractions. A
measure that is not a 0-1 score (trec_eval's counts: NumRet, NumRel, NumQ) is shown as it is, never ×100.
"""

from __future__ import annotations

import math
from functools import lru_cache

MISSING = "—"
COUNTS = frozenset({"NumRet", "NumRel", "NumQ"})  # ir_measures' measures that count documents or queries


@lru_cache(maxsize=256)
def scale(measure: str | None) -> int:
    """100 for a 0-1 score (every measure but the counts), 1 for a count; 100 when no measure is named."""
    if measure is None:
        return 100
    import ir_measures

    try:
        return 1 if ir_measures.parse_measure(measure).NAME in COUNTS else 100
    except Exception:  # noqa: BLE001 - a name ir_measures does not parse is no count
        return 100


def points(value, decimals: int | None = 1, measure: str | None = None):
    """A score (a number, a pandas Series or DataFrame) ×100 (×1 for a count `measure`), rounded to `decimals`
    (None: not rounded)."""
    scaled = scale(measure) * value
    if decimals is None:
        return scaled
    return scaled.round(decimals) if hasattr(scaled, "round") else round(float(scaled), decimals)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def x100(value, missing: str = MISSING, measure: str | None = None) -> str:
    """A score as text: ×100 (×1 for a count `measure`), one decimal (`missing` when there is none)."""
    return missing if _missing(value) else f"{scale(measure) * float(value):.1f}"


def signed(value, missing: str = MISSING) -> str:
    """A difference of scores as text, in points (×100) with its sign: +1.2, -0.4."""
    return missing if _missing(value) else f"{100 * float(value):+.1f}"
