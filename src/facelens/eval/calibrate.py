"""Calibrating a model's thresholds on LFW: the method behind every shipped calibration.

For one template tag and one template per LFW image:

1. ``balanced``: the mean of the 10 View 2 folds' accuracy-maximising thresholds;
2. the impostor tail: over every cross-person pair of the images (tens of millions for all of
   LFW), the threshold that gives each false-match rate from 1e-2 down to what the number of
   pairs supports;
3. the open-set rule (``OpenSetCalibration``): for galleries of ``OPEN_SET_SIZES`` people
   drawn from LFW (``OPEN_SET_DRAWS`` draws each, seeds 1000+, enrolled from one random
   image), the threshold on the cohort-normalised score ``s1 - 0.5 mean(s2..s5)`` that gives
   FPIR 1% over the images of everyone not drawn, and the size from which that score finds
   more enrolled people than the plain similarity.

``calibration_record`` returns the whole as the JSON record ``facelens models calibrate``
stores in the user's model registry (``facelens.match.thresholds.Calibrations.of`` reads it
back, with ``parse_record``).

Example:
    >>> counts, best, n = impostor_scores({("a", 1): np.array([1.0, 0]),
    ...                                    ("b", 1): np.array([0.0, 1])})
    >>> n, float(best[-1])
    (1, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.eval.lfw import LfwPair, pair_scores
from facelens.eval.metrics import ten_fold

__all__ = [
    "FMRS",
    "OPEN_SET_SIZES",
    "calibration_record",
    "impostor_scores",
    "open_set_table",
    "ranked",
    "tail_thresholds",
]

Key = tuple[str, int]
FMRS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
COHORT, WEIGHT, FPIR = 4, 0.5, 0.01
OPEN_SET_SIZES = (100, 200, 300, 500, 1000, 2000, 4900)
OPEN_SET_DRAWS = 10
_EDGES = np.linspace(-1, 1, 20001)


def impostor_scores(
    emb: Mapping[Key, NDArray[np.float32] | None], people: set[str] | None = None, top: int = 20000
) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
    """Histogram counts (20,000 bins over [-1, 1]) and the ``top`` largest scores of every
    cross-person pair (restricted to ``people`` when given), and the number of pairs."""
    keys = [k for k, v in emb.items() if v is not None and (people is None or k[0] in people)]
    v = np.stack([emb[k] for k in keys]).astype(np.float32)  # type: ignore[misc]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    _, person = np.unique([k[0] for k in keys], return_inverse=True)
    counts = np.zeros(20000, np.int64)
    best = np.empty(0, np.float32)
    n_pairs = 0
    step = 1024
    for i in range(0, len(keys), step):
        s = v[i : i + step] @ v[i:].T  # rows i.., columns from i (upper triangle incl.)
        r = np.arange(s.shape[0])[:, None] + i
        c = np.arange(s.shape[1])[None, :] + i
        mask = (c > r) & (person[r] != person[c])
        x = s[mask]
        n_pairs += x.size
        counts += np.histogram(x, bins=_EDGES)[0]
        if x.size:
            best = np.concatenate([best, np.partition(x, max(0, x.size - top))[-top:]])
            if best.size > top:
                best = np.partition(best, best.size - top)[-top:]
    return counts, np.sort(best), n_pairs


def tail_thresholds(
    counts: NDArray[np.int64], best: NDArray[np.float32], n_pairs: int
) -> dict[float, float]:
    """Threshold per FMR: exact from the largest scores where they suffice, else binned."""
    out = {}
    above = np.cumsum(counts[::-1])[::-1]  # pairs scoring >= each bin's lower edge
    for fmr in FMRS:
        k = int(np.floor(n_pairs * fmr))
        if k < 1:
            continue
        if k <= best.size:
            out[fmr] = float(np.nextafter(best[best.size - k - 1], np.float32(2)))
        else:
            b = int(np.argmax(above <= k))
            out[fmr] = float(_EDGES[b])
    return out


def ranked(p: NDArray[np.float32], g: NDArray[np.float32], depth: int) -> tuple[Any, Any]:
    """(P, depth) best similarities per probe, best first, and the best one's index."""
    out = np.full((len(p), depth), -1.0, np.float32)
    arg = np.empty(len(p), np.int64)
    for a in range(0, len(p), 500):
        s = p[a : a + 500] @ g.T
        d = min(depth, s.shape[1])
        top = np.argpartition(-s, d - 1, axis=1)[:, :d]
        v = np.take_along_axis(s, top, 1)
        o = np.argsort(-v, axis=1)
        out[a : a + 500, :d] = np.take_along_axis(v, o, 1)
        arg[a : a + 500] = np.take_along_axis(top, o, 1)[:, 0]
    return out, arg


