"""Two or more recognizers as one: score fusion written as one template.

For unit templates ``a_i`` of each model and weights ``w_i``, the fused template is the
concatenation of ``sqrt(w_i) a_i``, scaled to unit length. The cosine of two fused templates
is then exactly the weighted mean of the models' cosines,
``sum(w_i cos_i) / sum(w_i)``: score-level fusion that galleries, thresholds and search treat
like any other model (its own tag, its own calibration).

Example:
    >>> a = Embeddings([[1.0, 0.0]], "a")
    >>> b = Embeddings([[0.0, 1.0]], "b")
    >>> f = fuse([a, b], (0.5, 0.5))
    >>> f.dim, f.model
    (4, 'fusion(a*0.5,b*0.5)')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelens.embed.embeddings import Embeddings
from facelens.errors import ModelError

__all__ = ["FUSIONS", "FusionSpec", "fuse", "fusion_tag", "fusion_weights"]


@dataclass(frozen=True)
class FusionSpec:
    """A fusion whose weights were measured.

    Attributes:
        parts: registry names of the recognizers, in order.
        weights: their weights (summing to 1).
        measured_by: the command that chose the weights.
        augment: the augmentation they were measured with (the weights of templates with and
            without the mirror view are chosen separately).
    """

    parts: tuple[str, ...]
    weights: tuple[float, ...]
    measured_by: str
    augment: str = "flip"


# Weights never chosen on the figures reported (benchmarks/recognizers.py).
FUSIONS: dict[tuple[tuple[str, ...], str], FusionSpec] = {
    (s.parts, s.augment): s
    for s in (
        # The default recognizer (docs/accuracy.md, "The defaults, and why"): the SFace weight
        # with the best mean DIR at FPIR 1% on open-set splits of half A of LFW's people
        # (10 seeds, grid 0.05-0.95); reported on the 4,909-person gallery and on half B.
        FusionSpec(
            parts=("dlib_resnet_v1_int8", "sface_2021dec"),
            weights=(0.6, 0.4),
            measured_by="python benchmarks/recognizers.py --write docs/accuracy.md",
        ),
        # `--model dlib+sface` (the fusion of issue 14, galleries and archives enrolled with
        # it keep their templates): the SFace weight with the best mean AUC over clean, small,
        # blurred, JPEG-20 and turned View 1 pairs (0.15: 0.99965; 0.5: 0.99929; 0: 0.99901)
        FusionSpec(
            parts=("dlib_resnet_v1", "sface_2021dec"),
            weights=(0.85, 0.15),
            measured_by="python benchmarks/recognizers.py --write docs/accuracy.md",
        ),
    )
}


def fusion_weights(parts: Sequence[str], augment: str = "flip") -> tuple[float, ...]:
    """The measured weights of a fusion of ``parts`` with ``augment``, or equal weights when
    none were."""
    spec = FUSIONS.get((tuple(parts), augment))
    if spec is not None:
        return spec.weights
    return tuple(1.0 / len(parts) for _ in parts)


def fusion_tag(tags: Sequence[str], weights: Sequence[float]) -> str:
    return "fusion(" + ",".join(f"{t}*{w:g}" for t, w in zip(tags, weights, strict=True)) + ")"


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
