"""The app's pages: the registry of `explorer.views` (each page is one module there, with its `PAGE` and `data`).

`page_data(key, ws, params)` is what page `key` shows for its URL parameters, as JSON-able values: what
`explorer view PAGE --json` prints, what the notebook API returns, and what the page itself draws.
"""

from __future__ import annotations

from .views import PAGES, Page, ParamError, UrlParam, jsonable, page_data, page_frames, register_page  # noqa: F401
