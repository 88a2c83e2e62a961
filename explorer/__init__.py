"""Router Explorer: dense retrieval routed over a mixture of domain-expert embedding models.

In a notebook: `ws = explorer.open("workspaces/sample")`, then `ws.overview()` (every page of the app as a method,
pandas DataFrames of what it shows), `ws.runs(system, dataset)` and `ws.compare(a, b)` (explorer.api).
"""

__version__ = "0.1.0"
# 3: lexical experts (no query embedding file), fused mix: runs, strategy groups; runs read from files as systems
WORKSPACE_FORMAT_VERSION = 3


def open(path, compare=None):  # noqa: A001 - explorer.open(path), as the notebook API reads
    """The workspace at `path` for a notebook (explorer.api.Notebook); with `compare`, a second workspace beside it
    (its systems as B:<name>). Imports no model library."""
    from .api import Notebook

    return Notebook(path, compare)
