"""match: embeddings -> 1:1 decisions, 1:N candidates, thresholds.

Similarity is cosine (embeddings are unit vectors), in [-1, 1], higher = more alike.
Thresholds are named operating points per model, defined once in ``thresholds.py`` with the
command that measured them; a user's own models' come from their model store
(``Calibrations.of(store)``), passed to the lookups that need them.
"""

from facelens.match.decide import (
    Candidate,
    Identification,
    IdentifyRule,
    Verification,
    decide_identity,
    rank_identities,
    verify,
)
from facelens.match.similarity import cosine_similarity
from facelens.match.thresholds import (
    OPERATING_POINTS,
    Calibrations,
    OperatingPoint,
    resolve_threshold,
)

__all__ = [
    "OPERATING_POINTS",
    "Calibrations",
    "Candidate",
    "Identification",
    "IdentifyRule",
    "OperatingPoint",
    "Verification",
    "cosine_similarity",
    "decide_identity",
    "rank_identities",
    "resolve_threshold",
    "verify",
]
