"""Average linkage over a similarity graph: thresholds, weights and the user's constraints."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.cluster import agglomerate, similarity_edges


def _people(rng: np.random.Generator, people: int, each: int, spread: float) -> np.ndarray:
    centres = rng.normal(size=(people, 64))
    x = np.repeat(centres, each, axis=0) + spread * rng.normal(size=(people * each, 64))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_graph_holds_exactly_the_pairs_above_its_floor() -> None:
    x = _people(np.random.default_rng(1), 30, 5, 0.6)
    i, j, s = similarity_edges(x, 0.5)
    dense = x @ x.T
    want = {(a, b) for a, b in zip(*np.nonzero(dense >= 0.5), strict=True) if a < b}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want
    assert np.allclose(s, dense[i, j], atol=1e-6)
    with pytest.raises(ValueError, match="floor is too low"):
        similarity_edges(x, -1.0, max_edges=100)


def test_separated_people_come_out_as_their_own_clusters() -> None:
    x = _people(np.random.default_rng(2), 40, 6, 0.5)
    labels = agglomerate(len(x), similarity_edges(x, 0.3), 0.6, fill=0.0)
    truth = np.repeat(np.arange(40), 6)
    for person in range(40):
        assert len(set(labels[truth == person].tolist())) == 1
    assert len(set(labels.tolist())) == 40


def test_apart_is_never_joined_and_same_always_is() -> None:
    x = _people(np.random.default_rng(3), 2, 4, 0.3)
    edges = similarity_edges(x, 0.0)
    base = agglomerate(8, edges, 0.7)
    assert base.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    split = agglomerate(8, edges, 0.7, apart=[(0, 1)])
    assert split[0] != split[1]
    joined = agglomerate(8, edges, 0.7, same=[(0, 7)])
    assert joined[0] == joined[7]
    # a forced pair stays together even when nothing else is alike enough to join
    alone = agglomerate(8, edges, 1.1, same=[(2, 5)])
    assert alone[2] == alone[5] and len(set(alone.tolist())) == 7


def test_a_low_weight_face_pulls_the_average_less() -> None:
    # clusters {0, 1} and {2}: 0-2 alike (0.9), 1-2 not (0.5); plain average 0.7 < 0.75
    i = np.array([0, 0, 1], np.int32)
    j = np.array([1, 2, 2], np.int32)
    s = np.array([0.95, 0.9, 0.5], np.float32)
    assert len(set(agglomerate(3, (i, j, s), 0.75).tolist())) == 2
    w = np.array([1.0, 0.25, 1.0])  # face 1 is poor: weighted average (0.9 + 0.125) / 1.25
    assert len(set(agglomerate(3, (i, j, s), 0.75, weights=w).tolist())) == 1
