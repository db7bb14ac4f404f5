"""Named operating points: every default threshold, once, with the command that measured it."""

from __future__ import annotations

from dataclasses import dataclass

from facelens.errors import ModelError

__all__ = [
    "DEFAULT_IDENTIFY",
    "DEFAULT_VERIFY",
    "OPERATING_POINTS",
    "OperatingPoint",
    "resolve_threshold",
]


@dataclass(frozen=True)
class OperatingPoint:
    """A cosine-similarity threshold for one model: "same person" when similarity >= it.

    Attributes:
        name: what users call it (``"balanced"``, ...).
        model: the embedding model it belongs to.
        similarity: the threshold.
        meaning: what the threshold gives, as measured.
        measured_by: the command that regenerates the value.
    """

    name: str
    model: str
    similarity: float
    meaning: str
    measured_by: str


_MEASURE_DEV = "python benchmarks/thresholds.py --data ../shared/data"

OPERATING_POINTS: dict[str, dict[str, OperatingPoint]] = {
    "dlib_resnet_v1": {
        p.name: p
        for p in (
            OperatingPoint(
                name="balanced",
                model="dlib_resnet_v1",
                similarity=0.925,
                meaning="the accuracy-maximising threshold on LFW pairsDevTrain "
                "(see docs/accuracy.md)",
                measured_by=_MEASURE_DEV,
            ),
        )
    },
}

DEFAULT_VERIFY = "balanced"
DEFAULT_IDENTIFY = "balanced"


def resolve_threshold(model: str, point: str | float | None, default: str) -> float:
    """A threshold from an operating point name, a number, or the default name.

    Example:
        >>> resolve_threshold("dlib_resnet_v1", 0.9, "balanced")
        0.9
    """
    if point is None:
        point = default
    if isinstance(point, int | float):
        if not -1.0 <= float(point) <= 1.0:
            raise ValueError(f"a cosine threshold must be in [-1, 1], got {point}")
        return float(point)
    points = OPERATING_POINTS.get(model)
    if not points:
        raise ModelError(model, f"no operating points are defined for model {model!r}.")
    try:
        return points[point].similarity
    except KeyError:
        raise ValueError(
            f"unknown operating point {point!r} for {model}; known: {', '.join(sorted(points))}"
        ) from None
