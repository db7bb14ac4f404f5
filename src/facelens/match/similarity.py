"""Cosine similarity between embeddings of the same model."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings

__all__ = ["cosine_similarity"]


def cosine_similarity(a: Embeddings, b: Embeddings) -> NDArray[np.float32]:
    """(len(a), len(b)) cosine similarities; ``ModelMismatchError`` across models.

    Example:
        >>> e = Embeddings([[1.0, 0.0], [0.0, 1.0]], model="m")
        >>> cosine_similarity(e, e).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    a.check_same_model(b)
    return np.asarray(np.clip(a.vectors @ b.vectors.T, -1.0, 1.0), np.float32)
