"""dlib's MMOD CNN detector, converted from its own weights and run by ONNX Runtime."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.detect._checks import check_rgb
from facelens.detect.base import DetectConfig
from facelens.detect.mmod import MmodGeometry, boxes_from_scores, pyramid_up, tiled_pyramid
from facelens.faces import Faces
from facelens.models import ModelStore
from facelens.runtime import OnnxModel, RuntimeConfig, make_session

if TYPE_CHECKING:
    from facelens.convert.cache import Converted

MODEL = "dlib_mmod_v1"


def _resize_graph() -> bytes:
    """One ONNX ``Resize`` (linear, ``align_corners``): dlib's ``resize_image`` mapping,
    ``x_in = x_out * (in - 1) / (out - 1)``, for any size asked."""
    from onnx import TensorProto, helper

    node = helper.make_node(
        "Resize",
        ["x", "", "", "sizes"],
        ["y"],
        mode="linear",
        coordinate_transformation_mode="align_corners",
    )
    graph = helper.make_graph(
        [node],
        "pyramid_level",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "c", "h", "w"]),
            helper.make_tensor_value_info("sizes", TensorProto.INT64, [4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "c", "oh", "ow"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


class OnnxMmodDetector(OnnxModel):
    """The MMOD face detector: dlib's boxes and scores (see ``detect.mmod``), much faster."""

    name = "onnx_mmod"
    keypoints = False
    smallest_face = 80

    what = "detector"

    def __init__(self, config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> None:
        self.config = config
        self.geometry: MmodGeometry | None = None
        self._resizer: Any = None
        self._buffers = threading.local()  # one pyramid buffer per thread
        super().__init__(MODEL, models, runtime)

    def opened(self, session: Any, converted: Converted | None) -> None:
        # the window and pyramid geometry come from the conversion's record of dlib's file,
        # so this detector cannot take a session built elsewhere
        assert converted is not None, "onnx_mmod needs the conversion's record"
        m = converted.meta
        self.geometry = MmodGeometry(
            convs=tuple(tuple(c) for c in m["convs"]),
            window=(int(m["window"][0]), int(m["window"][1])),
            mean=(float(m["mean"][0]), float(m["mean"][1]), float(m["mean"][2])),
            padding=int(m["padding"]),
            outer_padding=int(m["outer_padding"]),
            nms_iou=float(m["nms_iou"]),
            nms_covered=float(m["nms_covered"]),
        )
        self._resizer, _ = make_session(_resize_graph(), self.runtime, "pyramid resize")

    def _resize(self, src: NDArray[np.float32], h: int, w: int) -> NDArray[np.float32]:
        sizes = np.array([1, src.shape[0], h, w], np.int64)
        x = np.ascontiguousarray(src[None], dtype=np.float32)
        out: NDArray[np.float32] = self._resizer.run(None, {"x": x, "sizes": sizes})[0][0]
        return out

    def scores(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.float32], Any]:
        """The network's score map over the tiled pyramid of ``image`` (already upsampled)."""
        session = self.session
        assert self.geometry is not None
        x, rects = tiled_pyramid(
            image, self.geometry, self._resize, getattr(self._buffers, "x", None)
        )
        self._buffers.x = x
        return session.run(None, {"pyramid": x})[0][0, 0], rects

    def detect(self, image: NDArray[np.uint8]) -> Faces:
        image = check_rgb(image)
        self.load()
        assert self.geometry is not None
        for _ in range(self.config.upsample):
            image = pyramid_up(image, self._resize)
        if min(image.shape[:2]) < 8:
            return Faces.empty()
        scores, rects = self.scores(image)
        boxes, values = boxes_from_scores(
            scores, rects, self.geometry, self.config.threshold or 0.0, self.config.upsample
        )
        if not boxes:
            return Faces.empty()
        xyxy = np.array([[r[0], r[1], r[2] + 1, r[3] + 1] for r in boxes], np.float32)
        return Faces(xyxy=xyxy, score=np.array(values, np.float32))
