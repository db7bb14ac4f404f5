"""``Watcher``: a video source through detect -> follow (``Follower``) -> events.

Per frame: the shot detector looks for a cut (which ends every track); on detection frames
(every ``detect_every``-th, ``"auto"``: as often as ``Pacer`` finds affordable) faces are
detected on a copy shrunk to ``detect_max_side`` (boxes scaled back) and followed, each
track identified on its own evidence; on the frames in between, tracks move by their
velocity. What changes becomes events on an ``EventBus``; each processed frame goes to the
live views (``Observers``) and to ``on_frame``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facelens.decode.video import Frame, SourceStatus, VideoSource
from facelens.events import Event, EventBus
from facelens.faces import Faces
from facelens.stream.follow import (
    Announced,
    Ended,
    FollowConfig,
    Follower,
    GallerySearch,
    Step,
)
from facelens.stream.observe import FaceView, FrameView, Observers, TrackEnd
from facelens.stream.pacer import Pacer, PacerConfig
from facelens.track import TrackVerdict

if TYPE_CHECKING:
    from facelens.govern import GovernedGallery
    from facelens.pipeline import Pipeline

__all__ = ["AUTO", "LATENCY_WINDOW", "Hold", "WatchConfig", "WatchStats", "Watcher"]

AUTO = "auto"

log = logging.getLogger(__name__)

# how many of the latest events' latencies WatchStats keeps
LATENCY_WINDOW = 10_000

# what a gallery that wants two people to confirm does with an identification (and the
# track's best shot) instead of sending it (GovernedGallery.confirmation)
Hold = Callable[[Event, NDArray[np.uint8] | None], None]


@dataclass(frozen=True)
class WatchConfig:
    """How a stream is watched.

    Attributes:
        detect_every: run the detector on every n-th frame (tracks carry faces in between),
            or ``"auto"``: as often as the measured cost allows at the source's frame rate.
        detect_max_side: shrink frames so their longer side is at most this before detection
            (None: full size), or ``"auto"``: full size unless the measured cost needs
            less. Faces keep full-resolution boxes and chips.
        follow: tracking, cut detection and per-track identification (its
            ``identify_threshold`` is the 1:N operating point, default ``open_set``).
        pacer: how ``"auto"`` chooses.
    """

    detect_every: int | str = AUTO
    detect_max_side: int | str | None = AUTO
    follow: FollowConfig = field(default_factory=FollowConfig)
    pacer: PacerConfig = field(default_factory=PacerConfig)

    def __post_init__(self) -> None:
        if self.detect_every != AUTO and (
            not isinstance(self.detect_every, int) or self.detect_every < 1
        ):
            raise ValueError(f"detect_every must be 'auto' or >= 1, got {self.detect_every!r}")
        if self.detect_max_side not in (AUTO, None) and (
            not isinstance(self.detect_max_side, int) or self.detect_max_side < 64
        ):
            raise ValueError(
                f"detect_max_side must be 'auto', None or >= 64, got {self.detect_max_side!r}"
            )


@dataclass
class WatchStats:
    """Counters of a watch run (``detect_every`` and ``detect_max_side``: the last choice).

    ``events`` counts exactly the events handed to the sinks, by type; ``tracks`` the tracks
    announced (one ``track_started`` each); ``alerts_held`` the identifications held for two
    people to confirm instead of being sent.
    """

    frames: int = 0
    detected_frames: int = 0
    skipped: int = 0
    embeddings: int = 0
    tracks: int = 0
    cuts: int = 0
    alerts_held: int = 0
    events: dict[str, int] = field(default_factory=dict)
    processing_seconds: float = 0.0
    media_seconds: float = 0.0
    # the most recent events' latencies (bounded: a stream may run for months)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    detect_every: int = 1
    detect_max_side: int | None = None

    @property
    def realtime_factor(self) -> float:
        return self.media_seconds / self.processing_seconds if self.processing_seconds else 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Watcher:
    """Watches one source against a governed gallery (None: every face is unknown).

    The edges watch through ``WatchSession``, which opens the gallery's period of use
    (``stream_started``) that a watch's searches need, and keeps the stop control, the
    two-person confirmation and the audit trail; a ``Watcher`` on its own is the loop.

    Args:
        pipeline: detection, alignment, embedding.
        gallery: where tracks are identified (``stream_search``, each frame's searches one
            audit record); a search outside a period of use is refused (RuntimeError), one
            after an operator's stop ends the watch (``StoppedError``).
        bus: where events go.
        config: how.
        hold: for a gallery that wants two people to confirm identifications: each
            ``identified`` event goes here (with the track's best shot) instead of the
            bus, and nothing else the watch says names the person.
        observers: live views of the processed frames (``Observers``).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        gallery: GovernedGallery | None,
        bus: EventBus,
        config: WatchConfig | None = None,
        hold: Hold | None = None,
        observers: Observers | None = None,
    ) -> None:
        self.pipe = pipeline
        self.gallery = gallery
        self.bus = bus
        self.config = config or WatchConfig()
        self.hold = hold
        self.observers = observers or Observers()
        self.stats = WatchStats()
        self.stopping = False
        self._source = ""
        self._last: Frame | None = None
        self._follower: Follower | None = None

    def stop(self) -> None:
        """Ask ``run`` to return after the current frame."""
        self.stopping = True

    # -- the loop ---------------------------------------------------------------------------

    def run(
        self,
        source: VideoSource,
        max_frames: int | None = None,
        on_frame: Callable[[FrameView], None] | None = None,
        on_progress: Callable[[WatchStats], None] | None = None,
        name: str | None = None,
    ) -> WatchStats:
        """Process ``source`` to its end (or ``max_frames``, or ``stop()``); events name it
        ``name`` (default: the source's own name, without credentials)."""
        search = None
        if self.gallery is not None:
            search = GallerySearch(
                self.gallery,
                self.pipe.model,
                self.config.follow.identify_threshold,
                self.pipe.calibrations,
            )
        follower = self._follower = Follower(self.pipe, search, self.config.follow)
        self._source = name or source.name
        pacer = Pacer(source.fps, max(source.width, source.height), self.config.pacer)
        start = last_progress = time.perf_counter()
        since = 0  # frames since the last detection
        try:
            for item in source:
                if isinstance(item, SourceStatus):
                    self._status(item, follower)
                    continue
                t_frame = time.perf_counter()
                due = since == 0 or since >= self._every(pacer)
                detected = self._frame(item, follower, due, self._side(pacer), on_frame)
                since = 1 if detected else since + 1
                self._pace(pacer, detected, time.perf_counter() - t_frame)
                now = time.perf_counter()
                self.stats.processing_seconds = now - start
                if on_progress and now - last_progress >= 1.0:
                    last_progress = now
                    on_progress(self.stats)
                if self.stopping or (max_frames is not None and self.stats.frames >= max_frames):
                    break
        finally:
            self._ended(follower.close(), self._last)
            self.observers.close()
        self.stats.skipped = source.frames_skipped
        self.stats.processing_seconds = time.perf_counter() - start
        return self.stats

    def _every(self, pacer: Pacer) -> int:
        every = self.config.detect_every
        return pacer.stride if every == AUTO else int(every)

    def _side(self, pacer: Pacer) -> int | None:
        side = self.config.detect_max_side
        return pacer.max_side if side == AUTO else (None if side is None else int(side))

    def _pace(self, pacer: Pacer, detecting: bool, seconds: float) -> None:
        pacer.observe(detecting, seconds)
        self.stats.detect_every = self._every(pacer)
        self.stats.detect_max_side = self._side(pacer)

    def _frame(
        self,
        frame: Frame,
        follower: Follower,
        due: bool,
        side: int | None,
        on_frame: Callable[[FrameView], None] | None,
    ) -> bool:
        """One frame: follow its faces (detected when ``due``, or when the follower sees a
        change), then report; returns whether it was detected on."""
        self.stats.frames += 1
        self.stats.media_seconds = frame.media_time
        step = follower.step(frame, partial(self._detect, m=side), due)
        self._last = frame
        self.stats.detected_frames += step.detected
        self.stats.embeddings += step.embedded
        self.stats.cuts += step.cut
        self._changes(step, follower)
        if on_frame is not None or self.observers.active:
            view = self._view(step, follower)
            if on_frame is not None:
                on_frame(view)
            self.observers.publish_frame(view)
        return step.detected

    def _detect(self, image: NDArray[np.uint8], m: int | None) -> Faces:
        h, w = image.shape[:2]
        if m is None or max(h, w) <= m:
            return self.pipe.detect(image)
        import cv2

        s = m / max(h, w)
        small = np.ascontiguousarray(
            cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
        return self.pipe.detect(small).scaled(1 / s)

    def _status(self, item: SourceStatus, follower: Follower) -> None:
        """A live source dropped or came back: tracks do not survive an outage."""
        last = self._last
        if item.kind == "lost":
            self._emit("source_lost", last, None, None, None, last_frame=item.last_index,
                       reason=item.reason)  # fmt: skip
            self._ended(follower.interrupt(), last)
        else:
            self._emit("source_restored", last, None, None, None, last_frame=item.last_index,
                       gap=round(item.gap, 3))  # fmt: skip

    # -- events -----------------------------------------------------------------------------

    def _emit(
        self,
        kind: str,
        frame: Frame | None,
        track: int | None,
        identity_id: str | None,
        score: float | None,
        **data: Any,
    ) -> None:
        names = self._follower.names if self._follower is not None else {}
        ev = Event(
            type=kind,
            time=_now(),
            frame=None if frame is None else frame.index,
            track_id=track,
            identity=names.get(identity_id) if identity_id else None,
            identity_id=identity_id,
            score=score,
            source=self._source,
            media_time=None if frame is None else frame.media_time,
            data=data,
        )
        if self.hold is not None and kind == "identified":
            shot = None
            if track is not None and self._follower is not None:
                shot = self._follower.identities.best_shot(track)
            self.hold(ev, shot)
            self.stats.alerts_held += 1
        else:
            self.bus.emit(ev)
            self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
        if frame is not None:
            self.stats.latencies.append(time.time() - frame.wall_time)

    def _changes(self, step: Step, follower: Follower) -> None:
        for change in step.changes:
            if isinstance(change, Ended):
                self._ended((change,), step.frame)
            elif isinstance(change, Announced):
                self.stats.tracks += 1
                self._emit("track_started", step.frame, change.track_id, None, None,
                           box=list(change.box))  # fmt: skip
            else:
                self._verdict(change, step.frame)

    def _verdict(self, v: TrackVerdict, frame: Frame) -> None:
        held = self.hold is not None  # named only once confirmed: nothing else names them
        if v.kind == "identified" and v.candidate is not None:
            self._emit("identified", frame, v.track_id, v.candidate.identity_id, v.score,
                       samples=v.samples)  # fmt: skip
        elif v.kind == "unknown":
            self._emit("unknown_face", frame, v.track_id, None, v.score, samples=v.samples)
        elif v.kind == "withdrawn":
            self._emit("identity_withdrawn", frame, v.track_id,
                       None if held else v.previous, None, reason=v.reason,
                       samples=v.samples)  # fmt: skip

    def _ended(self, ended: tuple[Ended, ...], frame: Frame | None) -> None:
        names = self._follower.names if self._follower is not None else {}
        for e in ended:
            if not e.announced:
                continue
            final = e.summary
            shot = final.best_shot
            identity = None if self.hold is not None else final.identity_id
            self._emit(
                "track_ended",
                frame,
                e.track_id,
                identity,
                None if identity is None else final.score,
                reason=e.reason,
                dwell=round(e.last_time - e.first_time, 3),
                first_frame=e.first_frame,
                best_shot={
                    "frame": final.best_frame,
                    "quality": round(final.best_quality, 3),
                    "size": None if shot is None else list(shot.shape[:2]),
                },
            )
            if self.observers.active:
                if shot is not None:
                    shot = shot.view()
                    shot.flags.writeable = False
                self.observers.publish_end(
                    TrackEnd(
                        e.track_id,
                        None if identity is None else names.get(identity),
                        shot,
                        -1 if frame is None else frame.index,
                        0.0 if frame is None else frame.media_time,
                        e.reason,
                    )
                )

    # -- live views -------------------------------------------------------------------------

    def _view(self, step: Step, follower: Follower) -> FrameView:
        faces = []
        ids = step.faces.track_id.tolist() if step.faces.track_id is not None else []
        for i, tid in enumerate(ids):
            identity = step.identities[i]
            held = self.hold is not None and identity is not None
            name = None if held or identity is None else follower.names.get(identity)
            box = tuple(float(v) for v in step.faces.xyxy[i])
            faces.append(
                FaceView(
                    (box[0], box[1], box[2], box[3]),
                    int(tid),
                    name,
                    name is not None and step.confirmed[i],
                    held,
                )
            )
        image = step.frame.image.view()
        image.flags.writeable = False
        return FrameView(step.frame.index, step.frame.media_time, image, tuple(faces))
