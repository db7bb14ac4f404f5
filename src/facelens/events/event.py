"""The event record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_TYPES", "Event"]

EVENT_TYPES = (
    "track_started",
    "identified",
    "unknown_face",
    "track_ended",
    "identity_withdrawn",
    "source_lost",
    "source_restored",
    "screening",
)


@dataclass(frozen=True)
class Event:
    """Something that happened in a stream.

    Attributes:
        type: one of ``EVENT_TYPES``.
        time: when it was raised, UTC ISO 8601 with milliseconds.
        frame: the source frame number (None for source events without one).
        track_id: the track concerned, or None.
        identity: the enrolled name, or None (unknown, or not about a person).
        source: the stream it comes from.
        media_time: the frame's time in the stream, seconds.
        identity_id: the enrolled identity's id, or None.
        score: the match score (rounded to 2 decimals), or None.
        data: further fields of the event type (dwell time, best shot, gap, ...).
    """

    type: str
    time: str
    frame: int | None
    track_id: int | None
    identity: str | None
    source: str
    media_time: float | None = None
    identity_id: str | None = None
    score: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        """The event ``to_dict`` made (its extra fields back in ``data``)."""
        fields = {"type", "time", "frame", "track_id", "identity", "source"}
        fields |= {"media_time", "identity_id", "score"}
        return cls(
            type=d["type"],
            time=d["time"],
            frame=d.get("frame"),
            track_id=d.get("track_id"),
            identity=d.get("identity"),
            source=d.get("source", ""),
            media_time=d.get("media_time"),
            identity_id=d.get("identity_id"),
            score=d.get("score"),
            data={k: v for k, v in d.items() if k not in fields},
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type,
            "time": self.time,
            "frame": self.frame,
            "track_id": self.track_id,
            "identity": self.identity,
            "identity_id": self.identity_id,
            "score": None if self.score is None else round(self.score, 2),
            "media_time": None if self.media_time is None else round(self.media_time, 3),
            "source": self.source,
        }
        d.update(self.data)
        return d
