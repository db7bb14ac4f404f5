"""One serialisation of what facelens answers: a detection, an identification and a
verification each have one ``to_dict``, which the command line's ``--json`` and the service's
JSON both print - the same keys, the same rounding (``SCORE_DIGITS``, ``PIXEL_DIGITS``,
``QUALITY_DIGITS``). The command line adds the file it read (``image``); the service adds the
audit record's number (``audit_seq``).

Example:
    >>> from facelens.faces import Faces
    >>> DetectResult(640, 480, Faces(xyxy=[[10, 20, 110, 140.26]], score=[0.98761])).to_dict()
    {'width': 640, 'height': 480, 'faces': [{'box': [10.0, 20.0, 110.0, 140.3], 'score': 0.9876}]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from facelens.faces import Faces
from facelens.match.decide import Candidate, Identification, IdentifyRule, Verification
from facelens.quality import QualityGate, QualityScores

__all__ = [
    "PIXEL_DIGITS",
    "QUALITY_DIGITS",
    "SCORE_DIGITS",
    "ChosenFace",
    "DetectResult",
    "IdentifyResult",
    "VerifyResult",
    "candidate_dict",
]

SCORE_DIGITS = 4  # similarities, thresholds, decision and detector scores
PIXEL_DIGITS = 1  # boxes
QUALITY_DIGITS = 2  # quality measures


def _score(v: float | None) -> float | None:
    return None if v is None else round(float(v), SCORE_DIGITS)


def _box(faces: Faces, i: int) -> list[float]:
    return [round(float(v), PIXEL_DIGITS) for v in faces.xyxy[i]]


def candidate_dict(c: Candidate) -> dict[str, Any]:
    return {"identity_id": c.identity_id, "name": c.name, "score": _score(c.score)}


@dataclass(frozen=True)
class DetectResult:
    """The faces found in one image (boxes clipped to it), with their quality and the
    enrolment gate's reasons when measured.

    Attributes:
        width, height: the image's size in pixels.
        faces: the faces, boxes within the image.
        quality: their quality measures (None: not measured; then no ``quality`` or ``gate``).
        gate: the enrolment gate the reasons are given for.
    """

    width: int
    height: int
    faces: Faces
    quality: QualityScores | None = None
    gate: QualityGate | None = None

    def to_dict(self) -> dict[str, Any]:
        faces = self.faces.clip(self.width, self.height)
        out = []
        for i in range(len(faces)):
            d: dict[str, Any] = {"box": _box(faces, i), "score": _score(faces.score[i])}
            if self.quality is not None:
                row = self.quality.row(i)
                d["quality"] = {k: round(v, QUALITY_DIGITS) for k, v in row.items()}
                d["gate"] = (self.gate or QualityGate()).reasons(self.quality, i)
            out.append(d)
        return {"width": self.width, "height": self.height, "faces": out}


@dataclass(frozen=True)
class IdentifyResult:
    """Who each face of one image is (open set), and by which rule.

    Attributes:
        width, height: the image's size in pixels.
        model: the template model searched.
        rule: the 1:N rule that decided.
        faces: the faces, in the order of ``found``.
        found: per face, its candidates and decided identity (None: unknown).
        candidates_shown: whether each face's candidates are given (an unknown face's
            "looks like X" is shown only when asked for, and its showing audited).
        notice: set when the gallery was not searched with the default recognizer (it
            holds none of its templates) or some enrolled people cannot be found by it
            (``facelens.gallery.held.search_config``).
    """

    width: int
    height: int
    model: str
    rule: IdentifyRule
    faces: Faces
    found: Sequence[Identification]
    candidates_shown: bool = False
    notice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        faces = self.faces.clip(self.width, self.height)
        r = self.rule
        return {
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "notice": self.notice,
            "threshold": _score(r.threshold),
            "rule": {
                "name": r.name,
                "normalised": r.normalised,
                "cohort": r.cohort,
                "weight": r.weight,
            },
            "faces": [
                {
                    "box": _box(faces, i),
                    "identity": None if x.identity is None else candidate_dict(x.identity),
                    "candidates": [candidate_dict(c) for c in x.candidates]
                    if self.candidates_shown
                    else [],
                    "decision_score": _score(x.decision_score),
                }
                for i, x in enumerate(self.found)
            ],
        }


@dataclass(frozen=True)
class ChosenFace:
    """Which face of an image a 1:1 comparison used.

    Attributes:
        boxes: every face found in the image, left to right.
        face: the one used: its index in ``boxes`` (from 0, the leftmost).
        chosen: ``largest`` (the default) or ``asked`` (``--face-a/--face-b``, ``face_a``,
            ``face_b``).
    """

    boxes: tuple[tuple[float, float, float, float], ...]
    face: int
    chosen: str

    def box_list(self) -> list[list[float]]:
        return [[round(float(v), PIXEL_DIGITS) for v in b] for b in self.boxes]


@dataclass(frozen=True)
class VerifyResult:
    """Whether two images' chosen faces are the same person, under which operating point,
    and which faces were compared among those found (an image of several faces says so:
    ``faces_a`` lists them all, ``face_a`` is the one used).

    Attributes:
        verification: the decision.
        threshold_name: the operating point that gave the threshold (``custom`` for a
            number).
        a, b: the faces compared.
    """

    verification: Verification
    threshold_name: str
    a: ChosenFace
    b: ChosenFace

    def to_dict(self) -> dict[str, Any]:
        v = self.verification
        return {
            "same": v.same,
            "similarity": _score(v.similarity),
            "threshold": _score(v.threshold),
            "threshold_name": self.threshold_name,
            "model": v.model,
            "faces_a": self.a.box_list(),
            "faces_b": self.b.box_list(),
            "face_a": self.a.face,
            "face_b": self.b.face,
            "chosen_a": self.a.chosen,
            "chosen_b": self.b.chosen,
        }

    def notes(self) -> list[str]:
        """What a person should know about the faces used (an image of several faces)."""
        return [
            f"image {which} has {len(f.boxes)} faces: compared "
            + ("the largest" if f.chosen == "largest" else "the one asked for")
            + f", face {f.face} from the left (0 to {len(f.boxes) - 1}); choose another "
            f"with --face-{which.lower()} N"
            for which, f in (("A", self.a), ("B", self.b))
            if len(f.boxes) > 1
        ]
