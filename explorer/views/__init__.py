"""The pages' data, one module per page: its `PAGE` (key, title, typed URL parameters) and `data(ws, values)`, the
one computation of what the page shows (see base.py). Every module of this package is imported here, so a page
added as one module registers itself; `common` holds what several pages share.

Pure functions over a `Workspace` (and the `explorer.analysis` results): no Streamlit. Every name of the page
modules is also available from `explorer.views` itself.
"""

import importlib
import pkgutil

from .base import PAGES, Page, ParamError, UrlParam, jsonable, page_data, page_frames, register_page  # noqa: F401
from .common import *  # noqa: F401,F403
from .complementarity import *  # noqa: F401,F403
from .decisions import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .experts import *  # noqa: F401,F403
from .gap import *  # noqa: F401,F403
from .inspector import *  # noqa: F401,F403
from .map_tools import *  # noqa: F401,F403
from .mixing import *  # noqa: F401,F403
from .overview import *  # noqa: F401,F403
from .playground import *  # noqa: F401,F403
from .routing_map import *  # noqa: F401,F403
from .waterfall import *  # noqa: F401,F403

for _module in pkgutil.iter_modules(__path__):  # a page module added later registers itself too
    importlib.import_module(f"{__name__}.{_module.name}")
