"""Where the face is in a thermal frame.

Two ways, both giving boxes in thermal pixels:

1. **A registered visible camera** (``Registration``): faces are detected (with landmarks) in
   the visible frame and mapped through a homography estimated from point pairs seen by both
   cameras (at least four; the operator marks them once per installation, e.g. the corners of
   a heated plate). Its RMS reprojection error is reported and must be small.
2. **The thermal frame alone** (``find_warm_faces``): visible-light face detectors do not work
   on thermal images (none of dlib's detectors finds a face in the two FLIR photos of people
   here). Exposed facial skin is the warmest extended surface of a clothed person indoors, so
   faces are found as connected regions at or above ``skin_c`` (31 C by default), at least
   ``min_area`` of the frame, grown to head size. This locates faces without landmarks, so the
   reading falls back to the face's hottest region (and says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facelens.errors import InputError
from facelens.faces import Faces

__all__ = ["Registration", "WarmFaceConfig", "find_warm_faces"]


@dataclass(frozen=True)
class WarmFaceConfig:
    """How faces are found in a thermal frame.

    Attributes:
        skin_c: least temperature of exposed facial skin.
        min_area: least blob area, as a fraction of the frame.
        grow: each blob's box is grown by this fraction of its size (a blob is the warmest
            part of the face, often not all of it).
    """

    skin_c: float = 31.0
    min_area: float = 0.0015
    grow: float = 0.3


def find_warm_faces(
    celsius: NDArray[np.float32],
    config: WarmFaceConfig | None = None,
    region: Sequence[float] | None = None,
) -> Faces:
    """Face candidates in a thermal frame (optionally only inside ``region`` x1,y1,x2,y2).

    Scores are the blob's peak temperature; boxes are in thermal pixels.
    """
    import cv2

    cfg = config or WarmFaceConfig()
    h, w = celsius.shape
    x0 = y0 = 0
    view = celsius
    if region is not None:
        x0, y0, x1, y1 = (round(float(v)) for v in region)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 4 or y1 - y0 < 4:
            raise InputError(
                "region",
                f"the screening region {list(region)} is outside the {w}x{h} frame or too small",
            )
        view = celsius[y0:y1, x0:x1]
    mask = cv2.morphologyEx(
        (view >= cfg.skin_c).astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)
    )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes, scores = [], []
    for i in range(1, n):
        bx, by, bw, bh, area = (int(v) for v in stats[i])
        if area < cfg.min_area * h * w:
            continue
        gx, gy = bw * cfg.grow, bh * cfg.grow
        boxes.append(
            [
                max(0.0, x0 + bx - gx),
                max(0.0, y0 + by - gy),
                min(float(w), x0 + bx + bw + gx),
                min(float(h), y0 + by + bh + gy),
            ]
        )
        scores.append(float(view[labels == i].max()))
    if not boxes:
        return Faces.empty()
    return Faces(xyxy=np.array(boxes, np.float32), score=np.array(scores, np.float32))


@dataclass(frozen=True)
class Registration:
    """A visible camera registered to a thermal one by a homography.

    Attributes:
        homography: 3x3 matrix mapping visible pixels to thermal pixels.
        rms_error_px: RMS reprojection error of the point pairs, thermal pixels.
        pairs: number of point pairs it was estimated from.
    """

    homography: NDArray[np.float64]
    rms_error_px: float
    pairs: int

    @classmethod
    def from_points(cls, visible: ArrayLike, thermal: ArrayLike) -> Registration:
        """Estimate the homography from >= 4 (x, y) pairs seen by both cameras."""
        import cv2

        v = np.asarray(visible, np.float64).reshape(-1, 2)
        t = np.asarray(thermal, np.float64).reshape(-1, 2)
        if len(v) != len(t) or len(v) < 4:
            raise InputError(
                "registration", f"need at least 4 matching point pairs, got {len(v)} and {len(t)}"
            )
        hmat, _ = cv2.findHomography(v, t, 0)
        if hmat is None:
            raise InputError(
                "registration",
                "the point pairs do not define a homography (collinear or repeated points)",
            )
        reg = cls(np.asarray(hmat, np.float64), 0.0, len(v))
        err = np.linalg.norm(reg.map_points(v) - t, axis=1)
        return cls(reg.homography, float(np.sqrt((err**2).mean())), len(v))

    def map_points(self, pts: ArrayLike) -> NDArray[np.float64]:
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        ph = np.c_[p, np.ones(len(p))] @ self.homography.T
        out: NDArray[np.float64] = ph[:, :2] / ph[:, 2:3]
        return out

    def map_faces(self, faces: Faces) -> Faces:
        """Visible-frame faces (boxes and landmarks) in thermal pixels."""
        if len(faces) == 0:
            return faces
        x1, y1, x2, y2 = faces.xyxy.T
        corners = np.stack([np.c_[x1, y1], np.c_[x2, y1], np.c_[x1, y2], np.c_[x2, y2]], 1)
        mapped = self.map_points(corners.reshape(-1, 2)).reshape(-1, 4, 2)
        boxes = np.c_[mapped.min(1), mapped.max(1)].astype(np.float32)
        lm = None
        if faces.landmarks is not None:
            k = faces.landmarks.shape[1]
            lm = (
                self.map_points(faces.landmarks.reshape(-1, 2)).reshape(-1, k, 2).astype(np.float32)
            )
        return Faces(xyxy=boxes, score=faces.score, landmarks=lm, track_id=faces.track_id)
