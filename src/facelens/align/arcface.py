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

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelens.faces import Faces

__all__ = ["TEMPLATE_112", "UPRIGHT_CROP", "arcface_chips", "similarity", "upright_keypoints"]

# Side of the upright crop keypoints are looked for again on, and the minimum roll that makes
# it worth it (degrees): docs/accuracy.md, "Keypoints of turned heads".
UPRIGHT_CROP = 192
UPRIGHT_MIN_ROLL = 8.0

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


def upright_keypoints(
    image: NDArray[np.uint8],
    faces: Faces,
    detect: Callable[[NDArray[np.uint8]], Faces],
    min_roll: float = UPRIGHT_MIN_ROLL,
) -> Faces:
    """The detector's keypoints of tilted faces, found again on an upright crop.

    A detector's keypoints drift on a tilted head (YuNet's are off by a quarter of the eye
    distance, median, at 30 degrees of roll, against 8% upright), and an ArcFace chip is only
    as good as them. dlib's landmarks (``faces.landmarks``) give the roll reliably; each face
    rolled by ``min_roll`` degrees or more is cut out upright around its keypoints, searched
    again with ``detect``, and the keypoints of the face nearest the crop's centre are mapped
    back. Faces without landmarks or keypoints, or not found again, keep their keypoints.
    """
    import cv2

    if faces.keypoints is None or faces.landmarks is None or len(faces) == 0:
        return faces
    lm = np.asarray(faces.landmarks, np.float64)
    eye = lm[:, 0:2].mean(axis=1) - lm[:, 2:4].mean(axis=1)  # image-left eye to image-right
    roll = np.degrees(np.arctan2(eye[:, 1], eye[:, 0]))
    kp = np.array(faces.keypoints, np.float64)
    for i in np.nonzero(np.abs(roll) >= min_roll)[0]:
        centre = kp[i].mean(axis=0)
        side = 2.0 * max(float(faces.width[i]), float(faces.height[i]), 1.0)
        rot = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(roll[i]), 1.0)
        m = np.asarray(rot, np.float64) * (UPRIGHT_CROP / side)
        m[:, 2] = UPRIGHT_CROP / 2 - m[:, :2] @ centre  # the keypoints' centre to the middle
        crop = cv2.warpAffine(
            image, m, (UPRIGHT_CROP, UPRIGHT_CROP), borderMode=cv2.BORDER_REFLECT_101
        )
        found = detect(np.ascontiguousarray(crop))
        if not len(found) or found.keypoints is None:
            continue
        centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
        j = int(np.argmin(np.linalg.norm(centres - UPRIGHT_CROP / 2, axis=1)))
        back = cv2.invertAffineTransform(m)
        kp[i] = np.c_[found.keypoints[j], np.ones(5)] @ back.T
    return faces.replace(keypoints=kp.astype(np.float32))


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
