"""stream: a video source -> followed faces, identified per track -> events and live views.

In: a ``VideoSource`` (``facelens.decode.video``) and a governed gallery. Out: events on an
``EventBus`` (``facelens.events``), the watch's statistics, and frames for live views.

- ``WatchSession``: the governed watch that the command line (``facelens watch``) and the
  service (``POST /v1/streams``) both run: audit of the period of use, two-person
  confirmation, the operator's stop control, live views.
- ``Watcher``: the loop: pacing (``Pacer``), detection, following, events.
- ``Follower``: one frame's step, shared with redaction's sparing (``facelens.redact``):
  cuts (``ShotDetector``) end every track; tracks are gated by appearance; each track is
  named only by its own evidence, searched in the governed gallery (``GallerySearch``).

Live views
----------
``WatchSession.subscribe()`` returns a ``Subscription``. Per processed frame the watch
publishes a ``FrameView``: ``index``, ``media_time``, ``image`` (the RGB frame, read-only)
and ``faces``, each a ``FaceView`` with ``box`` (x1, y1, x2, y2), ``track_id``, ``name``
(the enrolled name its track holds, or None), ``confirmed`` (the name rests on a sample of
that track's own face from the last ``fresh_seconds``) and ``held`` (identified in a gallery
that wants two people to confirm: no name is shown). When a track ends, a ``TrackEnd``
(``track_id``, ``name``, ``best_shot`` chip, ``frame``, ``media_time``, ``reason``).

Publishing never blocks the watch: a subscription has one slot for frames (the newest
replaces one not yet taken; ``dropped_frames`` counts them) and a bounded queue of track
ends (``dropped_ends``). Read with ``next_frame(timeout)`` (waits; None once the watch has
ended), ``latest()`` (never waits) and ``ended()``; ``close()`` when done. A watch takes at
most ``MAX_SUBSCRIBERS`` subscriptions.

Example:
    >>> import numpy as np
    >>> hub = Observers()
    >>> with hub.subscribe() as sub:
    ...     hub.publish_frame(FrameView(7, 0.23, np.zeros((4, 4, 3), np.uint8), ()))
    ...     view = sub.next_frame(timeout=1)
    >>> view.index, view.faces
    (7, ())
"""

from facelens.stream.follow import (
    Announced,
    Ended,
    FollowConfig,
    Follower,
    GallerySearch,
    Step,
)
from facelens.stream.observe import (
    MAX_SUBSCRIBERS,
    FaceView,
    FrameView,
    Observers,
    Subscription,
    TrackEnd,
)
from facelens.stream.pacer import Pacer, PacerConfig
from facelens.stream.session import HALTED, WatchSession
from facelens.stream.shots import ShotConfig, ShotDetector
from facelens.stream.watcher import AUTO, LATENCY_WINDOW, WatchConfig, Watcher, WatchStats

__all__ = [
    "AUTO",
    "HALTED",
    "LATENCY_WINDOW",
    "MAX_SUBSCRIBERS",
    "Announced",
    "Ended",
    "FaceView",
    "FollowConfig",
    "Follower",
    "FrameView",
    "GallerySearch",
    "Observers",
    "Pacer",
    "PacerConfig",
    "ShotConfig",
    "ShotDetector",
    "Step",
    "Subscription",
    "TrackEnd",
    "WatchConfig",
    "WatchSession",
    "WatchStats",
    "Watcher",
]
