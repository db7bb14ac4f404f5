"""Verification and identification metrics: 10-fold accuracy, ROC, DET, TAR@FAR, DIR@FPIR.

Conventions: a score is a similarity (higher = more alike); "accept" means
``score >= threshold``. FAR (false accept rate) = FMR; TAR = 1 - FNMR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FoldResult",
    "best_threshold",
    "det_curve",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "ten_fold",
    "threshold_at_far",
]


def best_threshold(scores: ArrayLike, same: ArrayLike) -> tuple[float, float]:
    """The threshold maximising accuracy on these pairs, and that accuracy.

    Candidates are the midpoints between consecutive distinct scores (and the extremes).

    Example:
        >>> best_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
        (0.5, 1.0)
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    order = np.argsort(s)
    s, y = s[order], y[order]
    uniq, first = np.unique(s, return_index=True)
    # accepting everything from index i on: correct = negatives below i + positives from i
    neg_below = np.concatenate([[0], np.cumsum(~y)])
    pos_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    cut = np.concatenate([first, [len(s)]])
    correct = neg_below[cut] + pos_from[cut]
    k = int(np.argmax(correct))
    lo = uniq[k - 1] if k > 0 else uniq[0] - 1.0
    hi = uniq[k] if k < len(uniq) else uniq[-1] + 1.0
    return float((lo + hi) / 2), float(correct[k] / len(s))


@dataclass(frozen=True)
class FoldResult:
    """10-fold cross-validated verification accuracy."""

    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


def ten_fold(
    scores: ArrayLike, same: ArrayLike, folds: ArrayLike, fixed: float | None = None
) -> FoldResult:
    """LFW's protocol: for each fold, choose the threshold on the other folds, measure on it.

    With a single fold there are no other folds: ``fixed`` (a threshold set elsewhere, such
    as the calibrated ``balanced`` one) is used instead, never one chosen on the fold itself.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    f = np.asarray(folds)
    accs, ths = [], []
    for k in np.unique(f):
        test = f == k
        if test.all():
            if fixed is None:
                raise ValueError("one fold only: give a fixed threshold to measure it at")
            t = fixed
        else:
            t, _ = best_threshold(s[~test], y[~test])
        accs.append(float(((s[test] >= t) == y[test]).mean()))
        ths.append(t)
    return FoldResult(tuple(accs), tuple(ths))


def roc_curve(
    scores: ArrayLike, same: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(FAR, TAR, threshold) for every distinct threshold, from strict to lenient."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    far = np.r_[0.0, fp / max(1, (~y).sum())]
    tar = np.r_[0.0, tp / max(1, y.sum())]
    return far, tar, np.r_[np.inf, s[last]]


def roc_auc(scores: ArrayLike, same: ArrayLike) -> float:
    """Area under the ROC curve."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.trapezoid(tar, far))


def threshold_at_far(impostor_scores: ArrayLike, far: float) -> float:
    """The lowest threshold at which at most ``far`` of the impostor scores are accepted."""
    s = np.sort(np.asarray(impostor_scores, np.float64))
    k = int(np.floor(len(s) * far))  # impostors we may accept
    if k >= len(s):
        return float(s[0])
    return float(np.nextafter(s[len(s) - k - 1], np.inf))


def tar_at_far(scores: ArrayLike, same: ArrayLike, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the threshold where FAR is at most ``far``."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    t = threshold_at_far(s[~y], far)
    return float((s[y] >= t).mean()), t


def det_curve(
    scores: ArrayLike, same: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(FMR, FNMR) pairs for a DET plot."""
    far, tar, _ = roc_curve(scores, same)
    return far, 1.0 - tar
