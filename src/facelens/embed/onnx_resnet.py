"""dlib's ResNet, converted from its own weights and run by ONNX Runtime (batched); also its
int8 build (``dlib_resnet_v1_int8``, a model of its own: ``facelens.convert.quantize``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.embed.base import EmbedConfig, check_chips
from facelens.embed.embeddings import Embeddings
from facelens.models import ModelStore
from facelens.runtime import OnnxModel, RuntimeConfig

MODEL = "dlib_resnet_v1"


class OnnxResnetEmbedder(OnnxModel):
    """128-d embeddings from ``dlib_resnet_v1`` (or a build of it: ``model``) on ONNX Runtime.

    Same weights and the same input normalisation as dlib, so the embeddings carry the same
    model tag and mix freely with ``dlib`` ones in a gallery (parity: docs/benchmarks.md).
    The int8 build's templates carry its own tag: they are close to the float32 ones, not
    the same.
    """

    name = "onnx"
    alignment = "dlib"
    chip_size = 150

    what = "embedder"

    def __init__(
        self,
        config: EmbedConfig,
        models: ModelStore,
        runtime: RuntimeConfig,
        model: str = MODEL,
        session: Any = None,
    ) -> None:
        self.config = config
        self.model = model
        super().__init__(model, models, runtime, session)

    def descriptors(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        """dlib's raw (unnormalised) descriptors, (N, 128)."""
        chips = check_chips(chips)
        session = self.session
        bs = max(1, self.config.batch_size)
        out = [session.run(None, {"chips": chips[i : i + bs]})[0] for i in range(0, len(chips), bs)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 128), np.float32)

    def embed(self, chips: NDArray[np.uint8]) -> Embeddings:
        if len(chips) == 0:
            check_chips(chips)
            return Embeddings.empty(self.model)
        return Embeddings(self.descriptors(chips), self.model)
