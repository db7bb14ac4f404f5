"""Enrolment integrity: faces added to an enrolled person must be that person.

An identity is poisoned when someone else's faces are added to it (naming a group of
Serena Williams' faces "Colin Powell" made Serena identified as Colin Powell at 0.97). So
every face offered as more samples of an enrolled person is compared with the person's own
templates, in a template model both have, and must reach that model's ``strict`` calibrated
threshold (FMR 1e-4, ``facelens.match.thresholds``; never a number written here) against at
least one of them. A face that does not, or a model that cannot be checked (no template model
in common, or none calibrated), refuses the whole addition; only an explicit override, with
its own permission and audit record, adds it anyway (``GovernedGallery.enroll(...,
override=REASON)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facelens.errors import FacelensError
from facelens.gallery.records import Identity, NewSample, Sample
from facelens.match.thresholds import SHIPPED, Calibrations, resolve_threshold

__all__ = ["STRICT", "FaceCheck", "check_faces"]

STRICT = "strict"  # the operating point new faces must reach


@dataclass(frozen=True)
class FaceCheck:
    """How the new faces compared with an identity's templates.

    Attributes:
        model: the template model compared ("" when none could be).
        threshold: the similarity each face had to reach (the model's ``strict`` point).
        faces: (source, best similarity to the identity's templates) per new image.
        why: why nothing could be compared ("" when it could).
    """

    model: str
    threshold: float
    faces: tuple[tuple[str, float], ...]
    why: str = ""

    @property
    def mismatched(self) -> tuple[tuple[str, float], ...]:
        return tuple((src, sim) for src, sim in self.faces if sim < self.threshold)

    @property
    def passed(self) -> bool:
        return not self.why and not self.mismatched

    def to_dict(self) -> dict[str, object]:
        """For the audit record: the model, the threshold and each face's similarity (the
        images' hashes are the record's; no face is stored)."""
        return {
            "model": self.model,
            "threshold": round(self.threshold, 4),
            "similarities": [round(sim, 4) for _, sim in self.faces],
            "mismatched": len(self.mismatched),
            "why": self.why,
        }


def check_faces(
    ident: Identity,
    stored: Sequence[Sample],
    new: Sequence[NewSample],
    calibrations: Calibrations = SHIPPED,
) -> FaceCheck:
    """Compare each new image's face with ``ident``'s ``stored`` templates, in the first
    model of ``new`` (the enrolling pipeline's own first) that the identity has templates of
    and that is calibrated in ``calibrations`` (a user's model's: ``Pipeline.calibrations``)."""
    order = list(dict.fromkeys(s.model for s in new))
    shared = [m for m in order if ident.models.get(m)]
    for model in shared:
        try:
            threshold = resolve_threshold(model, STRICT, STRICT, calibrations=calibrations)
        except FacelensError:
            continue  # not calibrated: try the next model
        ref = np.stack([s.embedding for s in stored if s.model == model]).astype(np.float32)
        faces: dict[str, tuple[str, float]] = {}
        for s in new:
            if s.model == model:
                best = float(np.max(ref @ np.asarray(s.embedding, np.float32)))
                src = s.source or s.image_sha256[:16]
                if s.image_sha256 not in faces or best > faces[s.image_sha256][1]:
                    faces[s.image_sha256] = (src, best)
        return FaceCheck(model, threshold, tuple(faces.values()))
    why = (
        f"{ident.name!r} has no templates of a calibrated model the new faces have "
        f"(theirs: {', '.join(order) or 'none'}; the identity's: "
        f"{', '.join(ident.models) or 'none'})"
    )
    return FaceCheck("", 1.0, (), why)
