"""Detection on a turned copy of the image, for heads tilted beyond a detector's range.

YuNet and CenterFace were trained on mostly upright faces: on LFW photos turned 30 degrees
YuNet finds no face in 44 of 5,712 (dlib's MMOD in 1; docs/accuracy.md, "rot30"). For a
request about one person (``Pipeline.detect_single``), a photo without a face is searched
again turned each way; what is found there is mapped back to the original image's
coordinates (keypoints exactly, boxes as the upright box around the turned one).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from facelens.detect.base import Detector
from facelens.faces import Faces

__all__ = ["ROTATIONS", "detect_rotated"]

# Degrees, counter-clockwise as OpenCV turns them; tried in this order.
ROTATIONS = (30.0, -30.0)


def _turn(
    image: NDArray[np.uint8], degrees: float
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """``image`` turned by ``degrees`` on a canvas large enough to keep every pixel, and the
    2x3 matrix that takes the turned image's points back to the original's."""
    import cv2

    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * c + h * s)), int(np.ceil(w * s + h * c))
    m[0, 2] += (nw - w) / 2
    m[1, 2] += (nh - h) / 2
    turned = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return np.ascontiguousarray(turned), np.asarray(cv2.invertAffineTransform(m), np.float64)


def _apply(m: NDArray[np.float64], pts: NDArray[np.float32]) -> NDArray[np.float32]:
    flat = pts.reshape(-1, 2).astype(np.float64)
    out = flat @ m[:, :2].T + m[:, 2]
    return out.reshape(pts.shape).astype(np.float32)


def detect_rotated(detector: Detector, image: NDArray[np.uint8], degrees: float) -> Faces:
    """Faces ``detector`` finds on ``image`` turned by ``degrees``, in ``image``'s coordinates."""
    turned, back = _turn(image, degrees)
    found = detector.detect(turned)
    if len(found) == 0:
        return found
    x1, y1, x2, y2 = (found.xyxy[:, i] for i in range(4))
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                        np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)  # fmt: skip
    corners = _apply(back, corners)
    xyxy = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    keypoints = None if found.keypoints is None else _apply(back, found.keypoints)
    return Faces(xyxy, found.score, keypoints=keypoints)
