"""Caching a run's embeddings between evaluation commands (an ``.npz`` keyed by image)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["load_embeddings", "save_embeddings"]

Key = tuple[str, int]


def save_embeddings(path: Path, emb: Mapping[Key, NDArray[np.float32] | None], tag: str) -> None:
    """Write embeddings (None = no face) with the pipeline ``tag`` that made them."""
    keys = sorted(emb)
    dim = next((len(v) for v in emb.values() if v is not None), 128)
    zero = np.zeros(dim, np.float32)
    rows: list[NDArray[np.float32]] = []
    for k in keys:
        v = emb[k]
        rows.append(zero if v is None else v)
    vecs = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        names=np.array([k[0] for k in keys]),
        idx=np.array([k[1] for k in keys]),
        vecs=vecs,
        ok=np.array([emb[k] is not None for k in keys]),
        tag=np.array(tag),
    )


def load_embeddings(path: Path, tag: str) -> dict[Key, NDArray[np.float32] | None]:
    """Embeddings saved by ``save_embeddings`` with the same ``tag``; empty otherwise."""
    if not path.exists():
        return {}
    z = np.load(path, allow_pickle=False)
    if str(z["tag"]) != tag:
        return {}
    return {
        (str(n), int(i)): (v.astype(np.float32) if ok else None)
        for n, i, v, ok in zip(z["names"], z["idx"], z["vecs"], z["ok"], strict=True)
    }
