"""``Faces``: the one data type that flows between pipeline stages.

A struct of arrays, validated on construction and immutable afterwards: every stage returns a
new ``Faces`` (``faces.replace(landmarks=...)``) and never writes into the caller's.
Conventions (see ``docs/conventions.md``): boxes are ``[x1, y1, x2, y2]`` in pixels, origin at the
top-left, ``x2`` exclusive (width = ``x2 - x1``); landmarks are ``(x, y)`` pixel positions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["KEYPOINTS", "Faces", "box_iou"]

# The detector's five points (``Faces.keypoints``), in order; "left" is the image's left, i.e.
# the subject's right. The same points and order as RetinaFace, YuNet and ArcFace alignment.
KEYPOINTS = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")


def _frozen(name: str, value: ArrayLike, dtype: type[np.generic], ndim: int) -> NDArray[Any]:
    arr = np.array(value, dtype=dtype, copy=True)
    if arr.ndim != ndim:
        raise ValueError(f"Faces.{name} must have {ndim} dimensions, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Faces:
    """Faces found in one image.

    Attributes:
        xyxy: (N, 4) float32 boxes ``[x1, y1, x2, y2]`` in pixels. A box may reach past the
            image edge when the face is cut by it; ``clip`` bounds it.
        score: (N,) float32 detector scores. Their scale is the backend's (HOG: SVM margin,
            CNN: MMOD confidence); higher is more face-like.
        landmarks: (N, K, 2) float32 ``(x, y)`` points, or None before alignment. K is 5 for
            the default landmark model, dlib's predictor (outer and inner corner of each
            eye, base of the nose: ``facelens.align.LANDMARK_POINTS``).
        track_id: (N,) int64 track ids, or None outside video.
        keypoints: (N, 5, 2) float32 points that the detector itself found, or None (dlib's
            detectors find none): the five standard points of face detection and ArcFace
            alignment, in ``KEYPOINTS`` order (centre of the eye on the image's left, centre
            of the other eye, tip of the nose, mouth corner on the image's left, the other
            mouth corner). Other points than ``landmarks``: never mixed with them.

    Example:
        >>> f = Faces(xyxy=[[10, 20, 110, 120]], score=[1.5])
        >>> len(f), f.width.tolist()
        (1, [100.0])
    """

    xyxy: NDArray[np.float32]
    score: NDArray[np.float32]
    landmarks: NDArray[np.float32] | None = None
    track_id: NDArray[np.int64] | None = None
    keypoints: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        xyxy = _frozen("xyxy", xyxy, np.float32, 2)
        n = xyxy.shape[0]
        if xyxy.shape != (n, 4):
            raise ValueError(f"Faces.xyxy must have shape (N, 4), got {xyxy.shape}")
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("Faces.xyxy must be finite")
        if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
            raise ValueError("Faces.xyxy must satisfy x2 >= x1 and y2 >= y1")
        score = _frozen("score", self.score, np.float32, 1)
        if score.shape != (n,):
            raise ValueError(f"Faces.score must have shape ({n},) to match xyxy, got {score.shape}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, np.float32)
            if lm.size == 0 and n == 0 and lm.ndim != 3:
                lm = lm.reshape(0, 0, 2)
            lm = _frozen("landmarks", lm, np.float32, 3)
            if lm.shape[0] != n or lm.shape[2] != 2:
                raise ValueError(f"Faces.landmarks must have shape ({n}, K, 2), got {lm.shape}")
            object.__setattr__(self, "landmarks", lm)
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, np.float32)
            if kp.size == 0 and n == 0:
                kp = kp.reshape(0, 5, 2)
            kp = _frozen("keypoints", kp, np.float32, 3)
            if kp.shape != (n, 5, 2):
                raise ValueError(f"Faces.keypoints must have shape ({n}, 5, 2), got {kp.shape}")
            if not np.all(np.isfinite(kp)):
                raise ValueError("Faces.keypoints must be finite")
            object.__setattr__(self, "keypoints", kp)
        if self.track_id is not None:
            tid = _frozen("track_id", self.track_id, np.int64, 1)
            if tid.shape != (n,):
                raise ValueError(f"Faces.track_id must have shape ({n},), got {tid.shape}")
            object.__setattr__(self, "track_id", tid)

    @classmethod
    def empty(cls) -> Faces:
        """No faces."""
        return cls(xyxy=np.zeros((0, 4), np.float32), score=np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __iter__(self) -> Iterator[Faces]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int | slice | ArrayLike) -> Faces:
        """Select faces by position, slice, index array or boolean mask; always a ``Faces``."""
        if isinstance(index, int | np.integer):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"face index {i} out of range for {len(self)} faces")
            sel: Any = [i]
        else:
            sel = index
        return Faces(
            xyxy=self.xyxy[sel],
            score=self.score[sel],
            landmarks=None if self.landmarks is None else self.landmarks[sel],
            track_id=None if self.track_id is None else self.track_id[sel],
            keypoints=None if self.keypoints is None else self.keypoints[sel],
        )

    def replace(self, **changes: Any) -> Faces:
        """A new ``Faces`` with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def width(self) -> NDArray[np.float32]:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> NDArray[np.float32]:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> NDArray[np.float32]:
        return self.width * self.height

    def largest(self) -> int:
        """Index of the face with the largest box; raises IndexError when there is none."""
        if len(self) == 0:
            raise IndexError("no faces")
        return int(np.argmax(self.area))

    def clip(self, width: int, height: int) -> Faces:
        """Boxes bounded to an image of ``width`` x ``height`` pixels."""
        lim = np.array([width, height, width, height], np.float32)
        return self.replace(xyxy=np.clip(self.xyxy, 0, lim))

    def scaled(self, factor: float, offset: tuple[float, float] = (0.0, 0.0)) -> Faces:
        """Every coordinate multiplied by ``factor``, then shifted by ``offset`` (x, y): the
        faces of a resized or cropped copy brought back to the original image."""
        f = np.float32(factor)
        o = np.asarray(offset, np.float32)
        return self.replace(
            xyxy=self.xyxy * f + np.concatenate([o, o]),
            landmarks=None if self.landmarks is None else self.landmarks * f + o,
            keypoints=None if self.keypoints is None else self.keypoints * f + o,
        )

    def to_list(self) -> list[dict[str, Any]]:
        """Plain Python objects, one dict per face (for JSON)."""
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            d: dict[str, Any] = {
                "box": [round(float(v), 1) for v in self.xyxy[i]],
                "score": round(float(self.score[i]), 4),
            }
            if self.landmarks is not None:
                d["landmarks"] = [
                    [round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks[i]
                ]
            if self.keypoints is not None:
                d["keypoints"] = [
                    [round(float(x), 1), round(float(y), 1)] for x, y in self.keypoints[i]
                ]
            if self.track_id is not None:
                d["track_id"] = int(self.track_id[i])
            out.append(d)
        return out


def box_iou(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4).

    Example:
        >>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]]).round(3).tolist()
        [[0.333]]
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
