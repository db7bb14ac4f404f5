"""align: image + Faces -> landmarks (``Faces.landmarks``) and aligned face chips.

The default landmark model is dlib's 5-point predictor (outer and inner corner of each eye and the
base of the nose), whose training data is free to use. The 68-point model is in the registry
but never used by default: its training data (iBUG 300-W) excludes commercial use.
"""

from facelens.align.landmarks import (
    LANDMARK_POINTS,
    AlignConfig,
    Aligner,
    eye_centres,
)

__all__ = ["LANDMARK_POINTS", "AlignConfig", "Aligner", "eye_centres"]
