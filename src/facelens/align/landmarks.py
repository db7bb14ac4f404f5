"""5-point landmarks and the aligned chips the embedding network expects."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens._dlib import import_dlib, to_rect
from facelens.detect._checks import check_rgb
from facelens.faces import Faces
from facelens.models import ModelStore

__all__ = ["LANDMARK_POINTS", "AlignConfig", "Aligner", "eye_centres"]

# What each of the 5 points is, in image terms (the subject's left eye is on the image's right).
LANDMARK_POINTS = (
    "right_eye_outer",  # image right-hand eye, outer corner
    "right_eye_inner",
    "left_eye_outer",  # image left-hand eye, outer corner
    "left_eye_inner",
    "nose_base",
)


@dataclass(frozen=True)
class AlignConfig:
    """How faces are aligned.

    Attributes:
        landmark_model: registry name of the landmark model.
        chip_size: side of the square aligned chip; the dlib ResNet expects 150.
        chip_padding: margin around the landmark-defined face, as a fraction of its size;
            0.25 is what dlib's ResNet was trained with.
    """

    landmark_model: str = "dlib_landmarks5_v1"
    chip_size: int = 150
    chip_padding: float = 0.25


def eye_centres(landmarks: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(image-left eye centre, image-right eye centre), each (N, 2), from (N, 5, 2) landmarks."""
    lm = np.asarray(landmarks, np.float64)
    return lm[:, 2:4].mean(axis=1), lm[:, 0:2].mean(axis=1)


class Aligner:
    """Landmarks with dlib's shape predictor, chips with dlib's similarity warp.

    Example:
        >>> al = Aligner()
        >>> al.chips(np.zeros((64, 64, 3), np.uint8), Faces.empty()).shape
        (0, 150, 150, 3)
    """

    def __init__(self, config: AlignConfig | None = None, models: ModelStore | None = None):
        self.config = config or AlignConfig()
        self.models = models or ModelStore()
        self._sp: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._sp is None:
                path = self.models.path(self.config.landmark_model)
                self._sp = import_dlib().shape_predictor(str(path))

    def landmarks(self, image: NDArray[np.uint8], faces: Faces) -> Faces:
        """A new ``Faces`` with ``landmarks`` (N, 5, 2) filled in."""
        image = check_rgb(image)
        if len(faces) == 0:
            return faces.replace(landmarks=np.zeros((0, 5, 2), np.float32))
        self.load()
        pts = []
        for box in faces.xyxy:
            shape = self._sp(image, to_rect(box))
            pts.append([[p.x, p.y] for p in shape.parts()])
        return faces.replace(landmarks=np.asarray(pts, np.float32))

    def chips(self, image: NDArray[np.uint8], faces: Faces) -> NDArray[np.uint8]:
        """Aligned (N, size, size, 3) RGB chips; computes landmarks when ``faces`` lacks them."""
        size = self.config.chip_size
        if len(faces) == 0:
            return np.zeros((0, size, size, 3), np.uint8)
        image = check_rgb(image)
        if faces.landmarks is None:
            faces = self.landmarks(image, faces)
        assert faces.landmarks is not None
        dlib = import_dlib()
        dets = dlib.full_object_detections()
        for box, lm in zip(faces.xyxy, faces.landmarks, strict=True):
            parts = [dlib.point(round(float(x)), round(float(y))) for x, y in lm]
            dets.append(dlib.full_object_detection(to_rect(box), parts))
        details = dlib.get_face_chip_details(dets, size=size, padding=self.config.chip_padding)
        chips = dlib.extract_image_chips(image, list(details))
        return np.stack([np.asarray(c, np.uint8) for c in chips])
