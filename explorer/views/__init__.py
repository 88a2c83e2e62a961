"""Read-side helpers that shape workspace data for the app's pages, one module per page (plus `common`).

Pure functions over a `Workspace` (and the `explorer.analysis` results): no Streamlit, no model work. The pages
format and draw what these return; tests compare both against `explorer.analysis`. Every name is also available
from `explorer.views` itself.
"""

from .common import *  # noqa: F401,F403
from .complementarity import *  # noqa: F401,F403
from .decisions import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .experts import *  # noqa: F401,F403
from .gap import *  # noqa: F401,F403
from .inspector import *  # noqa: F401,F403
from .map_tools import *  # noqa: F401,F403
from .overview import *  # noqa: F401,F403
from .playground import *  # noqa: F401,F403
from .routing_map import *  # noqa: F401,F403
from .waterfall import *  # noqa: F401,F403
