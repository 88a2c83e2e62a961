"""Untrusted text made inert before it reaches the page.

Everything a workspace holds (its manifest's title, names and descriptions, the query and document texts and
titles of its tables) and everything in the URL is untrusted: a Markdown image in a query would make every
visitor's browser fetch a remote URL, and `<a ...>`, `:red[...]` or `$...$` would style the page. The pages pass
such values through one of these before they are drawn:

- `md(text)`: for st.markdown / st.caption / st.info / st.error, widget labels, radio options and help texts.
  Every ASCII punctuation character is backslash-escaped (CommonMark lets any of them be), so no Markdown,
  GFM autolink, HTML, math (`$`), directive (`:red[...]`, `:material/...:`) or table syntax survives, and line
  breaks become spaces (a line break could start a heading, list, quote or code block).
- `html(text)`: for the few places that build markup with unsafe_allow_html from escaped parts and constants.
  Such markup must be one HTML block (it starts with a block tag such as `<div>` or `<h4>` and has no blank
  line): Markdown is not parsed inside an HTML block, while text between inline tags in a paragraph still is
  (an escaped `![x](url)` would still be an image there). `html` turns line breaks into spaces for that.
- `plot(text)`: for Plotly texts (hover, labels, legend names, categories): Plotly draws a subset of HTML
  (`<a href>`, `<b>`, `<br>`, `<span style>`), so `&`, `<` and `>` become entities (which it draws as the
  characters).
- `code(text)`: a name shown as inline code in Markdown, when it is a plain name; otherwise `md(text)`.
"""

from __future__ import annotations

import html as _html
import re
import string

_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+[ \t]*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:./@+-]*")
# Streamlit turns some plain text into elements after Markdown is parsed (on text nodes, so backslashes do not
# stop them): GFM autolink literals (http://, www., e-mail addresses) become links, `:streamlit:` the logo image,
# `:name:` an emoji, and `->`, `--`, `<=`, `>=`, `~=` arrows and dashes. A WORD JOINER (U+2060, invisible) after
# the colon, the "www" or the "@", or inside the arrow breaks those patterns; the reader sees the same text.
_WJ = "\u2060"
_TEXT_PATTERNS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=[\w+/-])|(?<=@)(?=[\w-]+(?:\.[\w-]+)+)|(?<=[<>~-])(?=[>=-])")
# Markdown reads these only where a line starts (a list item, a setext underline): escaped there, kept elsewhere.
_LINE_START = frozenset("-+=")
# ASCII punctuation Markdown, GFM and Streamlit never read as syntax in running text (kept as typed).
_INERT = frozenset(",;?'\"%@") | _LINE_START
_ESCAPED = frozenset(string.punctuation) - _INERT


def text(value: object) -> str:
    """`value` as a plain string for st.text (a missing value, None or NaN, is empty)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


_text = text


def _one_line(value: object) -> str:
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", _text(value)))


def md(value: object) -> str:
    """`value` as text that st.markdown (and every Streamlit element that renders Markdown: captions, alerts,
    widget labels, radio options, help texts) shows literally, on one line."""
    text = _TEXT_PATTERNS.sub(_WJ, _one_line(value).strip())
    out = "".join("\\" + c if c in _ESCAPED else c for c in text)
    return "\\" + out if out[:1] in _LINE_START else out


def html(value: object, quote: bool = True) -> str:
    """`value` escaped for HTML text (`&`, `<`, `>`) or, with `quote`, a quoted attribute (also `"`, `'`), on one
    line (a blank line would end the HTML block and start Markdown again)."""
    text = _html.escape(_one_line(value), quote=quote)
    return text.replace(":material/", "&#58;material/")  # Streamlit rewrites that text before parsing


def plot(value: object) -> str:
    """`value` for a Plotly text: its HTML subset is off (`&`, `<`, `>` as entities, shown as the characters)."""
    return _html.escape(_text(value), quote=False)


def code(value: object) -> str:
    """A name as inline code (`name`) when it is a plain name, else escaped text (a backtick could end the span
    and a `|` split a table cell)."""
    text = _text(value)
    return f"`{text}`" if _PLAIN_NAME.fullmatch(text) else md(text)
