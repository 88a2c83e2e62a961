"""Router Explorer: dense retrieval routed over a mixture of domain-expert embedding models."""

__version__ = "0.1.0"
WORKSPACE_FORMAT_VERSION = 3
