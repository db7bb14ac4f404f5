"""track: per-frame Faces -> Faces with track ids; per-track identity from its own evidence.

``Tracker`` follows faces by box overlap and motion, gated by appearance: a face whose
template disagrees with a track's recent ones never continues it. ``TrackIdentities`` embeds
a few of each track's best frames and, at a bounded cadence, its recent ones, names the
track when enough of them agree, and takes the name away when they stop supporting it.
``facelens.stream`` runs both on video frames.
"""

from facelens.track.identity import (
    Sample,
    TrackIdentities,
    TrackIdentityConfig,
    TrackSummary,
    TrackVerdict,
    face_quality,
)
from facelens.track.tracker import Tracker, TrackerConfig, TrackUpdate

__all__ = [
    "Sample",
    "TrackIdentities",
    "TrackIdentityConfig",
    "TrackSummary",
    "TrackUpdate",
    "TrackVerdict",
    "Tracker",
    "TrackerConfig",
    "face_quality",
]
