"""The similarity graph clustering works on: every pair of templates at least ``floor``
alike, found exactly (blocked matrix products, no approximation), never the dense matrix.

At 100,000 templates of 256 values the dense matrix would be 40 GB; the graph keeps only the
pairs that could matter (a few per face, many within a person photographed often).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["similarity_edges"]

BLOCK_ROWS = 1024


def similarity_edges(
    unit: NDArray[np.float32], floor: float, max_edges: int = 50_000_000
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float32]]:
    """(i, j, similarity) of every pair ``i < j`` with cosine similarity >= ``floor``.

    Raises:
        ValueError: more than ``max_edges`` pairs (a floor far too low for these templates).

    Example:
        >>> x = np.eye(3, dtype=np.float32); x[1] = x[0]
        >>> similarity_edges(x, 0.5)
        (array([0], dtype=int32), array([1], dtype=int32), array([1.], dtype=float32))
    """
    n = len(unit)
    rows: list[NDArray[np.int32]] = []
    cols: list[NDArray[np.int32]] = []
    sims: list[NDArray[np.float32]] = []
    total = 0
    for i0 in range(0, n, BLOCK_ROWS):
        i1 = min(n, i0 + BLOCK_ROWS)
        block = unit[i0:i1] @ unit[i0:].T  # only columns from i0 on: each pair once
        r, c = np.nonzero(block >= floor)
        keep = c + i0 > r + i0  # above the diagonal
        r, c = r[keep], c[keep]
        rows.append((r + i0).astype(np.int32))
        cols.append((c + i0).astype(np.int32))
        sims.append(block[r, c].astype(np.float32))
        total += len(r)
        if total > max_edges:
            raise ValueError(
                f"more than {max_edges} pairs are at least {floor} alike: the floor is too low "
                "for these templates"
            )
    if not rows:
        empty = np.zeros(0, np.int32)
        return empty, empty, np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
