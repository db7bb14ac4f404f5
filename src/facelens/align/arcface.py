"""ArcFace alignment: the detector's five keypoints mapped onto a fixed template.

The template (InsightFace's, used by ArcFace, SFace, AdaFace and most ONNX face recognition
networks) places the eye centres, nose tip and mouth corners of a 112 x 112 chip; for another
chip size it is scaled. The similarity transform (rotation, uniform scale, translation) that
best maps the keypoints onto it in the least-squares sense (Umeyama's method, as OpenCV's
``FaceRecognizerSF.alignCrop`` computes it) warps the image with bilinear interpolation and
black borders.

Example:
    >>> m = similarity(TEMPLATE_112, TEMPLATE_112)
    >>> np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["TEMPLATE_112", "arcface_chips", "similarity"]

# (x, y) in a 112 x 112 chip, in facelens.faces.KEYPOINTS order.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float64,
)


def similarity(src: ArrayLike, dst: ArrayLike) -> NDArray[np.float64]:
    """The 2 x 3 similarity transform taking points ``src`` (K, 2) closest to ``dst`` (K, 2)
    (Umeyama 1991, no reflection)."""
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    ms, md = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - ms, d - md
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(cov) < 0:
        sign[1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (sc**2).sum() / len(s)
    scale = float((sig * sign).sum() / var) if var > 0 else 1.0
    t = md - scale * rot @ ms
    out: NDArray[np.float64] = np.c_[scale * rot, t]
    return out


def arcface_chips(
    image: NDArray[np.uint8], keypoints: ArrayLike, size: int = 112
) -> NDArray[np.uint8]:
    """(N, size, size, 3) chips of ``image`` aligned on ``keypoints`` (N, 5, 2)."""
    import cv2

    kp = np.asarray(keypoints, np.float64).reshape(-1, 5, 2)
    template = TEMPLATE_112 * (size / 112.0)
    out = np.zeros((len(kp), size, size, 3), np.uint8)
    for i, k in enumerate(kp):
        m = similarity(k, template)
        out[i] = cv2.warpAffine(
            image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
    return out
