"""Glue shared by the dlib backends: importing dlib, and converting boxes to and from dlib's
rectangles (``left, top, right, bottom`` with ``right``/``bottom`` inclusive)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import MissingDependencyError


def import_dlib() -> Any:
    """The dlib module, or a ``ModelError`` saying which wheel to install."""
    try:
        import dlib
    except ImportError:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            "dlib", "dlib's own backends", "pip install dlib-bin (the prebuilt wheel)"
        ) from None
    return dlib


def to_rect(box: NDArray[np.float32]) -> Any:
    """``[x1, y1, x2, y2]`` (x2 exclusive) -> ``dlib.rectangle``."""
    dlib = import_dlib()
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


def from_rect(rect: Any) -> list[float]:
    """``dlib.rectangle`` -> ``[x1, y1, x2, y2]`` (x2 exclusive)."""
    return [
        float(rect.left()),
        float(rect.top()),
        float(rect.right() + 1),
        float(rect.bottom() + 1),
    ]
