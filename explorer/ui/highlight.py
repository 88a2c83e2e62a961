"""Query terms highlighted with <mark> in document titles, snippets and the reader.

The markup is built only from `safe.html`-escaped pieces of the (untrusted) text and this module's own tags, and
always as one HTML block (a `<div>` with no blank line), so nothing in a document or query is read as Markdown or
HTML (see explorer/ui/safe.py)."""

from __future__ import annotations

from explorer.terms import spans, window
from explorer.ui import safe

MARK = "<mark style='background:#fde68a;color:inherit;padding:0 1px;border-radius:2px'>"


def marked(text: object, terms) -> str:
    """`text` as escaped HTML with each of `terms` wrapped in <mark>."""
    return "".join(f"{MARK}{safe.html(piece, quote=False)}</mark>" if hit else safe.html(piece, quote=False)
                   for piece, hit in spans(text, terms))


def snippet(text: object, terms, width: int = 240) -> str:
    """A window of `text` around its first query term, marked and escaped, with … where it was cut."""
    piece, cut_start, cut_end = window(text, terms, width)
    return ("…" if cut_start else "") + marked(piece, terms) + ("…" if cut_end else "")


def snippet_list(rows, terms_of, width: int = 200) -> str:
    """One HTML block listing ranked documents: rank, grade marks, title and a snippet, query terms marked.
    `rows`: dicts with rank, grade (marks text), doc_id, title, text; `terms_of(row)`: the terms to mark."""
    items = []
    for r in rows:
        terms = terms_of(r)
        grade = f" <span style='color:#2a7a2a'>{safe.html(r.get('grade', ''))}</span>" if r.get("grade") else ""
        items.append(
            f"<li style='margin-bottom:6px'><b>{safe.html(r['rank'])}.</b>{grade} "
            f"<b title='{safe.html(r.get('title', ''))}'>{marked(r.get('title', ''), terms)}</b> "
            f"<code style='font-size:0.8em'>{safe.html(r['doc_id'])}</code><br>"
            f"<span style='font-size:0.88em'>{snippet(r.get('text', ''), terms, width)}</span></li>")
    return ("<div><ol style='list-style:none;padding-left:0;margin:0'>" + "".join(items) + "</ol></div>")


def reader(title: object, text: object, terms) -> str:
    """A document for reading: title and full text, query terms marked, line breaks of the text kept as <br>
    inside one HTML block (no blank line can end it)."""
    body = "" if text is None or (isinstance(text, float) and text != text) else str(text)
    paragraphs = [p for p in body.replace("\r\n", "\n").split("\n")]
    html_body = "<br>".join(marked(p, terms) for p in paragraphs)
    return (f"<div><div style='font-weight:600;margin-bottom:4px'>{marked(title, terms)}</div>"
            f"<div style='white-space:normal;line-height:1.5'>{html_body}</div></div>")
