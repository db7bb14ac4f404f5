"""Open-set 1:N identification on LFW: rank-1, and DIR at a given FPIR.

Protocol (``split``): of all LFW people, ``holdout`` (chosen with a seeded generator) are
left out of the gallery; every other person is enrolled from their first image. Mated probes
are the other images of enrolled people; non-mated probes are all images of the people left
out. For each probe the gallery returns its best candidate and score.

- rank-1 (closed set): the share of mated probes whose best candidate is right;
- FPIR(t): the share of non-mated probes whose best score reaches t;
- DIR(t): the share of mated probes whose best candidate is right *and* reaches t;
- DIR at FPIR x: DIR at the lowest threshold whose FPIR is at most x.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facelens.eval.metrics import threshold_at_far
from facelens.match.decide import IdentifyRule, as_rule

__all__ = ["OpenSetResult", "OpenSetSplit", "evaluate_open_set", "rates_at", "split"]

Key = tuple[str, int]


@dataclass(frozen=True)
class OpenSetSplit:
    """Who is enrolled from which image, and the probes."""

    gallery: tuple[Key, ...]
    mated: tuple[Key, ...]
    non_mated: tuple[Key, ...]


def split(people: Mapping[str, Sequence[int]], holdout: int, seed: int) -> OpenSetSplit:
    """The open-set split of ``people`` (name -> image numbers) for one seed.

    Example:
        >>> s = split({"a": [1, 2], "b": [1], "c": [1, 2, 3]}, holdout=1, seed=0)
        >>> len(s.gallery) + 1 == 3 and len(s.non_mated) >= 1
        True
    """
    names = sorted(people)
    rng = np.random.default_rng(seed)
    out = set(rng.choice(len(names), size=holdout, replace=False).tolist())
    gallery, mated, non_mated = [], [], []
    for i, name in enumerate(names):
        idx = sorted(people[name])
        if i in out:
            non_mated += [(name, j) for j in idx]
        else:
            gallery.append((name, idx[0]))
            mated += [(name, j) for j in idx[1:]]
    return OpenSetSplit(tuple(gallery), tuple(mated), tuple(non_mated))


@dataclass(frozen=True)
class OpenSetResult:
    """Figures of one open-set run."""

    rank1: float
    dir_at_fpir: dict[str, float]
    thresholds: dict[str, float]
    gallery_size: int
    mated: int
    non_mated: int


def _gallery(
    s: OpenSetSplit, vectors: Mapping[Key, NDArray[np.float32] | None]
) -> tuple[NDArray[np.float32], NDArray[np.str_]]:
    gal = [k for k in s.gallery if vectors.get(k) is not None]
    return (
        np.stack([vectors[k] for k in gal]).astype(np.float32),  # type: ignore[misc]
        np.array([k[0] for k in gal]),
    )


def _best(
    probes: Sequence[Key],
    vectors: Mapping[Key, NDArray[np.float32] | None],
    g: NDArray[np.float32],
    names: NDArray[np.str_],
    rule: IdentifyRule | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    """Decision score (the best similarity, or ``rule``'s score of the ranked similarities)
    and best candidate per probe; -inf and "" for a probe without a face."""
    r = rule or IdentifyRule(0.0)
    top = np.full(len(probes), -np.inf)
    who = np.full(len(probes), "", dtype=object)
    pos = [i for i, k in enumerate(probes) if vectors.get(k) is not None]
    depth = min(r.depth, len(g))
    for a in range(0, len(pos), 1000):
        chunk = pos[a : a + 1000]
        p = np.stack([vectors[probes[i]] for i in chunk]).astype(np.float32)  # type: ignore[misc]
        sims = p @ g.T
        part = np.argpartition(-sims, depth - 1, axis=1)[:, :depth]
        vals = np.take_along_axis(sims, part, 1)
        order = np.argsort(-vals, axis=1)
        ranked = np.take_along_axis(vals, order, 1)
        best = np.take_along_axis(part, order, 1)[:, 0]
        score = r.scores(ranked) if depth >= r.depth else ranked[:, 0].astype(np.float64)
        top[chunk] = score
        who[chunk] = names[best]
    return top, who.astype(str)


def evaluate_open_set(
    s: OpenSetSplit,
    vectors: Mapping[Key, NDArray[np.float32] | None],
    fpirs: Sequence[float] = (0.01, 0.001),
    rule: IdentifyRule | None = None,
) -> OpenSetResult:
    """Run one split. Probes or gallery images without a face are kept in the denominators:
    a mated probe with no face is a miss, a non-mated one a correct rejection.

    With ``rule``, its decision score (for example cohort-normalised) is what the FPIR
    thresholds are set on; without, the best similarity. ``rule``'s own threshold is not
    used here (see ``rates_at``).
    """
    g, names = _gallery(s, vectors)
    m_top, m_who = _best(s.mated, vectors, g, names, rule)
    n_top, _ = _best(s.non_mated, vectors, g, names, rule)
    right = m_who == np.array([k[0] for k in s.mated])
    dirs, ths = {}, {}
    for f in fpirs:
        t = threshold_at_far(n_top, f)
        ths[f"{f:g}"] = t
        dirs[f"{f:g}"] = float((right & (m_top >= t)).mean())
    return OpenSetResult(
        rank1=float(right.mean()),
        dir_at_fpir=dirs,
        thresholds=ths,
        gallery_size=len(g),
        mated=len(s.mated),
        non_mated=len(s.non_mated),
    )


def rates_at(
    s: OpenSetSplit,
    vectors: Mapping[Key, NDArray[np.float32] | None],
    threshold: IdentifyRule | float,
) -> tuple[float, float]:
    """(FPIR, DIR) of one split under a rule (or a plain similarity threshold)."""
    rule = as_rule(threshold)
    g, names = _gallery(s, vectors)
    n_top, _ = _best(s.non_mated, vectors, g, names, rule)
    m_top, m_who = _best(s.mated, vectors, g, names, rule)
    right = m_who == np.array([k[0] for k in s.mated])
    t = rule.threshold
    if rule.normalised and len(g) <= rule.cohort:
        t = rule.fallback if rule.fallback is not None else np.inf
    return float((n_top >= t).mean()), float((right & (m_top >= t)).mean())
