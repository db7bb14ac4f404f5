"""The enrolment gate: quality measures -> named reasons to refuse a face."""

from __future__ import annotations

from dataclasses import dataclass

from facelens.quality.measures import QualityScores

__all__ = ["REASONS", "QualityGate"]

REASONS = {
    "too_small": "the eyes are too few pixels apart for a reliable template",
    "blurred": "the face is out of focus or motion-blurred",
    "profile": "the head is turned too far to the side",
    "head_pitched": "the head is tilted too far up or down",
    "too_dark": "the face is under-exposed",
    "too_bright": "the face is over-exposed",
}


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a face must meet to be enrolled (see ``docs/quality.md`` for their origin).

    Attributes:
        min_inter_eye_px: smallest eye distance accepted.
        min_sharpness: smallest Laplacian variance accepted.
        max_abs_yaw_deg: largest estimated left/right turn accepted.
        max_abs_pitch_deg: largest estimated up/down tilt accepted.
        min_brightness: darkest mean grey level accepted.
        max_brightness: brightest mean grey level accepted.
        max_clipped: largest fraction of crushed or blown-out pixels accepted.
    """

    min_inter_eye_px: float = 16.0
    min_sharpness: float = 4.0
    max_abs_yaw_deg: float = 45.0
    max_abs_pitch_deg: float = 30.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    max_clipped: float = 0.25

    def reasons(self, q: QualityScores, i: int) -> list[str]:
        """Named reasons face ``i`` fails the gate; empty when it passes.

        Example:
            >>> import numpy as np
            >>> one = lambda v: np.array([v], float)
            >>> q = QualityScores(one(12), one(80), one(5), one(0), one(0), one(120), one(0),
            ...                   one(1))
            >>> QualityGate().reasons(q, 0)
            ['too_small']
        """
        out = []
        if q.inter_eye_px[i] < self.min_inter_eye_px:
            out.append("too_small")
        if q.sharpness[i] < self.min_sharpness:
            out.append("blurred")
        if abs(q.yaw_deg[i]) > self.max_abs_yaw_deg:
            out.append("profile")
        if abs(q.pitch_deg[i]) > self.max_abs_pitch_deg:
            out.append("head_pitched")
        if q.brightness[i] < self.min_brightness:
            out.append("too_dark")
        if q.brightness[i] > self.max_brightness or q.clipped[i] > self.max_clipped:
            out.append("too_bright" if q.brightness[i] >= 128 else "too_dark")
        return list(dict.fromkeys(out))
