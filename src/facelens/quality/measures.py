"""Per-face quality measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.align.landmarks import eye_centres
from facelens.faces import Faces

__all__ = ["POSE", "QualityScores", "measure"]


@dataclass(frozen=True)
class PoseModel:
    """Constants of the landmark pose estimate (``docs/quality.md`` explains them).

    A head turned by yaw angle t moves the base of the nose sideways by ``depth * sin t``
    while the eyes close up to ``ied * cos t``; so the nose offset along the eye line,
    divided by the inter-eye distance, is ``(depth / ied) * tan t``.

    Attributes:
        nose_depth_ratio: depth of the nose base in front of the eye corners, divided by the
            inter-eye distance (anthropometric, about 20 mm / 62 mm).
        frontal_drop_ratio: distance from the eye line down to the nose base, divided by the
            inter-eye distance, for a level head (median of LFW, measured by
            ``benchmarks/quality_gate.py``).
    """

    nose_depth_ratio: float = 0.32
    frontal_drop_ratio: float = 0.76


POSE = PoseModel()


@dataclass(frozen=True, eq=False)
class QualityScores:
    """Quality of N faces; every attribute is an (N,) float64 array.

    Attributes:
        inter_eye_px: distance between the eye centres, in pixels of the input image.
        sharpness: variance of the Laplacian of the central part of the aligned chip (grey
            levels squared); lower is blurrier.
        yaw_deg: estimated left/right head turn, degrees, 0 = facing the camera.
        pitch_deg: estimated up/down head tilt, degrees, 0 = level (positive = chin up).
        roll_deg: in-plane rotation of the eye line, degrees (alignment removes it).
        brightness: mean grey level of the central chip, 0..255.
        clipped: fraction of central chip pixels at <= 5 or >= 250.
        detection_score: the detector's score.
    """

    inter_eye_px: NDArray[np.float64]
    sharpness: NDArray[np.float64]
    yaw_deg: NDArray[np.float64]
    pitch_deg: NDArray[np.float64]
    roll_deg: NDArray[np.float64]
    brightness: NDArray[np.float64]
    clipped: NDArray[np.float64]
    detection_score: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.inter_eye_px.shape[0])

    def row(self, i: int) -> dict[str, float]:
        """Face ``i`` as a dict of rounded floats (for JSON and storage)."""
        return {k: round(float(getattr(self, k)[i]), 3) for k in self.__dataclass_fields__}

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(i) for i in range(len(self))]


def _central(chips: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Grey central 60% of each chip: the face without background or hair."""
    s = chips.shape[1]
    a, b = round(s * 0.2), round(s * 0.8)
    c = chips[:, a:b, a:b].astype(np.float64)
    grey: NDArray[np.float64] = c @ np.array([0.299, 0.587, 0.114])
    return grey


def _laplacian_var(grey: NDArray[np.float64]) -> NDArray[np.float64]:
    lap = (
        grey[:, :-2, 1:-1]
        + grey[:, 2:, 1:-1]
        + grey[:, 1:-1, :-2]
        + grey[:, 1:-1, 2:]
        - 4.0 * grey[:, 1:-1, 1:-1]
    )
    return np.asarray(lap.reshape(lap.shape[0], -1).var(axis=1), np.float64)


def measure(faces: Faces, chips: NDArray[np.uint8], pose: PoseModel = POSE) -> QualityScores:
    """Quality measures of ``faces`` (which must carry 5-point landmarks) and their chips.

    Example:
        >>> lm = [[[70, 50], [60, 50], [30, 50], [40, 50], [50, 68]]]
        >>> f = Faces(xyxy=[[20, 20, 80, 90]], score=[1.0], landmarks=lm)
        >>> q = measure(f, np.full((1, 150, 150, 3), 128, np.uint8))
        >>> float(q.inter_eye_px[0]), float(q.yaw_deg[0]), round(float(q.brightness[0]), 3)
        (30.0, 0.0, 128.0)
    """
    n = len(faces)
    if faces.landmarks is None:
        raise ValueError("quality.measure needs faces with landmarks (run align first)")
    if chips.shape[0] != n:
        raise ValueError(f"got {chips.shape[0]} chips for {n} faces")
    if n == 0:
        z = np.zeros(0)
        return QualityScores(z, z, z, z, z, z, z, z)
    left, right = eye_centres(faces.landmarks)
    axis = right - left
    ied = np.linalg.norm(axis, axis=1)
    safe = np.maximum(ied, 1e-6)
    u = axis / safe[:, None]
    normal = np.stack([-u[:, 1], u[:, 0]], axis=1)  # points down the face for upright heads
    nose = faces.landmarks[:, 4].astype(np.float64)
    rel = nose - (left + right) / 2
    along = (rel * u).sum(axis=1) / safe
    down = (rel * normal).sum(axis=1) / safe
    yaw = np.degrees(np.arctan(along / pose.nose_depth_ratio))
    # A pitched head shortens the eye-to-nose drop by cos(pitch) and shifts it by depth*sin;
    # we invert the leading term around the frontal drop.
    pitch = np.degrees(
        np.arcsin(
            np.clip(
                (pose.frontal_drop_ratio - down)
                / (pose.frontal_drop_ratio + pose.nose_depth_ratio),
                -1,
                1,
            )
        )
    )
    roll = np.degrees(np.arctan2(axis[:, 1], axis[:, 0]))
    grey = _central(chips)
    flat = grey.reshape(n, -1)
    return QualityScores(
        inter_eye_px=ied,
        sharpness=_laplacian_var(grey),
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        brightness=flat.mean(axis=1),
        clipped=((flat <= 5) | (flat >= 250)).mean(axis=1),
        detection_score=faces.score.astype(np.float64),
    )
