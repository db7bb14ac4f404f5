"""The embedder contract: how a recognizer is named and configured, what it answers, and the
tags of the templates it makes (the recognizers themselves are built by ``embed.registry``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.errors import ModelError
from facelens.models import ModelStore

__all__ = [
    "MODEL_ALIASES",
    "EmbedConfig",
    "Embedder",
    "check_chips",
    "config_for_tag",
    "model_names",
    "template_tag",
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
        batch_size: chips per forward pass.
        augment: test-time augmentation, a key of ``embed.augment.AUGMENTATIONS``
            (``"none"``, ``"flip"``, ``"tta"``); changes the model tag (docs/accuracy.md).
        weights: a fusion's weights, one per part (None: the measured ones,
            ``embed.fusion.FUSIONS``); given to serve a gallery enrolled with other weights.
    """

    model: str = "dlib_resnet_v1_int8+sface_2021dec"
    backend: str = "onnx"
    batch_size: int = 32
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
    from facelens.embed.fusion import fusion_tag, fusion_weights

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
