"""Query terms a document shares with its query, as DiffIR highlights them: lower-cased word tokens minus a small
stop-word list. Pure text functions (no HTML here: explorer/ui/highlight.py builds the marked-up text)."""

from __future__ import annotations

import re

# A word: letters or digits (any script), with inner apostrophes or hyphens kept out (they split words).
WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers him his
how i if in into is it its itself just me more most my no nor not of off on once only or other our ours out over own
same she should so some such than that the their theirs them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your yours s t d ll m re ve
""".split())


def tokens(text: object) -> list[str]:
    """Lower-cased word tokens of a text (None or NaN: none)."""
    if text is None or (isinstance(text, float) and text != text):
        return []
    return [w.lower() for w in WORD.findall(str(text))]


def query_terms(query: object) -> list[str]:
    """The query's content terms in query order, each once: tokens minus stop words."""
    return list(dict.fromkeys(t for t in tokens(query) if t not in STOP_WORDS))


def shared_terms(query: object, *texts: object) -> list[str]:
    """The query's terms that occur in any of `texts` (a document's title and text), in query order."""
    present = set()
    for t in texts:
        present.update(tokens(t))
    return [t for t in query_terms(query) if t in present]


def spans(text: object, terms) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is_term) pieces, in order; joined they give the text back. A piece is a term when
    its lower-cased form is one of `terms`."""
    s = "" if text is None or (isinstance(text, float) and text != text) else str(text)
    wanted = {t.lower() for t in terms}
    out: list[tuple[str, bool]] = []
    at = 0
    for m in WORD.finditer(s):
        if m.group().lower() in wanted:
            if m.start() > at:
                out.append((s[at:m.start()], False))
            out.append((m.group(), True))
            at = m.end()
    if at < len(s):
        out.append((s[at:], False))
    return out


def window(text: object, terms, width: int = 240) -> tuple[str, bool, bool]:
    """A snippet of about `width` characters around the first term of `terms` in `text` (the start when none
    occurs), cut at word boundaries: (snippet, cut at the start, cut at the end)."""
    s = "" if text is None or (isinstance(text, float) and text != text) else " ".join(str(text).split())
    if len(s) <= width:
        return s, False, False
    wanted = {t.lower() for t in terms}
    first = next((m.start() for m in WORD.finditer(s) if m.group().lower() in wanted), 0)
    start = max(0, min(first - width // 4, len(s) - width))
    end = min(len(s), start + width)
    if start > 0:  # move to the next word boundary
        space = s.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    if end < len(s):
        space = s.rfind(" ", start, end)
        end = space if space > start else end
    return s[start:end], start > 0, end < len(s)
