"""dlib's ResNet face recognition network, run by dlib itself."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens._dlib import import_dlib
from facelens.embed.base import EmbedConfig, check_chips
from facelens.embed.embeddings import Embeddings
from facelens.models import ModelStore

MODEL = "dlib_resnet_v1"


class DlibResnetEmbedder:
    """128-d embeddings from ``dlib_resnet_v1`` (single-threaded dlib; the reference)."""

    name = "dlib"
    model = MODEL
    alignment = "dlib"
    chip_size = 150

    def __init__(self, config: EmbedConfig, models: ModelStore) -> None:
        self.config = config
        self.models = models
        self._net: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._net is None:
                self._net = import_dlib().face_recognition_model_v1(str(self.models.path(MODEL)))

    def embed(self, chips: NDArray[np.uint8]) -> Embeddings:
        chips = check_chips(chips)
        if len(chips) == 0:
            return Embeddings.empty(MODEL)
        self.load()
        out: list[NDArray[np.float32]] = []
        bs = max(1, self.config.batch_size)
        for i in range(0, len(chips), bs):
            batch = [np.ascontiguousarray(c) for c in chips[i : i + bs]]
            out.extend(np.asarray(d, np.float32) for d in self._net.compute_face_descriptor(batch))
        return Embeddings(np.stack(out), MODEL)
