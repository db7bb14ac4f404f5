"""dlib's MMOD CNN face detector (model ``dlib_mmod_v1``)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens._dlib import from_rect, import_dlib
from facelens.detect._checks import check_rgb
from facelens.detect.base import DetectConfig
from facelens.faces import Faces
from facelens.models import ModelStore

MODEL = "dlib_mmod_v1"


class DlibCnnDetector:
    """MMOD CNN detector: more pose-tolerant than HOG, much slower on a CPU.

    Scores are MMOD confidences; 0 is the trained operating point.
    """

    name = "dlib_cnn"
    keypoints = False
    smallest_face = 80

    def __init__(self, config: DetectConfig, models: ModelStore) -> None:
        self.config = config
        self.models = models
        self._net: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._net is None:
                path = self.models.path(MODEL)
                self._net = import_dlib().cnn_face_detection_model_v1(str(path))

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        image = check_rgb(image)
        self.load()
        dets = self._net(image, self.config.upsample)
        t = self.config.threshold or 0.0
        keep = [d for d in dets if d.confidence >= t]
        if not keep:
            return Faces.empty()
        return Faces(
            xyxy=np.array([from_rect(d.rect) for d in keep], np.float32),
            score=np.array([d.confidence for d in keep], np.float32),
        )
