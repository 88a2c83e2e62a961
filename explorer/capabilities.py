"""What an expert kind can do, by name: the words a kind declares and routers, the analysis and the pages ask for.

A kind lists its capabilities (`ExpertKind.capabilities`); the build records them per expert in the manifest, so
the read side asks the workspace what an expert can do instead of testing its kind's name. Plain strings, no
torch: routers and the read side import this without loading a model.
"""

from __future__ import annotations

MERGE_WEIGHTS = "merge-weights"  # several experts blend into one by their weighted weight deltas (DAR's merge)
MIX_PREFIXES = "mix-prefixes"  # several experts mix by weighting their prefixes (DDR's router chooses among them)
OWN_ENCODER = "own-encoder"  # encodes queries with a model of its own (ERA): the shared base is not used
TRAINS_ITSELF = "trains-itself"  # brings its own training loop (ERA: alignment, then the labelled pairs)
# scores documents by their words (BM25): it has runs and metrics like any expert, but no query embedding, no
# adapter and no training; routers may choose it, and fusion mixes its runs with the dense ones
LEXICAL = "lexical"

ALL = (MERGE_WEIGHTS, MIX_PREFIXES, OWN_ENCODER, TRAINS_ITSELF, LEXICAL)
MIXING = (MERGE_WEIGHTS, MIX_PREFIXES)  # either one lets a strategy route a query to a weighted mixture
