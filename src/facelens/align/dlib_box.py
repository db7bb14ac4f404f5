"""Where dlib's shape predictor should look, from another detector's five keypoints.

dlib's 5-point predictor starts from its mean shape placed in the face box and refines it
with regression trees trained on dlib's own detectors' boxes. A box of another shape (YuNet's
and CenterFace's are taller and placed differently) starts it elsewhere; on hard faces it then
converges to other points, the chip moves, and the ResNet's template with it. So a face found
by a keypoint detector gets the box dlib's MMOD detector would have drawn, predicted from its
keypoints by a linear map learned where both detectors found the same face
(``benchmarks/fit_dlib_box.py``, docs/accuracy.md "Detector and dlib's chips").

The map works in the face's own frame: the keypoints, centred on their mean, rotated to put
the eye line level and divided by their RMS spread ``s``, give 10 numbers; with a constant
they predict the MMOD box's centre offset (in the same frame, in units of ``s``) and the log
of its width and height over ``s``. The offset is rotated back to the image.

Example:
    >>> kp = np.array([[[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]]], np.float32)
    >>> box = BOX_MAPS["yunet"].boxes(kp)[0]
    >>> bool(box[0] < 40 < 80 < box[2] and box[1] < 50 < 90 < box[3])
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BOX_MAPS", "BoxMap", "face_frame"]


def face_frame(
    keypoints: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(normalised keypoints (N, 10), centres (N, 2), spreads (N,), eye-line angles (N,))."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, 5, 2)
    c = kp.mean(axis=1)
    eye = kp[:, 1] - kp[:, 0]
    th = np.arctan2(eye[:, 1], eye[:, 0])
    cos, sin = np.cos(th), np.sin(th)
    d = kp - c[:, None, :]
    q = np.stack(
        [
            d[..., 0] * cos[:, None] + d[..., 1] * sin[:, None],
            -d[..., 0] * sin[:, None] + d[..., 1] * cos[:, None],
        ],
        axis=2,
    )
    s = np.sqrt((q**2).sum(axis=2).mean(axis=1))
    s = np.maximum(s, 1e-6)
    return (q / s[:, None, None]).reshape(-1, 10), c, s, th


@dataclass(frozen=True)
class BoxMap:
    """A learned keypoints -> dlib box map.

    Attributes:
        detector: the detector whose keypoints it reads.
        coef: (11, 4) coefficients: 10 normalised keypoint coordinates and a constant ->
            (offset along the eye line, offset across it, log width, log height).
        faces: how many faces it was fitted on.
        measured_by: the command that fitted it.
    """

    detector: str
    coef: tuple[tuple[float, float, float, float], ...]
    faces: int
    measured_by: str

    def boxes(self, keypoints: ArrayLike) -> NDArray[np.float32]:
        """(N, 4) ``[x1, y1, x2, y2]`` boxes for dlib's predictor from (N, 5, 2) keypoints."""
        q, c, s, th = face_frame(keypoints)
        if len(q) == 0:
            return np.zeros((0, 4), np.float32)
        t = np.c_[q, np.ones(len(q))] @ np.asarray(self.coef, np.float64)
        cos, sin = np.cos(th), np.sin(th)
        cx = c[:, 0] + (t[:, 0] * cos - t[:, 1] * sin) * s
        cy = c[:, 1] + (t[:, 0] * sin + t[:, 1] * cos) * s
        w, h = np.exp(t[:, 2]) * s, np.exp(t[:, 3]) * s
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


_FIT = "python benchmarks/fit_dlib_box.py --write docs/accuracy.md"

# Fitted on LFW images outside View 2's pairs (docs/accuracy.md, "Detector and dlib's chips").
BOX_MAPS: dict[str, BoxMap] = {
    "yunet": BoxMap(
        detector="yunet",
        coef=(
            (0.219434, 0.044665, 0.145090, 0.146292),
            (0.158271, 0.233364, -0.003818, 0.000258),
            (0.294793, -0.234588, -0.162936, -0.167086),
            (0.158271, 0.233364, -0.003818, 0.000258),
            (-0.881994, 0.018522, -0.013290, -0.012295),
            (0.085970, -0.462250, 0.133687, 0.128681),
            (0.383368, -0.009969, 0.164092, 0.168256),
            (-0.366769, -0.145561, -0.219757, -0.221245),
            (-0.015601, 0.181370, -0.132955, -0.135167),
            (-0.035742, 0.141082, 0.093706, 0.092048),
            (0.624754, 0.214843, 1.848282, 1.862377),
        ),
        faces=3199,
        measured_by=_FIT,
    ),
    "centerface": BoxMap(
        detector="centerface",
        coef=(
            (0.456676, 0.074228, -0.223653, -0.226618),
            (0.000609, 0.260835, -0.026298, -0.024417),
            (0.164939, -0.306885, 0.275135, 0.281772),
            (0.000609, 0.260835, -0.026298, -0.024417),
            (-0.923059, 0.093576, -0.047009, -0.050094),
            (-0.020394, -0.824050, 0.016870, 0.008779),
            (-0.108696, -0.207680, 0.422710, 0.428449),
            (-0.437027, 1.324531, -0.916364, -0.981602),
            (0.410140, 0.346761, -0.427183, -0.433509),
            (0.456204, -1.022150, 0.952090, 1.021656),
            (-0.269069, -0.153356, 1.411874, 1.408420),
        ),
        faces=3202,
        measured_by=_FIT,
    ),
}
