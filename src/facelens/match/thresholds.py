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
                similarity=0.8994,
                meaning="maximises accuracy on LFW pairsDevTrain; on held-out pairsDevTest: "
                "accuracy 0.963, FMR 2.1e-2 (docs/accuracy.md)",
                measured_by=_MEASURE_DEV,
            ),
            OperatingPoint(
                name="fmr_1e-3",
                model="dlib_resnet_v1",
                similarity=0.9267,
                meaning="FMR 1e-3 over all cross-person pairs of LFW pairsDevTrain images; "
                "held out: FMR 8.2e-4, TAR 0.903 (docs/accuracy.md)",
                measured_by=_MEASURE_DEV,
            ),
            OperatingPoint(
                name="strict",
                model="dlib_resnet_v1",
                similarity=0.9417,
                meaning="FMR 1e-4 over all cross-person pairs of LFW pairsDevTrain images; "
                "held out: FMR 6.6e-5, TAR 0.758 (docs/accuracy.md)",
                measured_by=_MEASURE_DEV,
            ),
        )
    },
}

# 1:1 compares one pair: the accuracy-maximising point. 1:N compares a probe with every
# enrolled person, so the chance of *some* false match grows with the gallery: it uses the
# FMR 1e-4 point (docs/accuracy.md).
DEFAULT_VERIFY = "balanced"
DEFAULT_IDENTIFY = "strict"


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
