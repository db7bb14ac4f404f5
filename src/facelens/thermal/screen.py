"""Skin-temperature screening with the safeguards the standards ask for.

Following IEC 80601-2-59, ISO/TR 13154 and the FDA's 2020 enforcement policy:

- one person at a time: more than one face in the screening region is refused;
- a reference blackbody at a known set temperature must be in view: its measured temperature
  corrects the camera's offset on every frame, and a blackbody that drifts by more than
  ``max_drift_c`` from the session's first reading refuses the reading;
- the environment reported by the operator must be within range (ambient, humidity);
- the site is the inner canthus (the inner eye corners, from landmarks), read as a high
  percentile of a small region, never one pixel; without landmarks the face's hottest region
  is used and the result says so;
- the estimate is the corrected canthus temperature plus a fixed, site-validated offset (0 by
  default): a straight line of slope 1, so the error does not depend on the true value and
  nothing pulls readings toward 37 C;
- the only outcomes are ``clear`` and ``refer`` (for a secondary, clinical measurement):
  screening is not a diagnosis; readings are not linked to an identity unless configured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facelens.errors import InputError
from facelens.faces import Faces
from facelens.thermal.locate import WarmFaceConfig, find_warm_faces
from facelens.thermal.radiometric import ThermalFrame

__all__ = [
    "OUTCOMES",
    "REFUSALS",
    "Blackbody",
    "Environment",
    "ScreeningConfig",
    "ScreeningResult",
    "ScreeningSession",
]

OUTCOMES = ("clear", "refer")
REFUSALS = {
    "several_faces": "more than one face in the screening region: one person at a time",
    "no_face": "no face in the screening region",
    "no_blackbody": "no reference blackbody configured or visible at its set temperature",
    "blackbody_drift": "the reference blackbody drifted more than allowed since the session "
    "started",
    "ambient_not_reported": "the operator did not report the ambient temperature and humidity",
    "ambient_out_of_range": "ambient temperature outside the allowed range",
    "humidity_out_of_range": "relative humidity outside the allowed range",
}


@dataclass(frozen=True)
class Blackbody:
    """The reference source in view.

    Attributes:
        box: its region in thermal pixels, ``[x1, y1, x2, y2]``.
        set_c: its set (true) temperature.
        uncertainty_c: its stated uncertainty (k=1).
    """

    box: tuple[float, float, float, float]
    set_c: float
    uncertainty_c: float = 0.05

    def __post_init__(self) -> None:
        _finite_box(self.box, "blackbody")


def _finite_box(box: Sequence[float], what: str) -> None:
    """A box of four finite numbers, else ``InputError`` (a NaN or infinite corner has no
    pixel to round to)."""
    try:
        ok = len(box) == 4 and all(math.isfinite(float(v)) for v in box)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(what, f"a box is four finite numbers x1,y1,x2,y2, got {list(box)!r}")


@dataclass(frozen=True)
class Environment:
    """What the operator reports about the room (None: not reported)."""

    ambient_c: float | None = None
    humidity: float | None = None  # relative, 0..1


@dataclass(frozen=True)
class ScreeningConfig:
    """Screening settings (every default is documented in docs/thermal.md).

    Attributes:
        refer_at_c: estimated body temperature at or above which the person is referred.
        canthus_to_body_c: offset from corrected canthus to the reported estimate (validate
            per site; 0 reports the canthus temperature itself).
        canthus_radius: half-size of each canthus region, as a fraction of face width.
        canthus_percentile: percentile of the canthus regions' pixels taken as the reading.
        max_drift_c: largest blackbody change from the session's first reading.
        blackbody_tolerance_c: how far the measured blackbody may sit from its set point
            before it counts as not in view (a camera offset larger than this is a fault).
        blackbody_max_std_c: largest spread inside the blackbody region (else: not in view).
        ambient_range_c: allowed room temperature.
        humidity_range: allowed relative humidity.
        calibration_uncertainty_c: the camera's residual error after offset correction (k=1).
        link_identity: put an identity on results (off: screening stays anonymous).
    """

    refer_at_c: float = 37.5
    canthus_to_body_c: float = 0.0
    canthus_radius: float = 0.06
    canthus_percentile: float = 95.0
    max_drift_c: float = 0.1
    blackbody_tolerance_c: float = 2.0
    blackbody_max_std_c: float = 0.3
    ambient_range_c: tuple[float, float] = (18.0, 24.0)
    humidity_range: tuple[float, float] = (0.10, 0.75)
    calibration_uncertainty_c: float = 0.1
    link_identity: bool = False


@dataclass(frozen=True)
class ScreeningResult:
    """One screening.

    Attributes:
        outcome: ``clear`` or ``refer``; None when refused.
        refused: named reasons (keys of ``REFUSALS``); empty when there is a reading.
        estimate_c: estimated body temperature, or None.
        uncertainty_c: its expanded uncertainty (k=2), or None.
        site: ``inner_canthus`` or ``face_hottest_region``.
        notes: plain-language caveats (e.g. no landmarks).
        face_box: the face screened, thermal pixels.
        canthus_c: the site reading before correction.
        blackbody_c: the blackbody as measured on this frame.
        offset_c: correction applied (set - measured).
        drift_c: blackbody change since the session started.
        identity: only when ``link_identity`` is on.
    """

    outcome: str | None
    refused: tuple[str, ...] = ()
    estimate_c: float | None = None
    uncertainty_c: float | None = None
    site: str | None = None
    notes: tuple[str, ...] = ()
    face_box: tuple[float, float, float, float] | None = None
    canthus_c: float | None = None
    blackbody_c: float | None = None
    offset_c: float | None = None
    drift_c: float | None = None
    identity: str | None = None

    def to_dict(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {
            "outcome": self.outcome,
            "refused": list(self.refused),
            "refused_why": [REFUSALS[x] for x in self.refused],
            "estimate_c": r(self.estimate_c),
            "uncertainty_c": r(self.uncertainty_c),
            "site": self.site,
            "notes": list(self.notes),
            "face_box": None if self.face_box is None else [round(v, 1) for v in self.face_box],
            "canthus_c": r(self.canthus_c),
            "blackbody_c": r(self.blackbody_c),
            "offset_c": r(self.offset_c),
            "drift_c": r(self.drift_c),
            **({"identity": self.identity} if self.identity is not None else {}),
        }


def _region(c: NDArray[np.float32], box: Sequence[float]) -> NDArray[np.float32]:
    h, w = c.shape
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return c[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]


@dataclass
class ScreeningSession:
    """A screening station over time (the blackbody's first reading is the drift baseline).

    Args:
        config: settings.
        blackbody: the reference source, or None (every reading is then refused).
        identify: returns an identity for a face; consulted only with ``link_identity``.
    """

    config: ScreeningConfig = field(default_factory=ScreeningConfig)
    blackbody: Blackbody | None = None
    identify: Callable[[ThermalFrame, Faces], str | None] | None = None
    baseline_c: float | None = None
    warm_faces: WarmFaceConfig = field(default_factory=WarmFaceConfig)

    def rebaseline(self) -> None:
        """Forget the drift baseline (after the operator re-checked the blackbody)."""
        self.baseline_c = None

    def _blackbody(self, c: NDArray[np.float32]) -> tuple[float, float, int] | None:
        if self.blackbody is None:
            return None
        px = _region(c, self.blackbody.box)
        if px.size < 4:
            return None
        # the central half of the region, away from its edges
        h, w = px.shape
        core = px[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 4 : max(w // 4 + 1, 3 * w // 4)]
        med, std = float(np.median(core)), float(core.std())
        cfg = self.config
        if (
            abs(med - self.blackbody.set_c) > cfg.blackbody_tolerance_c
            or std > cfg.blackbody_max_std_c
        ):
            return None
        return med, std, int(core.size)

    def screen(
        self,
        frame: ThermalFrame,
        environment: Environment,
        faces: Faces | None = None,
        region: Sequence[float] | None = None,
    ) -> ScreeningResult:
        """Screen the person in ``region`` (whole frame by default).

        ``faces``: faces in thermal pixels (with 5-point landmarks when a registered visible
        camera found them); found in the thermal frame when not given.
        """
        if region is not None:
            _finite_box(region, "region")
        cfg = self.config
        c = frame.celsius
        refused = _environment_refusals(environment, cfg)
        bb = self._blackbody(c)
        drift = None
        if bb is None:
            refused.append("no_blackbody")
        else:
            if self.baseline_c is None:
                self.baseline_c = bb[0]
            drift = bb[0] - self.baseline_c
            if abs(drift) > cfg.max_drift_c:
                refused.append("blackbody_drift")
        faces = self._faces_in(c, faces, region)
        if len(faces) == 0:
            refused.append("no_face")
        elif len(faces) > 1:
            refused.append("several_faces")
        bb_c = None if bb is None else bb[0]
        if refused:
            return ScreeningResult(
                outcome=None, refused=tuple(refused), blackbody_c=bb_c, drift_c=drift
            )
        assert bb is not None
        x1, y1, x2, y2 = (float(v) for v in faces.xyxy[0])
        box = (x1, y1, x2, y2)
        site, pix, notes = _canthus_pixels(c, faces, box, cfg)
        reading = float(np.percentile(pix, cfg.canthus_percentile))
        offset = self.blackbody.set_c - bb[0]  # type: ignore[union-attr]
        estimate = reading + offset + cfg.canthus_to_body_c
        top = np.sort(pix)[-max(3, len(pix) // 20) :]
        u = math.sqrt(
            self.blackbody.uncertainty_c**2  # type: ignore[union-attr]
            + (bb[1] / math.sqrt(bb[2])) ** 2
            + (float(top.std()) / math.sqrt(len(top))) ** 2
            + cfg.calibration_uncertainty_c**2
        )
        identity = None
        if cfg.link_identity and self.identify is not None:
            identity = self.identify(frame, faces[0])
        return ScreeningResult(
            outcome="refer" if estimate >= cfg.refer_at_c else "clear",
            estimate_c=estimate,
            uncertainty_c=2 * u,
            site=site,
            notes=notes,
            face_box=box,
            canthus_c=reading,
            offset_c=offset,
            identity=identity,
            blackbody_c=bb_c,
            drift_c=drift,
        )

    def _faces_in(
        self, c: NDArray[np.float32], faces: Faces | None, region: Sequence[float] | None
    ) -> Faces:
        """The faces to screen: those given whose centre lies in ``region``, or found warm."""
        if faces is None:
            return find_warm_faces(c, self.warm_faces, region)
        if region is not None and len(faces):
            x1, y1, x2, y2 = region
            cx = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2
            cy = (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2
            faces = faces[(cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)]
        return faces


def _environment_refusals(environment: Environment, cfg: ScreeningConfig) -> list[str]:
    """Why the room's reported conditions forbid a reading (empty when they allow one)."""
    if environment.ambient_c is None or environment.humidity is None:
        return ["ambient_not_reported"]
    refused = []
    lo, hi = cfg.ambient_range_c
    if not lo <= environment.ambient_c <= hi:
        refused.append("ambient_out_of_range")
    lo, hi = cfg.humidity_range
    if not lo <= environment.humidity <= hi:
        refused.append("humidity_out_of_range")
    return refused


def _canthus_pixels(
    c: NDArray[np.float32],
    faces: Faces,
    box: tuple[float, float, float, float],
    cfg: ScreeningConfig,
) -> tuple[str, NDArray[np.float32], tuple[str, ...]]:
    """The pixels read for the face (the inner canthi, or its hottest canthus-sized window)."""
    if faces.landmarks is not None and faces.landmarks.shape[1] >= 5:
        lm = faces.landmarks[0]
        rad = max(1.5, cfg.canthus_radius * (box[2] - box[0]))
        pix = np.concatenate(
            [
                _region(c, (x - rad, y - rad, x + rad + 1, y + rad + 1)).ravel()
                for x, y in (lm[1], lm[3])
            ]
        )
        return "inner_canthus", pix, ()
    import cv2

    face = _region(c, box)
    k = max(3, round(2 * cfg.canthus_radius * (box[2] - box[0])) | 1)
    smooth = cv2.blur(face.astype(np.float32), (k, k))
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    pix = face[max(0, y - k // 2) : y + k // 2 + 1, max(0, x - k // 2) : x + k // 2 + 1]
    note = (
        "no eye landmarks in the thermal frame: the reading is the face's "
        "hottest region, which is usually but not always the inner canthus"
    )
    return "face_hottest_region", pix.ravel(), (note,)
