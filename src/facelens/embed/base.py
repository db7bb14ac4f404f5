"""The embedder contract: how a recognizer is named and configured (a fusion's measured
weights too), what it answers, and the tags of the templates it makes (the recognizers are
built by ``embed.registry``, a fusion of them by ``embed.fusion.make_fusion``).

Two entry points: an ``Embedder`` (one recognizer) reads chips of one alignment; a
``ViewsEmbedder`` (what a ``Pipeline`` holds: ``SingleEmbedder`` around one recognizer, or a
``FusionEmbedder``) reads ``Views``, the chips of the same faces for every alignment it
needs, and answers the templates of its model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.errors import ModelError
from facelens.models import ModelStore

__all__ = [
    "FUSIONS",
    "MODEL_ALIASES",
    "EmbedConfig",
    "Embedder",
    "FusionSpec",
    "SingleEmbedder",
    "Views",
    "ViewsEmbedder",
    "check_chips",
    "config_for_tag",
    "fusion_tag",
    "fusion_weights",
    "model_names",
    "template_tag",
    "view_key",
]


# Short names accepted wherever a recognizer is named.
MODEL_ALIASES = {
    "dlib": "dlib_resnet_v1",
    "dlib-int8": "dlib_resnet_v1_int8",
    "sface": "sface_2021dec",
}


@dataclass(frozen=True)
class EmbedConfig:
    """Which recognizer runs, and how.

    Attributes:
        model: the recognizer: a registry name (``dlib_resnet_v1``, ``sface_2021dec``, a
            model the user registered) or an alias (``dlib``, ``sface``), or a fusion of
            several joined by ``+`` (``dlib+sface``: ``facelens.embed.fusion``). The default,
            the fusion of dlib's ResNet in int8 and SFace, was chosen on open-set
            identification by a rule written before the measurement (docs/accuracy.md,
            "The defaults, and why"); ``dlib`` is the fast profile.
        backend: for dlib's ResNet only: ``onnx`` (ONNX Runtime, the same weights, the same
            templates within 1e-4, about 25x faster) or ``dlib`` (dlib itself).
        batch_size: views per forward pass (a chip and its mirror are two). ONNX Runtime's
            arena keeps the memory of the largest pass a session ever ran: after 32 chips
            with flip the default's two recognizers kept about +740 MB in passes of 32 views,
            +355 in passes of 16, +125-175 in passes of 8, at the same time per face within
            the noise (``benchmarks/kept_memory.py --recognizers``, docs/benchmarks.md
            "Memory kept after a burst"; the rule: the smallest batch within 5% of 32's time
            per face in two runs).
        augment: test-time augmentation, a key of ``embed.augment.AUGMENTATIONS``
            (``"none"``, ``"flip"``, ``"tta"``); changes the model tag (docs/accuracy.md).
        weights: a fusion's weights, one per part (None: the measured ones,
            ``FUSIONS``); given to serve a gallery enrolled with other weights.
    """

    model: str = "dlib_resnet_v1_int8+sface_2021dec"
    backend: str = "onnx"
    batch_size: int = 8
    augment: str = "flip"
    weights: tuple[float, ...] | None = None


class Embedder(Protocol):
    """Aligned RGB chips (N, S, S, 3) -> ``Embeddings``.

    Attributes:
        name: the backend.
        model: the tag of the templates it makes.
        alignment: the chips it reads (``"dlib"`` or ``"arcface"``).
        chip_size: their side S in pixels.
    """

    name: str
    model: str
    alignment: str
    chip_size: int

    def load(self) -> None:
        """Load the network (idempotent)."""

    def embed(self, chips: NDArray[np.uint8]) -> Embeddings:
        """One unit vector per chip, tagged with ``self.model``."""
        ...


# The chips of some faces for each alignment a recognizer reads, keyed by
# ``view_key(alignment, size)``: ``{"dlib150": (N, 150, 150, 3), "arcface112": ...}``.
Views = Mapping[str, NDArray[np.uint8]]


def view_key(alignment: str, size: int) -> str:
    """The key in ``Views`` of the chips aligned ``alignment`` at ``size`` px.

    Example:
        >>> view_key("arcface", 112)
        'arcface112'
    """
    return f"{alignment}{size}"


@runtime_checkable
class ViewsEmbedder(Protocol):
    """``Views`` of N faces -> their N templates of one model: the one embedder a pipeline
    holds and calls, whatever the model (one recognizer or a fusion).

    Attributes:
        name: the backend(s).
        model: the tag of the templates it makes.
        parts: the recognizers it runs (one; a fusion's, in order).
        views: the chips it reads, as (alignment, chip size) pairs, each once.
    """

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def parts(self) -> tuple[Embedder, ...]: ...

    @property
    def views(self) -> tuple[tuple[str, int], ...]: ...

    def load(self) -> None:
        """Load every network (idempotent)."""

    def embed_views(self, views: Views) -> Embeddings:
        """One template per face, tagged with ``self.model``."""
        ...

    def templates(self, views: Views) -> list[Embeddings]:
        """The model's templates first, then (for a fusion) each part's own."""
        ...


class SingleEmbedder:
    """One recognizer behind the views entry point (``ViewsEmbedder``): it reads its own
    view and nothing else.

    Example:
        >>> class Zeros:
        ...     name, model, alignment, chip_size = "test", "zeros", "dlib", 150
        ...     def load(self): pass
        ...     def embed(self, chips): return Embeddings(np.ones((len(chips), 2)), "zeros")
        >>> e = SingleEmbedder(Zeros())
        >>> e.views, e.embed_views({"dlib150": np.zeros((3, 150, 150, 3), np.uint8)}).model
        ((('dlib', 150),), 'zeros')
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.parts: tuple[Embedder, ...] = (embedder,)
        self.views: tuple[tuple[str, int], ...] = ((embedder.alignment, embedder.chip_size),)

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def model(self) -> str:
        return self.embedder.model

    @property
    def provider(self) -> str | None:
        """The ONNX Runtime provider it runs on (None: not ONNX Runtime)."""
        return getattr(self.embedder, "provider", None)

    def load(self) -> None:
        self.embedder.load()

    def embed_views(self, views: Views) -> Embeddings:
        return self.embedder.embed(views[view_key(*self.views[0])])

    def templates(self, views: Views) -> list[Embeddings]:
        return [self.embed_views(views)]


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


def model_names(model: str) -> list[str]:
    """The registry names a model setting stands for (several for a fusion ``a+b``).

    Example:
        >>> model_names("dlib+sface")
        ['dlib_resnet_v1', 'sface_2021dec']
    """
    parts = [p.strip() for p in model.split("+")]
    if not all(parts):
        raise ModelError(model, f"{model!r} is not a model name or a fusion 'a+b'")
    return [MODEL_ALIASES.get(p, p) for p in parts]


def template_tag(config: EmbedConfig, models: ModelStore | None = None) -> str:
    """The tag of the templates ``config`` makes (what ``Pipeline.model`` says once built),
    without building anything.

    Example:
        >>> template_tag(EmbedConfig(model="dlib", augment="flip"))
        'dlib_resnet_v1+flip'
    """
    models = models or ModelStore()
    suffix = "" if config.augment == "none" else f"+{config.augment}"
    names = model_names(config.model)
    tags = [models.spec(n).tag + suffix for n in names]
    if len(tags) == 1:
        return tags[0]
    return fusion_tag(tags, config.weights or fusion_weights(names, config.augment))


def _split_part(part: str) -> tuple[str, str]:
    """``"name[@sha][+augment]"`` -> (registry name, augment)."""
    base, _, augment = part.partition("+")
    return base.partition("@")[0], augment or "none"


def config_for_tag(
    tag: str, config: EmbedConfig, models: ModelStore | None = None
) -> EmbedConfig | None:
    """``config`` changed to make templates tagged ``tag`` (a gallery's), or None when no
    recognizer installed here makes them (an unknown model, another file of a user's model).

    Example:
        >>> c = config_for_tag("fusion(dlib_resnet_v1+flip*0.85,sface_2021dec+flip*0.15)",
        ...                    EmbedConfig())
        >>> c.model, c.augment, c.weights
        ('dlib_resnet_v1+sface_2021dec', 'flip', (0.85, 0.15))
    """
    import dataclasses

    models = models or ModelStore()
    weights: tuple[float, ...] | None = None
    if tag.startswith("fusion(") and tag.endswith(")"):
        parts, ws = [], []
        for item in tag[len("fusion(") : -1].split(","):
            part, _, w = item.rpartition("*")
            try:
                ws.append(float(w))
            except ValueError:
                return None
            parts.append(_split_part(part))
        weights = tuple(ws)
    else:
        parts = [_split_part(tag)]
    augments = {a for _, a in parts}
    if len(augments) != 1 or not all(n for n, _ in parts):
        return None
    candidate = dataclasses.replace(
        config, model="+".join(n for n, _ in parts), augment=augments.pop(), weights=weights
    )
    try:
        return candidate if template_tag(candidate, models) == tag else None
    except ModelError:
        return None


def check_chips(chips: NDArray[np.uint8], size: int = 150) -> NDArray[np.uint8]:
    """Chips as a contiguous (N, size, size, 3) uint8 array, or ValueError naming the problem."""
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
        raise ValueError(
            f"chips must be uint8 with shape (N, {size}, {size}, 3), "
            f"got {chips.dtype} {chips.shape}"
        )
    return np.ascontiguousarray(chips)
