"""Two or more recognizers as one: score fusion written as one template.

For unit templates ``a_i`` of each model and weights ``w_i``, the fused template is the
concatenation of ``sqrt(w_i) a_i``, scaled to unit length. The cosine of two fused templates
is then exactly the weighted mean of the models' cosines,
``sum(w_i cos_i) / sum(w_i)``: score-level fusion that galleries, thresholds and search treat
like any other model (its own tag, its own calibration).

A fusion is an embedder of its own (``FusionEmbedder``, made by ``make_fusion``): each part
reads its own view of the faces (dlib's chips, ArcFace's), and ``embed_views`` answers the
fused templates, as ``SingleEmbedder`` does for one recognizer. Which weights a fusion has
(``FUSIONS``, measured) and how its templates are tagged (``fusion_tag``) are declared with
the other names in ``embed.base``.

Example:
    >>> a = Embeddings([[1.0, 0.0]], "a")
    >>> b = Embeddings([[0.0, 1.0]], "b")
    >>> f = fuse([a, b], (0.5, 0.5))
    >>> f.dim, f.model
    (4, 'fusion(a*0.5,b*0.5)')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from facelens.embed.base import (
    FUSIONS,
    EmbedConfig,
    Embedder,
    FusionSpec,
    Views,
    fusion_tag,
    fusion_weights,
    model_names,
    view_key,
)
from facelens.embed.embeddings import Embeddings
from facelens.embed.registry import make_embedder
from facelens.errors import ModelError
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig

__all__ = [
    "FUSIONS",
    "FusionEmbedder",
    "FusionSpec",
    "fuse",
    "fusion_tag",
    "fusion_weights",
    "make_fusion",
]


def fuse(parts: Sequence[Embeddings], weights: Sequence[float]) -> Embeddings:
    """One fused template per face from each model's templates of the same faces."""
    if len(parts) < 2 or len(parts) != len(weights):
        raise ModelError("fusion", "a fusion needs two or more models, one weight each")
    n = len(parts[0])
    if any(len(p) != n for p in parts):
        raise ModelError("fusion", "every model must have a template of every face")
    if any(w <= 0 for w in weights):
        raise ModelError("fusion", "fusion weights must be positive")
    tag = fusion_tag([p.model for p in parts], weights)
    if n == 0:
        return Embeddings.empty(tag, sum(p.dim for p in parts))
    v = np.concatenate(
        [p.vectors * np.float32(np.sqrt(w)) for p, w in zip(parts, weights, strict=True)], axis=1
    )
    return Embeddings(v, tag)


class FusionEmbedder:
    """Two or more recognizers as one embedder: each part embeds its own view of the faces
    and the templates are fused (``fuse``) into one of the fusion's tag.

    Args:
        parts: the recognizers, in order (their tags make the fusion's).
        weights: one positive weight each.

    Raises:
        ModelError: fewer than two parts, or not one positive weight each.
    """

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float]) -> None:
        if len(parts) < 2 or len(parts) != len(weights):
            raise ModelError("fusion", "a fusion needs two or more models, one weight each")
        if any(w <= 0 for w in weights):
            raise ModelError("fusion", "fusion weights must be positive")
        self.parts: tuple[Embedder, ...] = tuple(parts)
        self.weights: tuple[float, ...] = tuple(weights)
        self.model = fusion_tag([p.model for p in self.parts], self.weights)
        self.name = "+".join(dict.fromkeys(p.name for p in self.parts))
        self.views: tuple[tuple[str, int], ...] = tuple(
            dict.fromkeys((p.alignment, p.chip_size) for p in self.parts)
        )

    @property
    def provider(self) -> str | None:
        """The ONNX Runtime provider(s) its parts run on (None: none runs on ONNX Runtime)."""
        found = [getattr(p, "provider", None) for p in self.parts]
        named = list(dict.fromkeys(p for p in found if p))
        return "+".join(named) if named else None

    def load(self) -> None:
        for p in self.parts:
            p.load()

    def templates(self, views: Views) -> list[Embeddings]:
        """The fused templates, then each part's own (a gallery keeps those too)."""
        own = [p.embed(views[view_key(p.alignment, p.chip_size)]) for p in self.parts]
        return [fuse(own, self.weights), *own]

    def embed_views(self, views: Views) -> Embeddings:
        """The fused templates of the faces in ``views``."""
        return self.templates(views)[0]


def make_fusion(
    config: EmbedConfig, models: ModelStore | None = None, runtime: RuntimeConfig | None = None
) -> FusionEmbedder:
    """The fusion ``config.model`` names (``a+b``), with ``config.weights`` or the measured
    ones (``FUSIONS``; equal weights when none were measured). Nothing loads yet.

    Example:
        >>> f = make_fusion(EmbedConfig(model="dlib+sface"))
        >>> f.model
        'fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)'
        >>> f.views
        (('dlib', 150), ('arcface', 112))
    """
    names = model_names(config.model)
    if len(names) < 2:
        raise ModelError(config.model, f"{config.model!r} is one recognizer; use make_embedder")
    if config.weights is not None and len(config.weights) != len(names):
        raise ModelError(config.model, "a fusion needs one weight per model")
    parts = [make_embedder(dataclasses.replace(config, model=n), models, runtime) for n in names]
    return FusionEmbedder(parts, config.weights or fusion_weights(names, config.augment))
