"""match: ranking equals brute force; open-set decisions; named thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from facelens import Embeddings
from facelens.match import (
    OPERATING_POINTS,
    Candidate,
    IdentifyRule,
    decide_identity,
    rank_identities,
    resolve_threshold,
    verify,
)


def test_rank_identities_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    sims = rng.uniform(-1, 1, (7, 40)).astype(np.float32)
    owner = rng.integers(0, 9, 40)
    owner[:9] = np.arange(9)  # every identity has a sample
    idx, sc = rank_identities(sims, owner, 9, 4)
    for p in range(7):
        per = np.array([sims[p, owner == i].max() for i in range(9)])
        expect = np.argsort(-per)[:4]
        assert idx[p].tolist() == expect.tolist()
        assert np.allclose(sc[p], per[expect])


def test_rank_with_k_larger_than_the_gallery() -> None:
    idx, sc = rank_identities(np.array([[0.2, 0.9]], np.float32), np.array([1, 0]), 2, 10)
    assert idx.tolist() == [[0, 1]] and np.allclose(sc, [[0.9, 0.2]])


def test_open_set_answers_unknown_below_threshold() -> None:
    c = [Candidate("a", "Ann", 0.80), Candidate("b", "Bob", 0.70)]
    assert decide_identity(c, 0.9).identity is None
    assert decide_identity(c, 0.9).candidates[0].name == "Ann"  # still listed
    assert decide_identity(c, 0.75).identity == c[0]
    assert decide_identity([], 0.5).identity is None


def test_verify_uses_the_threshold_inclusively() -> None:
    a = Embeddings([[1.0, 0.0]], "m")
    b = Embeddings([[0.6, 0.8]], "m")
    assert verify(a, b, 0.6).same and not verify(a, b, 0.61).same
    with pytest.raises(ValueError, match="one face with one face"):
        verify(Embeddings([[1.0, 0.0], [0.0, 1.0]], "m"), b, 0.5)


def test_thresholds_by_name_or_value() -> None:
    t = resolve_threshold("dlib_resnet_v1", None, "balanced")
    assert t == OPERATING_POINTS["dlib_resnet_v1"]["balanced"].similarity
    assert resolve_threshold("dlib_resnet_v1", 0.5, "balanced") == 0.5
    with pytest.raises(ValueError, match="unknown operating point 'loose'"):
        resolve_threshold("dlib_resnet_v1", "loose", "balanced")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        resolve_threshold("dlib_resnet_v1", 3.0, "balanced")


def test_every_operating_point_says_how_it_was_measured() -> None:
    for points in OPERATING_POINTS.values():
        for p in points.values():
            assert p.measured_by.startswith("python benchmarks/") and p.meaning


def test_normalised_rule_discounts_probes_that_resemble_everyone() -> None:
    rule = IdentifyRule(0.5, cohort=4, weight=0.5, fallback=0.95)
    # same best similarity: a clear winner passes, one among look-alikes does not
    clear = [Candidate(f"i{j}", f"P{j}", s) for j, s in enumerate([0.93, 0.80, 0.79, 0.78, 0.77])]
    crowd = [Candidate(f"i{j}", f"P{j}", s) for j, s in enumerate([0.93, 0.92, 0.92, 0.91, 0.91])]
    a, b = decide_identity(clear, rule, k=2), decide_identity(crowd, rule, k=2)
    assert a.identity == clear[0] and len(a.candidates) == 2
    assert a.decision_score == pytest.approx(0.93 - 0.5 * np.mean([0.80, 0.79, 0.78, 0.77]))
    assert b.identity is None and b.decision_score == pytest.approx(0.93 - 0.5 * 0.915)
    # fewer runners-up than the cohort: the plain fallback threshold decides
    assert decide_identity(clear[:2], rule).identity is None  # 0.93 < 0.95
    assert decide_identity([Candidate("x", "X", 0.96)], rule).identity is not None
    assert decide_identity([], rule).identity is None
    # vectorised scores agree with the per-probe score
    ranked = np.array([[c.score for c in clear], [c.score for c in crowd]], np.float32)
    assert np.allclose(rule.scores(ranked), [a.decision_score, b.decision_score])
    with pytest.raises(ValueError, match="needs 5 candidates"):
        rule.scores(ranked[:, :3])
