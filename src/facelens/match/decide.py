"""1:1 verification and open-set 1:N identification decisions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.match.similarity import cosine_similarity

__all__ = [
    "Candidate",
    "Identification",
    "IdentifyRule",
    "Verification",
    "as_rule",
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
class IdentifyRule:
    """How a probe's ranked candidates become "this person" or "unknown".

    The decision score is the best candidate's similarity less ``weight`` times the mean
    similarity of the next ``cohort`` candidates (the runners-up). With ``cohort = 0`` it is
    the plain similarity. Subtracting part of the runners-up's level discounts probes that
    resemble *everyone* a little (the reason large galleries produce confident false
    matches), so the same threshold holds its false-positive rate across gallery sizes
    (docs/accuracy.md, "Open-set rule").

    Attributes:
        threshold: the decision score a best candidate needs.
        cohort: runners-up used; the gallery is searched ``1 + cohort`` deep.
        weight: share of the runners-up's mean subtracted.
        fallback: plain-similarity threshold used when fewer than ``cohort`` runners-up
            exist (a gallery smaller than the cohort).
        name: the operating point it came from, for reports.

    Example:
        >>> rule = IdentifyRule(0.5, cohort=2, weight=0.5, fallback=0.93)
        >>> round(rule.score([0.95, 0.80, 0.78]), 4)  # 0.95 - 0.5 * 0.79
        0.555
        >>> rule.accepts([0.95, 0.80, 0.78]), rule.accepts([0.95])  # 0.95 >= fallback
        (True, True)
    """

    threshold: float
    cohort: int = 0
    weight: float = 0.0
    fallback: float | None = None
    name: str = "threshold"

    @property
    def depth(self) -> int:
        """Candidates the decision needs from the gallery."""
        return 1 + self.cohort

    @property
    def normalised(self) -> bool:
        return self.cohort > 0 and self.weight != 0.0

    def score(self, scores: Sequence[float]) -> float:
        """The decision score of a ranked list of candidate similarities (best first)."""
        if not scores:
            return -math.inf
        if not self.normalised or len(scores) <= self.cohort:
            return float(scores[0])
        return float(scores[0]) - self.weight * float(np.mean(scores[1 : 1 + self.cohort]))

    def scores(self, ranked: NDArray[np.float32]) -> NDArray[np.float64]:
        """Vectorised ``score``: (P, >= depth) similarities, best first per row."""
        s = np.asarray(ranked, np.float64)
        if not self.normalised:
            return s[:, 0]
        if s.shape[1] < self.depth:
            raise ValueError(f"the rule needs {self.depth} candidates per probe, got {s.shape[1]}")
        out: NDArray[np.float64] = s[:, 0] - self.weight * s[:, 1 : self.depth].mean(axis=1)
        return out

    def accepts(self, scores: Sequence[float]) -> bool:
        """Does the best of these ranked similarities reach the rule?"""
        if not scores:
            return False
        if self.normalised and len(scores) <= self.cohort:
            return self.fallback is not None and float(scores[0]) >= self.fallback
        return self.score(scores) >= self.threshold

    def describe(self) -> dict[str, object]:
        """For reports and audit records."""
        out: dict[str, object] = {"name": self.name, "threshold": round(self.threshold, 4)}
        if self.normalised:
            out.update(cohort=self.cohort, weight=self.weight)
            if self.fallback is not None:
                out["fallback"] = round(self.fallback, 4)
        return out


def as_rule(rule: IdentifyRule | float) -> IdentifyRule:
    """A plain number is a similarity threshold."""
    return rule if isinstance(rule, IdentifyRule) else IdentifyRule(float(rule))


@dataclass(frozen=True)
class Identification:
    """Open-set answer for one probe: the best candidates, and who it is (None = unknown).

    Attributes:
        candidates: up to k candidates, best first, whatever their score.
        identity: the best candidate if it passes the rule, else None.
        threshold: the rule's threshold (on ``decision_score``).
        decision_score: what was compared with the threshold (the best similarity, or that
            less part of the runners-up's mean for a normalised rule).
        rule: the rule's name.
    """

    candidates: tuple[Candidate, ...]
    identity: Candidate | None
    threshold: float
    decision_score: float | None = None
    rule: str = "threshold"


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
        >>> idx.tolist(), sc.astype(float).round(2).tolist()
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


def decide_identity(
    candidates: Sequence[Candidate], rule: IdentifyRule | float, k: int | None = None
) -> Identification:
    """Open-set decision: the best candidate if it passes ``rule`` (a similarity threshold
    or an ``IdentifyRule``), else unknown. ``candidates`` must be ranked and at least
    ``rule.depth`` deep where the gallery has that many; ``k`` trims what is reported."""
    r = as_rule(rule)
    cands = tuple(candidates)
    scores = [c.score for c in cands]
    best = cands[0] if r.accepts(scores) else None
    return Identification(
        candidates=cands[:k] if k is not None else cands,
        identity=best,
        threshold=r.threshold,
        decision_score=r.score(scores) if cands else None,
        rule=r.name,
    )
