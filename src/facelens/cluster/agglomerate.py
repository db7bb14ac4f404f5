"""Average-linkage agglomeration over a similarity graph, quality-weighted and constrained.

Clusters start as single faces (or as the groups a user said are one person) and the two
clusters most alike on average are joined, again and again, until no two are at least
``stop`` alike. "Alike on average" weighs each pair of faces by the product of their
quality weights, so a blurred or tiny face counts for less than a sharp one; a pair the graph
does not hold (less alike than its floor) counts as ``fill``. An average of pairs is never
above the best of them, so only pairs of clusters at least ``stop`` alike are queued: the
rest of the graph only lowers averages. Two clusters a user said are
different people (``apart``) are never joined, however alike.

Why average linkage: on LFW's 13,233 photos it was ahead of dlib's chinese whispers and of
DBSCAN at every setting tried (docs/accuracy.md, "Face clustering"); single linkage (what
connected components and chinese whispers tend to) chains different people through one
look-alike pair.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["agglomerate"]


def _groups(n: int, same: Sequence[tuple[int, int]]) -> NDArray[np.int64]:
    """Union-find over must-link pairs: a group label per node (0..G-1)."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in same:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)], np.int64)
    _, labels = np.unique(roots, return_inverse=True)
    return labels.astype(np.int64)


def agglomerate(
    n: int,
    edges: tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float32]],
    stop: float,
    *,
    weights: NDArray[np.float64] | None = None,
    fill: float = 0.0,
    same: Sequence[tuple[int, int]] = (),
    apart: Sequence[tuple[int, int]] = (),
) -> NDArray[np.int64]:
    """A cluster label (0..K-1, in order of first node) per node.

    Args:
        n: nodes.
        edges: (i, j, similarity) of the pairs the graph holds (``similarity_edges``).
        stop: join no two clusters less alike on average than this.
        weights: (n,) quality weight of each node, > 0 (default all 1).
        fill: the similarity counted for a pair the graph does not hold.
        same: pairs that must end in one cluster (they start in one).
        apart: pairs that must not; when ``same`` puts an ``apart`` pair together the group
            stays together (the later correction is the user's to fix).

    Example:
        >>> i, j = np.array([0, 2], np.int32), np.array([1, 3], np.int32)
        >>> s = np.array([0.9, 0.95], np.float32)
        >>> agglomerate(4, (i, j, s), 0.8).tolist()
        [0, 0, 1, 1]
        >>> agglomerate(4, (i, j, s), 0.8, apart=[(2, 3)]).tolist()
        [0, 0, 1, 2]
    """
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (n,) or (n and float(w.min()) <= 0):
        raise ValueError(f"weights must be ({n},) and positive")
    group = _groups(n, same)
    g = int(group.max()) + 1 if n else 0
    size = np.bincount(group, weights=w, minlength=g).tolist()

    nb = _between_groups(group, g, w, edges)
    cannot: list[set[int]] = [set() for _ in range(g)]
    for x, y in apart:
        p, q = int(group[x]), int(group[y])
        if p != q:
            cannot[p].add(q)
            cannot[q].add(p)

    def linkage(p: int, q: int, cell: list[float]) -> float:
        both = size[p] * size[q]
        return float((cell[0] + (both - cell[1]) * fill) / both)

    version = [0] * g
    alive = [True] * g
    heap = [
        (-linkage(p, q, cell), p, q, 0, 0)
        for p in range(g)
        for q, cell in nb[p].items()
        if p < q and q not in cannot[p] and linkage(p, q, cell) >= stop
    ]
    heapq.heapify(heap)
    parent = list(range(g))
    while heap:
        neg, p, q, vp, vq = heapq.heappop(heap)
        if -neg < stop:
            break
        if not (alive[p] and alive[q]) or version[p] != vp or version[q] != vq:
            continue
        if q in cannot[p]:
            continue
        if len(nb[p]) < len(nb[q]):
            p, q = q, p  # fold the smaller neighbourhood into the larger
        _fold(p, q, nb, cannot)
        size[p] += size[q]
        alive[q] = False
        parent[q] = p
        version[p] += 1
        for r, cell in nb[p].items():
            link = linkage(p, r, cell)
            if link >= stop and r not in cannot[p]:
                x, y = (p, r) if p < r else (r, p)
                heapq.heappush(heap, (-link, x, y, version[x], version[y]))
    return _labels(group, parent)


def _between_groups(
    group: NDArray[np.int64],
    g: int,
    w: NDArray[np.float64],
    edges: tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float32]],
) -> list[dict[int, list[float]]]:
    """The graph between groups: per pair of groups, one cell shared by both ends holding the
    sum of w_i w_j s_ij and of w_i w_j over the node pairs the graph holds."""
    ei, ej, es = edges
    a, b = group[ei], group[ej]
    keep = a != b
    a, b, ww = a[keep], b[keep], w[ei[keep]] * w[ej[keep]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    uniq, inv = np.unique(lo * g + hi, return_inverse=True)
    sws = np.bincount(inv, weights=ww * es[keep], minlength=len(uniq))
    sw = np.bincount(inv, weights=ww, minlength=len(uniq))
    nb: list[dict[int, list[float]]] = [{} for _ in range(g)]
    for k, x, y in zip(uniq.tolist(), sws.tolist(), sw.tolist(), strict=True):
        p, q = divmod(k, g)
        cell = [x, y]
        nb[p][q] = cell
        nb[q][p] = cell
    return nb


def _fold(p: int, q: int, nb: list[dict[int, list[float]]], cannot: list[set[int]]) -> None:
    """Group q joins group p: its links and its cannot-join constraints become p's."""
    del nb[p][q]
    del nb[q][p]
    for r, cell in nb[q].items():
        mine = nb[p].get(r)
        if mine is None:
            nb[p][r] = cell
            nb[r][p] = cell
        else:
            mine[0] += cell[0]
            mine[1] += cell[1]
        del nb[r][q]
    nb[q] = {}
    for r in cannot[q]:
        cannot[r].discard(q)
        cannot[r].add(p)
    cannot[p] |= cannot[q]
    cannot[q] = set()


def _labels(group: NDArray[np.int64], parent: list[int]) -> NDArray[np.int64]:
    """Each node's final cluster, numbered 0..K-1 in order of its first node."""

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    if not len(group):
        return np.zeros(0, np.int64)
    final = np.array([find(int(x)) for x in group], np.int64)
    _, first = np.unique(final, return_index=True)
    order = np.argsort(np.argsort(first))
    _, inv = np.unique(final, return_inverse=True)
    return order[inv].astype(np.int64)
