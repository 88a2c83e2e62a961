"""A lexical expert: BM25 over each corpus (bm25s with PyStemmer's Snowball stemmer and a stopword list).

It is an expert like the others in every table (its runs and metrics, `fixed:bm25`, a routing candidate where the
config says so, a run that fusion mixes), but it lives outside the neural model: no adapter, no training, no query
embedding (capability `lexical`). The build indexes every corpus with it (explorer.lexical, cached by content
hash) instead of encoding queries; the encoder never loads it.
"""

from __future__ import annotations

from pathlib import Path

from ..capabilities import LEXICAL
from ..lexical import STOPWORD_SETS
from ..settings import Param
from .base import AdapterError, ExpertKind, register_kind

STEMMERS = ("arabic", "armenian", "basque", "catalan", "czech", "danish", "dutch", "english", "finnish", "french",
            "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "lithuanian", "nepali",
            "norwegian", "porter", "portuguese", "romanian", "russian", "serbian", "spanish", "swedish", "tamil",
            "turkish", "yiddish", "none")


@register_kind
class Bm25Kind(ExpertKind):
    name = "bm25"
    description = "BM25 over each corpus (bm25s, Snowball stemming, stopwords): lexical, no query embedding"
    capabilities = frozenset({LEXICAL})
    params = (
        Param("k1", float, 1.5, "BM25 term-frequency saturation", min=0, max=100),
        Param("b", float, 0.75, "BM25 length normalisation", min=0, max=1),
        Param("stemmer", str, "english", "Snowball stemmer of PyStemmer (none: no stemming)", choices=STEMMERS),
        Param("stopwords", str, "en", "stopword list of bm25s (none: keep every word)", choices=STOPWORD_SETS),
    )

    @classmethod
    def check_folder(cls, folder: Path) -> dict:
        raise AdapterError(f"{folder}: a bm25 expert has no adapter folder (fix: drop `adapter`; it indexes every "
                           "corpus itself)")

    def __init__(self, transformer=None, holder=None):
        raise AdapterError("a bm25 expert lives outside the neural model: the encoder never loads it")
