"""The detector contract: how a detector is configured and what it answers (the detectors by
name are in ``detect.registry``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from facelens.detect.tiles import Pyramid
from facelens.faces import Faces

__all__ = ["DetectConfig", "Detector"]


@dataclass(frozen=True)
class DetectConfig:
    """Which detector runs, and how.

    Attributes:
        backend: a name in ``DETECTORS``. The default, ``yunet``, finds faces from about 24 px
            with five keypoints in about 7 ms per 640x480 photo on 2 cores (chosen by recall
            and speed: docs/benchmarks.md, "Detection"). ``centerface`` finds as many with
            fewer false alarms at 4x the cost; ``onnx_mmod`` is dlib's CNN (MMOD) detector
            on ONNX Runtime (dlib's boxes and scores, about 30x faster than dlib itself).
        upsample: times the image is doubled before detection; each doubling finds faces half
            as small and costs about four times as much. For the MMOD detectors at 0 the
            smallest face found is about 70-80 px wide, at 1 about 40 px; for HOG, use 1 to
            match face_recognition. YuNet finds most faces from about 24 px at 0 and all from
            32 px; at 2 (images tiled, ``pyramid``) from about 12 px.
        threshold: faces scoring below this are dropped, on the backend's own score scale;
            None: the backend's default (0 for dlib's detectors, their trained operating
            point; a measured value for the others, docs/benchmarks.md "Detection").
        pyramid: how images too large for one network pass are tiled (YuNet, CenterFace).
    """

    backend: str = "yunet"
    upsample: int = 0
    threshold: float | None = None
    pyramid: Pyramid = field(default_factory=Pyramid)

    def __post_init__(self) -> None:
        if not 0 <= self.upsample <= 4:
            raise ValueError(f"DetectConfig.upsample must be 0..4, got {self.upsample}")


class Detector(Protocol):
    """Finds faces in an RGB uint8 image.

    Attributes:
        name: the backend's name in ``DETECTORS``.
        keypoints: whether its faces carry ``Faces.keypoints``.
        smallest_face: width in pixels from which it finds faces reliably at upsample 0
            (measured: docs/benchmarks.md, "Detection").
    """

    name: str
    keypoints: bool
    smallest_face: int

    def load(self) -> None:
        """Load the model (idempotent; called on first use if not called before)."""

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        """Faces in ``image``; an empty ``Faces`` when there are none."""
        ...
