"""1:1 verification and open-set 1:N identification decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.match.similarity import cosine_similarity

__all__ = [
    "Candidate",
    "Identification",
    "Verification",
    "decide_identity",
    "rank_identities",
    "verify",
]


@dataclass(frozen=True)
class Verification:
    """Whether two faces are the same person.

    Attributes:
        same: ``similarity >= threshold``.
        similarity: cosine similarity of the two embeddings.
        threshold: the threshold applied.
        model: the embedding model.
    """

    same: bool
    similarity: float
    threshold: float
    model: str


@dataclass(frozen=True)
class Candidate:
    """One enrolled identity proposed for a probe face."""

    identity_id: str
    name: str
    score: float


@dataclass(frozen=True)
class Identification:
    """Open-set answer for one probe: the best candidates, and who it is (None = unknown).

    Attributes:
        candidates: up to k candidates, best first, whatever their score.
        identity: the best candidate if its score reaches the threshold, else None.
        threshold: the threshold applied.
    """

    candidates: tuple[Candidate, ...]
    identity: Candidate | None
    threshold: float


def verify(a: Embeddings, b: Embeddings, threshold: float) -> Verification:
    """Compare one embedding with another.

    Example:
        >>> e = Embeddings([[1.0, 0.0]], model="m")
        >>> verify(e, e, 0.9).same
        True
    """
    if len(a) != 1 or len(b) != 1:
        raise ValueError(f"verify compares one face with one face, got {len(a)} and {len(b)}")
    s = float(cosine_similarity(a, b)[0, 0])
    return Verification(same=s >= threshold, similarity=s, threshold=threshold, model=a.model)


def rank_identities(
    sims: NDArray[np.float32], owner: NDArray[np.int64], n_identities: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Per probe, the k identities with the best sample similarity.

    Args:
        sims: (P, S) probe-to-sample similarities.
        owner: (S,) identity index (0..n_identities-1) of each sample.
        n_identities: number of identities.
        k: candidates wanted.

    Returns:
        (P, k') identity indices and scores, best first, with k' = min(k, n_identities).

    Example:
        >>> s = np.array([[0.1, 0.9, 0.5]], np.float32)
        >>> idx, sc = rank_identities(s, np.array([0, 0, 1]), 2, 2)
        >>> idx.tolist(), sc.round(2).tolist()
        ([[0, 1]], [[0.9, 0.5]])
    """
    p = sims.shape[0]
    k = min(k, n_identities)
    if p == 0 or k <= 0:
        return np.zeros((p, 0), np.int64), np.zeros((p, 0), np.float32)
    per_id = np.full((p, n_identities), -np.inf, np.float32)
    order = np.argsort(owner, kind="stable")
    so = owner[order]
    starts = np.flatnonzero(np.r_[True, so[1:] != so[:-1]])
    per_id[:, so[starts]] = np.maximum.reduceat(sims[:, order], starts, axis=1)
    if k < n_identities:
        top = np.argpartition(-per_id, k - 1, axis=1)[:, :k]
    else:
        top = np.tile(np.arange(n_identities), (p, 1))
    top_scores = np.take_along_axis(per_id, top, axis=1)
    o = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, o, axis=1), np.take_along_axis(top_scores, o, axis=1)


def decide_identity(candidates: Sequence[Candidate], threshold: float) -> Identification:
    """Open-set decision: the best candidate if it reaches ``threshold``, else unknown."""
    cands = tuple(candidates)
    best = cands[0] if cands and cands[0].score >= threshold else None
    return Identification(candidates=cands, identity=best, threshold=threshold)
