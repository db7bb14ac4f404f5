"""dlib's HOG + linear SVM frontal face detector (no model file)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens._dlib import from_rect, import_dlib
from facelens.detect._checks import check_rgb
from facelens.detect.base import DetectConfig
from facelens.faces import Faces


class DlibHogDetector:
    """HOG detector. Scores are SVM margins; 0 is dlib's operating point.

    Example:
        >>> det = DlibHogDetector(DetectConfig(upsample=0))
        >>> len(det.detect(np.zeros((100, 100, 3), np.uint8)))
        0
    """

    name = "dlib_hog"
    keypoints = False
    smallest_face = 80

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._det: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._det is None:
                self._det = import_dlib().get_frontal_face_detector()

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        image = check_rgb(image)
        self.load()
        t = self.config.threshold or 0.0
        rects, scores, _ = self._det.run(image, self.config.upsample, t)
        if not rects:
            return Faces.empty()
        return Faces(
            xyxy=np.array([from_rect(r) for r in rects], np.float32),
            score=np.array(scores, np.float32),
        )
