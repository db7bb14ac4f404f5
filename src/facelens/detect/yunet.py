"""YuNet (OpenCV Zoo, 2023mar): a small anchor-free face detector with five keypoints.

What OpenCV's ``FaceDetectorYN`` does around the network (``objdetect/src/face_detect.cpp``),
done here on ONNX Runtime with the weights made float32 (``convert.onnx_float``):

1. the image, in BGR order and 0..255, is padded with zeros on the right and bottom to a
   multiple of 32;
2. for each stride s in (8, 16, 32), cell (r, c) of the output grid gives the score
   ``sqrt(clip(cls) * clip(obj))``, the box centre ``((c + dx) s, (r + dy) s)`` and size
   ``(exp(dw) s, exp(dh) s)``, and keypoint k at ``((c + kx) s, (r + ky) s)``;
3. boxes scoring at least the threshold are merged by non-maximum suppression (IoU 0.3).

The keypoints come in ``facelens.faces.KEYPOINTS`` order (the eye on the image's left first).
Images larger than ``DetectConfig.pyramid.max_pixels`` are detected tile by tile
(``detect.tiles``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.detect._checks import check_rgb
from facelens.detect.base import DetectConfig
from facelens.detect.tiles import detect_pyramid, suppress
from facelens.faces import Faces
from facelens.models import ModelStore
from facelens.runtime import OnnxModel, ReleasingSession, RuntimeConfig

MODEL = "yunet_2023mar"
STRIDES = (8, 16, 32)
DIVISOR = 32
NMS_IOU = 0.3  # OpenCV's FaceDetectorYN default
# Score threshold (0..1), chosen by benchmarks/detection.py: docs/benchmarks.md, "Detection".
DEFAULT_THRESHOLD = 0.8
_OUTPUTS = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES]


def decode(outputs: list[NDArray[np.float32]], width: int, height: int, threshold: float) -> Faces:
    """Faces from YuNet's twelve outputs for an input padded from ``width`` x ``height``
    (before suppression)."""
    pw = -(-width // DIVISOR) * DIVISOR
    ph = -(-height // DIVISOR) * DIVISOR
    boxes, scores, kps = [], [], []
    for i, s in enumerate(STRIDES):
        cols, rows = pw // s, ph // s
        cls = np.clip(outputs[i].reshape(-1), 0, 1)
        obj = np.clip(outputs[i + 3].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        idx = np.nonzero(score >= threshold)[0]
        if idx.size == 0:
            continue
        bbox = outputs[i + 6].reshape(-1, 4)[idx]
        kp = outputs[i + 9].reshape(-1, 10)[idx].reshape(-1, 5, 2)
        r, c = np.divmod(idx, cols)
        assert rows * cols == cls.size
        cx = (c + bbox[:, 0]) * s
        cy = (r + bbox[:, 1]) * s
        w = np.exp(bbox[:, 2]) * s
        h = np.exp(bbox[:, 3]) * s
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        scores.append(score[idx])
        kps.append((kp + np.stack([c, r], axis=1)[:, None, :]) * s)
    if not boxes:
        return Faces.empty().replace(keypoints=np.zeros((0, 5, 2), np.float32))
    return Faces(
        xyxy=np.concatenate(boxes).astype(np.float32),
        score=np.concatenate(scores).astype(np.float32),
        keypoints=np.concatenate(kps).astype(np.float32),
    )


class YunetDetector(OnnxModel):
    """YuNet on ONNX Runtime: boxes, scores (0..1) and five keypoints per face.

    Example:
        >>> det = YunetDetector(DetectConfig(backend="yunet"), ModelStore(), RuntimeConfig())
        >>> len(det.detect(np.zeros((120, 160, 3), np.uint8)))
        0
    """

    name = "yunet"
    keypoints = True
    smallest_face = 32
    # A face found only on a turned copy must score this much (detect.rotated): the 44 LFW
    # faces turned 30 degrees that YuNet misses upright score 0.883-0.931 turned back, a
    # dog's face (detection/dogs.jpg) 0.828.
    rotated_threshold: float | None = 0.87

    what = "detector"

    def __init__(
        self,
        config: DetectConfig,
        models: ModelStore,
        runtime: RuntimeConfig,
        session: Any = None,
    ) -> None:
        self.config = config
        self.threshold = DEFAULT_THRESHOLD if config.threshold is None else config.threshold
        self._runner: ReleasingSession | None = None
        super().__init__(MODEL, models, runtime, session)

    def opened(self, session: Any, converted: Any) -> None:
        # a burst of large pictures leaves no arena behind (runtime.ReleasingSession)
        probe = {"input": np.zeros((1, 3, DIVISOR, DIVISOR), np.float32)}
        self._runner = ReleasingSession(session, self.runtime, probe)

    def once(self, image: NDArray[np.uint8]) -> Faces:
        """One network pass over the whole of ``image`` (no tiling)."""
        h, w = image.shape[:2]
        pw, ph = -(-w // DIVISOR) * DIVISOR, -(-h // DIVISOR) * DIVISOR
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :h, :w] = image[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR planes
        self.load()
        assert self._runner is not None
        out = self._runner.run(_OUTPUTS, {"input": x})
        return suppress(decode(out, w, h, self.threshold), NMS_IOU, cover=1.0)

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        image = check_rgb(image)
        if min(image.shape[:2]) < 8:
            return Faces.empty().replace(keypoints=np.zeros((0, 5, 2), np.float32))
        return detect_pyramid(image, self.once, self.config.pyramid, self.config.upsample, NMS_IOU)
