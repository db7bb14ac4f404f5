"""``Embeddings``: unit vectors and the name of the model that made them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelens.errors import ModelMismatchError

__all__ = ["Embeddings"]


@dataclass(frozen=True, eq=False)
class Embeddings:
    """N face embeddings from one model.

    Attributes:
        vectors: (N, D) float32, each row L2-normalised (rows are normalised on construction).
        model: tag of the model that made them, e.g. ``"dlib_resnet_v1"``.

    Example:
        >>> e = Embeddings([[3.0, 4.0]], model="m")
        >>> e.vectors.tolist(), e.model
        ([[0.6000000238418579, 0.800000011920929]], 'm')
    """

    vectors: NDArray[np.float32]
    model: str

    def __post_init__(self) -> None:
        v = np.array(self.vectors, dtype=np.float32, copy=True)
        if v.ndim == 1 and v.size == 0:
            v = v.reshape(0, 0)
        if v.ndim != 2:
            raise ValueError(f"Embeddings.vectors must have shape (N, D), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("Embeddings.vectors must be finite")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("Embeddings.vectors has a zero row, which has no direction")
        v = (v / norms).astype(np.float32)
        v.setflags(write=False)
        if not self.model:
            raise ValueError("Embeddings.model must name the model that made them")
        object.__setattr__(self, "vectors", v)

    @classmethod
    def empty(cls, model: str, dim: int = 128) -> Embeddings:
        return cls(np.zeros((0, dim), np.float32), model)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def __iter__(self) -> Iterator[Embeddings]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int | slice | ArrayLike) -> Embeddings:
        sel: Any = [int(index)] if isinstance(index, int | np.integer) else index
        return Embeddings(self.vectors[sel], self.model)

    def check_same_model(self, other: Embeddings) -> None:
        """Raise ``ModelMismatchError`` unless ``other`` comes from the same model."""
        if self.model != other.model:
            raise ModelMismatchError(self.model, other.model)
        if self.dim != other.dim and len(self) and len(other):
            raise ModelMismatchError(
                f"{self.model} ({self.dim}-d)", f"{other.model} ({other.dim}-d)"
            )

    @staticmethod
    def concat(parts: list[Embeddings]) -> Embeddings:
        """One ``Embeddings`` from several of the same model."""
        if not parts:
            raise ValueError("nothing to concatenate")
        for p in parts[1:]:
            parts[0].check_same_model(p)
        return Embeddings(np.concatenate([p.vectors for p in parts]), parts[0].model)
