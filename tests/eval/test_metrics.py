"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.eval.identify import evaluate_open_set, rates_at, split
from facelens.eval.metrics import (
    best_threshold,
    roc_auc,
    tar_at_far,
    ten_fold,
    threshold_at_far,
)


def test_best_threshold_separates_when_possible() -> None:
    t, acc = best_threshold([0.1, 0.3, 0.6, 0.9], [False, False, True, True])
    assert acc == 1.0 and 0.3 < t < 0.6
    t, acc = best_threshold([0.5, 0.5], [True, False])  # a tie cannot be split
    assert acc == 0.5


def test_ten_fold_chooses_each_threshold_without_its_own_fold() -> None:
    rng = np.random.default_rng(0)
    same = np.tile([True, False], 300)
    scores = np.where(same, rng.normal(0.8, 0.1, 600), rng.normal(0.4, 0.1, 600))
    folds = np.repeat(np.arange(10), 60)
    r = ten_fold(scores, same, folds)
    assert len(r.accuracies) == 10 and 0.95 < r.mean <= 1.0
    # a fold whose labels are flipped cannot pull its own threshold
    flipped = same.copy()
    flipped[folds == 3] = ~flipped[folds == 3]
    assert ten_fold(scores, flipped, folds).accuracies[3] < 0.1


def test_roc_auc_and_tar_at_far() -> None:
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    impostors = np.linspace(0, 1, 1001)  # 1001 impostor scores
    assert threshold_at_far(impostors, 0.01) > 0.989
    tar, t = tar_at_far(np.r_[impostors, [0.995, 0.5]], np.r_[[False] * 1001, [True, True]], 0.01)
    assert tar == 0.5 and (impostors >= t).mean() <= 0.01


def test_open_set_split_and_rates() -> None:
    people = {f"p{i}": [1, 2] for i in range(10)} | {"solo": [1]}
    s = split(people, holdout=3, seed=1)
    assert len(s.gallery) == 8 and len(s.non_mated) in (5, 6)
    assert {k[0] for k in s.gallery}.isdisjoint({k[0] for k in s.non_mated})
    rng = np.random.default_rng(0)
    base = {n: rng.normal(size=16) for n in people}
    vec = {}
    for n, idx in people.items():
        for i in idx:
            v = base[n] + rng.normal(scale=0.1, size=16)
            vec[(n, i)] = (v / np.linalg.norm(v)).astype(np.float32)
    r = evaluate_open_set(s, vec, fpirs=(0.2,))
    assert r.rank1 == 1.0 and r.dir_at_fpir["0.2"] == 1.0
    fpir, dir_ = rates_at(s, vec, threshold=1.01)
    assert fpir == 0.0 and dir_ == 0.0
    vec[s.mated[0]] = None  # a probe without a face is a miss, not dropped
    assert evaluate_open_set(s, vec, fpirs=(0.2,)).rank1 < 1.0
    with pytest.raises(ValueError):
        split(people, holdout=20, seed=0)