def open_set_table(
    emb: Mapping[Key, NDArray[np.float32] | None],
    sizes: Sequence[int] = OPEN_SET_SIZES,
    draws: int = OPEN_SET_DRAWS,
) -> list[dict[str, float]]:
    """Per gallery size: the FPIR-1% thresholds of the normalised and the plain score, and
    the share of enrolled people's other images each finds at its own threshold."""
    people: dict[str, list[NDArray[np.float32]]] = {}
    for (name, _), v in sorted(emb.items()):
        if v is not None:
            people.setdefault(name, []).append(np.asarray(v, np.float32) / np.linalg.norm(v))
    names = sorted(people)
    multi = [x for x in names if len(people[x]) > 1]
    rows = []
    for n in sizes:
        if n > len(names) - 10:
            continue
        nm_raw, nm_norm, m_raw, m_norm, m_ok = [], [], [], [], []
        for d in range(draws):
            rng = np.random.default_rng(1000 + d)
            pool = multi if n <= len(multi) // 2 else names
            enrolled = [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False).tolist())]
            inside = set(enrolled)
            first = {x: int(rng.integers(len(people[x]))) for x in enrolled}
            g = np.stack([people[x][first[x]] for x in enrolled])
            non = np.stack([v for x in names if x not in inside for v in people[x]])
            r, _ = ranked(non, g, 1 + COHORT)
            nm_raw.append(r[:, 0])
            nm_norm.append(r[:, 0] - WEIGHT * r[:, 1:].mean(axis=1))
            mated = [(x, v) for x in enrolled for j, v in enumerate(people[x]) if j != first[x]]
            if mated:
                rm, arg = ranked(np.stack([v for _, v in mated]), g, 1 + COHORT)
                m_raw.append(rm[:, 0])
                m_norm.append(rm[:, 0] - WEIGHT * rm[:, 1:].mean(axis=1))
                who = [enrolled[a] for a in arg]
                m_ok.append(np.array([w == x for w, (x, _) in zip(who, mated, strict=True)]))
        nr, nn = np.concatenate(nm_raw), np.concatenate(nm_norm)
        t_norm = float(np.quantile(nn, 1 - FPIR))
        t_raw = float(np.quantile(nr, 1 - FPIR))
        row = {"n": float(n), "t_norm": t_norm, "t_raw": t_raw, "dir_norm": 0.0, "dir_raw": 0.0}
        if m_ok:
            mr, mn, ok = np.concatenate(m_raw), np.concatenate(m_norm), np.concatenate(m_ok)
            row["dir_norm"] = float((ok & (mn >= t_norm)).mean())
            row["dir_raw"] = float((ok & (mr >= t_raw)).mean())
        rows.append(row)
    return rows


def calibration_record(
    tag: str,
    emb: Mapping[Key, NDArray[np.float32] | None],
    pairs: Sequence[LfwPair],
    measured_by: str,
) -> dict[str, Any]:
    """The whole calibration of ``tag`` from its LFW templates (see the module's text)."""
    scores, same, folds, _ = pair_scores(pairs, emb)
    balanced = float(np.mean(ten_fold(scores, same, folds).thresholds))
    counts, best, n_pairs = impostor_scores(emb)
    tail = tail_thresholds(counts, best, n_pairs)
    rows = open_set_table(emb)
    switch = next((r for r in rows if r["dir_norm"] > r["dir_raw"]), None)
    open_set = None
    if switch is not None:
        open_set = {
            "cohort": COHORT,
            "weight": WEIGHT,
            "min_identities": int(switch["n"]),
            "table": [[int(r["n"]), round(r["t_norm"], 4)] for r in rows if r["n"] >= switch["n"]],
            "measured_by": measured_by,
        }
    return {
        "model": tag,
        "balanced": round(balanced, 4),
        "tail": [[f, round(t, 4)] for f, t in sorted(tail.items(), reverse=True)],
        "impostor_pairs": int(n_pairs),
        "measured_by": measured_by,
        "images": sum(v is not None for v in emb.values()),
        "open_set": open_set,
    }
