"""The embedder contract and its registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.errors import ModelError
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig

__all__ = ["EMBEDDERS", "EmbedConfig", "Embedder", "make_embedder"]


@dataclass(frozen=True)
class EmbedConfig:
    """Which embedder runs.

    Attributes:
        backend: a name in ``EMBEDDERS``. The default, ``onnx``, is dlib's ResNet on ONNX
            Runtime (same weights, same embeddings within 1e-4, about 30x faster); ``dlib``
            runs dlib itself.
        batch_size: chips per forward pass.
        augment: test-time augmentation, a key of ``embed.augment.AUGMENTATIONS``
            (``"none"``, ``"flip"``, ``"tta"``); changes the model tag (docs/accuracy.md).
    """

    backend: str = "onnx"
    batch_size: int = 32
    augment: str = "flip"


class Embedder(Protocol):
    """Aligned RGB chips (N, 150, 150, 3) -> ``Embeddings``."""

    name: str
    model: str

    def load(self) -> None:
        """Load the network (idempotent)."""

    def embed(self, chips: NDArray[np.uint8]) -> Embeddings:
        """One unit vector per chip, tagged with ``self.model``."""
        ...


EmbedderFactory = Callable[[EmbedConfig, ModelStore, RuntimeConfig], Embedder]


def _dlib(config: EmbedConfig, models: ModelStore, runtime: RuntimeConfig) -> Embedder:
    from facelens.embed.dlib_resnet import DlibResnetEmbedder

    return DlibResnetEmbedder(config, models)


def _onnx(config: EmbedConfig, models: ModelStore, runtime: RuntimeConfig) -> Embedder:
    from facelens.embed.onnx_resnet import OnnxResnetEmbedder

    return OnnxResnetEmbedder(config, models, runtime)


EMBEDDERS: dict[str, EmbedderFactory] = {"onnx": _onnx, "dlib": _dlib}


def make_embedder(
    config: EmbedConfig, models: ModelStore | None = None, runtime: RuntimeConfig | None = None
) -> Embedder:
    """The embedder named by ``config.backend`` (not loaded yet).

    Example:
        >>> make_embedder(EmbedConfig(backend="dlib")).model
        'dlib_resnet_v1'
    """
    try:
        factory = EMBEDDERS[config.backend]
    except KeyError:
        raise ModelError(
            config.backend,
            f"unknown embedder {config.backend!r}; "
            f"known embedders: {', '.join(sorted(EMBEDDERS))}.",
        ) from None
    embedder = factory(config, models or ModelStore(), runtime or RuntimeConfig())
    if config.augment == "none":
        return embedder
    from facelens.embed.augment import AugmentedEmbedder

    return AugmentedEmbedder(embedder, config.augment)


def check_chips(chips: NDArray[np.uint8], size: int = 150) -> NDArray[np.uint8]:
    """Chips as a contiguous (N, size, size, 3) uint8 array, or ValueError naming the problem."""
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
        raise ValueError(
            f"chips must be uint8 with shape (N, {size}, {size}, 3), "
            f"got {chips.dtype} {chips.shape}"
        )
    return np.ascontiguousarray(chips)
