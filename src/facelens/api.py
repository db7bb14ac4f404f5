"""face_recognition-style verbs over one lazily built default ``Pipeline``.

Example:
    >>> import facelens
    >>> callable(facelens.detect)
    True
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from facelens.decode import load_image
from facelens.embed import Embeddings
from facelens.faces import Faces
from facelens.govern.governed import GovernedGallery
from facelens.match import Identification, Verification
from facelens.pipeline import Pipeline

__all__ = ["default_pipeline", "detect", "embed", "identify", "load_image", "verify"]

_default: Pipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The shared pipeline the verbs use (built on first call, models loaded on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Pipeline()
        return _default


def detect(image: NDArray[np.uint8]) -> Faces:
    """Faces in an RGB image (empty ``Faces`` when none)."""
    return default_pipeline().detect(image)


def embed(image: NDArray[np.uint8], faces: Faces | None = None) -> Embeddings:
    """One embedding per face (faces are detected when not given)."""
    return default_pipeline().embed(image, faces)


def verify(a: Embeddings, b: Embeddings, threshold: str | float | None = None) -> Verification:
    """Is face ``a`` the same person as face ``b``? (one embedding each)"""
    return default_pipeline().verify(a, b, threshold)


def identify(
    probes: Embeddings,
    gallery: GovernedGallery,
    threshold: str | float | None = None,
    k: int = 5,
) -> list[Identification]:
    """Who is each probe face among the gallery's consenting identities (None = unknown)?
    ``gallery``: ``facelens.Gallery.open(...)``; the search is audited, and refused while an
    operator has stopped identifications (``StoppedError``)."""
    return gallery.identify(probes, threshold, k)
