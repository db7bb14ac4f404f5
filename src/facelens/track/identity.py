"""Identity per track: embed a few of the best frames, aggregate, decide, re-check on better
frames, and keep the best shot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facelens.embed.embeddings import Embeddings
from facelens.match.decide import Candidate, IdentifyRule, as_rule

__all__ = ["TrackIdentities", "TrackIdentityConfig", "TrackSummary", "TrackVerdict", "face_quality"]


@dataclass(frozen=True)
class TrackIdentityConfig:
    """How tracks are identified.

    Attributes:
        samples: most frames embedded per track (the best ones by quality).
        improvement: a later frame is embedded only when its quality beats the worst kept
            sample's by this factor (so a steady face costs one embedding, not one per frame).
        unknown_after: samples after which a track still below threshold is reported unknown.
    """

    samples: int = 5
    improvement: float = 1.15
    unknown_after: int = 2


def face_quality(
    detection_score: float, inter_eye_px: float, yaw_deg: float, sharpness: float
) -> float:
    """One number to rank a track's frames: bigger, sharper, more frontal, surer is better.

    Example:
        >>> face_quality(1.0, 60, 0, 50) > face_quality(1.0, 30, 40, 5)
        True
    """
    size = min(inter_eye_px, 80.0) / 80.0
    frontal = max(0.0, 1.0 - abs(yaw_deg) / 60.0)
    sharp = min(1.0, sharpness / 10.0)
    return max(1e-6, detection_score) * size * frontal * sharp


@dataclass(frozen=True)
class TrackVerdict:
    """A change in what a track is.

    Attributes:
        track_id: the track.
        kind: ``"identified"`` (a known person, first time or a different one) or
            ``"unknown"`` (enough samples, no one close enough).
        candidate: the best candidate (None when the gallery is empty).
        score: its aggregated score.
        samples: embeddings aggregated so far.
    """

    track_id: int
    kind: str
    candidate: Candidate | None
    score: float | None
    samples: int


@dataclass(frozen=True, eq=False)
class TrackSummary:
    """A finished track: what it was judged to be, and its best shot (an aligned chip)."""

    identity_id: str | None
    score: float | None
    samples: int
    best_shot: NDArray[np.uint8] | None
    best_frame: int
    best_quality: float


@dataclass
class _State:
    samples: list[tuple[float, NDArray[np.float32]]] = field(default_factory=list)
    identity: str | None = None
    reported_unknown: bool = False
    best_quality: float = 0.0
    best_shot: NDArray[np.uint8] | None = None
    best_frame: int = -1
    score: float | None = None


class TrackIdentities:
    """Decides who each track is.

    Args:
        search: maps aggregated embeddings (1 row) to the best candidates, best first.
        rule: what the best candidate needs to be this track's identity: a similarity
            threshold or an ``IdentifyRule`` (``search`` must then return ``rule.depth``
            candidates where the gallery has them).
        model: embedding model tag the search expects.
        config: sampling and reporting.
    """

    def __init__(
        self,
        search: Callable[[Embeddings], list[Candidate]],
        rule: IdentifyRule | float,
        model: str,
        config: TrackIdentityConfig | None = None,
    ) -> None:
        self.search = search
        self.rule = as_rule(rule)
        self.model = model
        self.config = config or TrackIdentityConfig()
        self._tracks: dict[int, _State] = {}

    def wants(self, track_id: int, quality: float) -> bool:
        """Is a frame of this quality worth embedding for this track?"""
        st = self._tracks.get(track_id)
        if st is None or len(st.samples) < self.config.samples:
            return True
        return quality > min(q for q, _ in st.samples) * self.config.improvement

    def offer_shot(
        self, track_id: int, quality: float, frame: int, crop: Callable[[], NDArray[np.uint8]]
    ) -> None:
        """Keep ``crop()`` as the track's best shot if this frame is its best so far."""
        st = self._tracks.setdefault(track_id, _State())
        if quality > st.best_quality:
            st.best_quality, st.best_frame, st.best_shot = quality, frame, crop()

    def add(
        self, track_id: int, embedding: NDArray[np.float32], quality: float
    ) -> TrackVerdict | None:
        """Add one embedded frame; returns a verdict when what the track is has changed."""
        st = self._tracks.setdefault(track_id, _State())
        st.samples.append((quality, embedding.astype(np.float32)))
        st.samples.sort(key=lambda s: -s[0])
        del st.samples[self.config.samples :]
        mean = np.mean([e for _, e in st.samples], axis=0)
        cands = self.search(Embeddings(mean[None], self.model))
        best = cands[0] if cands else None
        st.score = best.score if best else None
        if best is not None and self.rule.accepts([c.score for c in cands]):
            if st.identity != best.identity_id:
                st.identity = best.identity_id
                return TrackVerdict(track_id, "identified", best, best.score, len(st.samples))
            return None
        if st.identity is not None:
            # a better view no longer supports the earlier identity
            st.identity = None
            st.reported_unknown = True
            return TrackVerdict(track_id, "unknown", best, st.score, len(st.samples))
        if not st.reported_unknown and len(st.samples) >= self.config.unknown_after:
            st.reported_unknown = True
            return TrackVerdict(track_id, "unknown", best, st.score, len(st.samples))
        return None

    def best_shot(self, track_id: int) -> NDArray[np.uint8] | None:
        """The track's best shot so far (an aligned chip), or None."""
        st = self._tracks.get(track_id)
        return None if st is None else st.best_shot

    def identity(self, track_id: int) -> str | None:
        st = self._tracks.get(track_id)
        return st.identity if st else None

    def end(self, track_id: int) -> TrackSummary:
        """Forget a track; returns its final state and best shot."""
        st = self._tracks.pop(track_id, None) or _State()
        return TrackSummary(
            st.identity, st.score, len(st.samples), st.best_shot, st.best_frame, st.best_quality
        )
