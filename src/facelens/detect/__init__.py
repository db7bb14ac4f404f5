"""detect: RGB image -> ``Faces(xyxy, score)``.

Backends are chosen by name from ``DETECTORS`` (``make_detector``); an unknown name is a
``ModelError`` listing the known ones. ``dlib_hog`` needs no model file; ``dlib_cnn`` runs dlib's
MMOD CNN (``dlib_mmod_v1``).
"""

from facelens.detect.base import DetectConfig, Detector
from facelens.detect.registry import DETECTORS, make_detector

__all__ = ["DETECTORS", "DetectConfig", "Detector", "make_detector"]
