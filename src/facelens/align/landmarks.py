"""dlib's 5-point landmarks, and the aligned chips each recognizer expects.

Two alignments (``facelens.models.registry.ALIGNMENTS``):

- ``"dlib"``: dlib's shape predictor finds the eye corners and nose base inside a face box,
  and dlib's similarity warp makes a 150 px chip with 25% padding, as dlib's ResNet was
  trained. A face found by a keypoint detector (YuNet, CenterFace) is first given the box
  dlib's own detector would have drawn (``align.dlib_box``): the predictor then starts where
  it was trained to.
- ``"arcface"``: the detector's five keypoints mapped onto the ArcFace template
  (``align.arcface``); only faces found by a keypoint detector have them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens._dlib import import_dlib, to_rect
from facelens.align.arcface import arcface_chips
from facelens.align.dlib_box import BoxMap
from facelens.detect._checks import check_rgb
from facelens.errors import ModelError
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
        reference_size: side of the reference chip a gallery may keep of an enrolled face.
        reference_padding: its margin: 0.6 frames the face as an LFW photo does (the face
            about 45% of the side), enough for any detector to find it again and any
            recognizer's alignment to be made from it (``facelens gallery retemplate``).
    """

    landmark_model: str = "dlib_landmarks5_v1"
    chip_size: int = 150
    chip_padding: float = 0.25
    reference_size: int = 256
    reference_padding: float = 0.6


def eye_centres(landmarks: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(image-left eye centre, image-right eye centre), each (N, 2), from (N, 5, 2) landmarks."""
    lm = np.asarray(landmarks, np.float64)
    return lm[:, 2:4].mean(axis=1), lm[:, 0:2].mean(axis=1)


class Aligner:
    """Landmarks with dlib's shape predictor; chips for either alignment.

    Args:
        config: landmark model and dlib chip geometry.
        models: where the landmark model is found.
        box_map: how faces with keypoints (from the detector that ``box_map.detector``
            names) get a box for the predictor; None: their own box is used.

    Example:
        >>> al = Aligner()
        >>> al.chips(np.zeros((64, 64, 3), np.uint8), Faces.empty()).shape
        (0, 150, 150, 3)
    """

    def __init__(
        self,
        config: AlignConfig | None = None,
        models: ModelStore | None = None,
        box_map: BoxMap | None = None,
    ):
        self.config = config or AlignConfig()
        self.models = models or ModelStore()
        self.box_map = box_map
        self._sp: Any = None
        self._lock = threading.Lock()

    def predictor_boxes(self, faces: Faces) -> NDArray[np.float32]:
        """The boxes dlib's predictor starts from: mapped from the keypoints when the faces
        have them and a map is set, the faces' own boxes otherwise."""
        if faces.keypoints is None or self.box_map is None:
            return faces.xyxy
        return self.box_map.boxes(faces.keypoints)

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
        for box in self.predictor_boxes(faces):
            shape = self._sp(image, to_rect(box))
            pts.append([[p.x, p.y] for p in shape.parts()])
        return faces.replace(landmarks=np.asarray(pts, np.float32))

    def chips(
        self,
        image: NDArray[np.uint8],
        faces: Faces,
        size: int | None = None,
        padding: float | None = None,
    ) -> NDArray[np.uint8]:
        """dlib-aligned (N, size, size, 3) RGB chips (the configured size and padding by
        default); computes landmarks when ``faces`` lacks them."""
        size = self.config.chip_size if size is None else size
        padding = self.config.chip_padding if padding is None else padding
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
        details = dlib.get_face_chip_details(dets, size=size, padding=padding)
        chips = dlib.extract_image_chips(image, list(details))
        return np.stack([np.asarray(c, np.uint8) for c in chips])

    def reference_chips(self, image: NDArray[np.uint8], faces: Faces) -> NDArray[np.uint8]:
        """Upright, loosely framed (N, S, S, 3) chips of ``faces`` (S = reference_size),
        from which a detector and any alignment can be run again later."""
        return self.chips(image, faces, self.config.reference_size, self.config.reference_padding)

    def chips_for(
        self, image: NDArray[np.uint8], faces: Faces, alignment: str, size: int
    ) -> NDArray[np.uint8]:
        """(N, size, size, 3) chips aligned as ``alignment`` asks (``"dlib"`` or
        ``"arcface"``).

        Raises:
            ModelError: ``"arcface"`` for faces without keypoints (found by a detector that
                gives none), or an unknown alignment.
        """
        if alignment == "dlib":
            if size != self.config.chip_size:
                raise ModelError(
                    alignment, f"dlib chips are {self.config.chip_size} px, not {size}"
                )
            return self.chips(image, faces)
        if alignment == "arcface":
            if len(faces) == 0:
                return np.zeros((0, size, size, 3), np.uint8)
            if faces.keypoints is None:
                raise ModelError(
                    alignment,
                    "ArcFace alignment needs the five keypoints a detector such as yunet or "
                    "centerface finds; these faces have none (dlib's detectors find none).",
                    "Use --detector yunet.",
                )
            return arcface_chips(check_rgb(image), faces.keypoints, size)
        raise ModelError(alignment, f"unknown alignment {alignment!r}; known: dlib, arcface")
