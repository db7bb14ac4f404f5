"""Input checks shared by every detector backend."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def check_rgb(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The image as a C-contiguous RGB uint8 array, or ValueError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be RGB uint8 with shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    return np.ascontiguousarray(image)
