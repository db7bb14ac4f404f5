"""track: per-frame Faces -> Faces with track ids; per-track identity from the best frames.

``Tracker`` follows faces by box overlap and motion, and re-associates a face that was hidden
for a moment by its embedding. ``TrackIdentities`` embeds only a few of each track's best
frames, aggregates them and decides known or unknown.
"""

from facelens.track.identity import TrackIdentities, TrackIdentityConfig, TrackVerdict
from facelens.track.tracker import Tracker, TrackerConfig, TrackUpdate

__all__ = [
    "TrackIdentities",
    "TrackIdentityConfig",
    "TrackUpdate",
    "TrackVerdict",
    "Tracker",
    "TrackerConfig",
]
