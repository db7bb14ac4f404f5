"""``Watcher``: a video source through detect -> track -> identify per track -> events.

Per frame: on detection frames (every ``detect_every``-th), faces are detected on a copy of
the frame shrunk to ``detect_max_side`` (boxes are scaled back), tracked, given landmarks and
a quality score; a track's frame is embedded only when it is among the track's best so far
(``TrackIdentities``). On the frames in between, tracks are moved by their velocity. Events go
to an ``EventBus``.

By default (``"auto"``) the stride and the detection size follow the measured cost
(``Pacer``): the watcher keeps up with the source's frame rate on the machine it runs on,
detecting as often and as large as that allows.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.decode.video import Frame, SourceStatus, VideoSource
from facelens.events import Event, EventBus
from facelens.faces import Faces
from facelens.govern.governed import GovernedGallery
from facelens.match.thresholds import DEFAULT_IDENTIFY, identify_rule
from facelens.pipeline import Pipeline
from facelens.quality import measure
from facelens.track import Tracker, TrackerConfig, TrackIdentities, TrackIdentityConfig
from facelens.track.identity import face_quality

__all__ = ["AUTO", "Pacer", "PacerConfig", "WatchConfig", "WatchStats", "Watcher"]

AUTO = "auto"

log = logging.getLogger(__name__)


# how many of the latest events' latencies WatchStats keeps
LATENCY_WINDOW = 10_000


@dataclass(frozen=True)
class PacerConfig:
    """How ``"auto"`` picks the detection stride and size.

    Attributes:
        headroom: share of a frame interval the work may take (the rest absorbs jitter,
            decoding and the sinks).
        max_stride: the stride never exceeds this (0: the frame rate / ``min_rate``).
        min_rate: detections per second at least (a face must not go unseen for long).
        sides: detection sizes (longer side, pixels) tried in turn when even the largest
            stride cannot keep up at full size.
        window: detection frames averaged before a new choice.
    """

    headroom: float = 0.8
    max_stride: int = 0
    min_rate: float = 5.0
    sides: tuple[int, ...] = (1280, 960, 640, 480)
    window: int = 8


class Pacer:
    """Chooses the detection stride and size from the measured cost of frames.

    Every frame's processing time is recorded, split into detection frames and the frames in
    between; after ``window`` detection frames the stride becomes the smallest that keeps
    the average frame within ``headroom`` of the frame interval: with ``d`` seconds for a
    detection frame and ``c`` for another, stride ``s`` costs ``(d + (s - 1) c) / s`` per
    frame. When even ``max_stride`` cannot keep up, the detection size steps down
    (``sides``); when there is time to spare at a smaller size, it steps back up.

    Example:
        >>> p = Pacer(30.0, 1920, PacerConfig(window=2))
        >>> for _ in range(2):
        ...     p.observe(True, 0.060)
        ...     p.observe(False, 0.004)
        >>> p.stride
        3
    """

    def __init__(self, fps: float, longest_side: int, config: PacerConfig | None = None):
        self.config = config or PacerConfig()
        self.interval = 1.0 / fps if fps and fps > 0 else 1.0 / 30
        rate = fps if fps and fps > 0 else 30.0
        self.max_stride = self.config.max_stride or max(1, int(rate / self.config.min_rate))
        self.longest = longest_side
        self.sides = [s for s in self.config.sides if s < longest_side]
        self.level = 0  # 0: full size, k: self.sides[k - 1]
        self.stride = 1
        self._detect: list[float] = []
        self._other: list[float] = []

    @property
    def max_side(self) -> int | None:
        """The detection size now (longer side), None for full size."""
        return None if self.level == 0 else self.sides[self.level - 1]

    def _per_frame(self, d: float, c: float, s: int) -> float:
        return (d + (s - 1) * c) / s

    def observe(self, detected: bool, seconds: float) -> None:
        """Record one frame's processing time; re-choose after a window of detections."""
        (self._detect if detected else self._other).append(seconds)
        if len(self._detect) < self.config.window:
            return
        d = float(np.median(self._detect))
        c = float(np.median(self._other[-64:])) if self._other else d * 0.1
        budget = self.interval * self.config.headroom
        stride = next(
            (s for s in range(1, self.max_stride + 1) if self._per_frame(d, c, s) <= budget),
            None,
        )
        if stride is None and self.level < len(self.sides):
            # the detector's cost scales with its pixels: estimate the next size's
            self.level += 1
            self.stride = self.max_stride
        elif stride is None:
            self.stride = self.max_stride
        else:
            self.stride = stride
            prev = self.sides[self.level - 2] if self.level >= 2 else self.longest
            now = self.max_side or self.longest
            grow = (prev / now) ** 2
            if self.level > 0 and self._per_frame(d * grow, c, self.max_stride) <= budget * 0.7:
                self.level -= 1  # a larger size fits with room to spare
        self._detect.clear()
        self._other = self._other[-16:]


@dataclass(frozen=True)
class WatchConfig:
    """How a stream is watched.

    Attributes:
        detect_every: run the detector on every n-th frame (tracks carry faces in between),
            or ``"auto"``: as often as the measured cost allows at the source's frame rate.
        detect_max_side: shrink frames so their longer side is at most this before detection
            (None: full size), or ``"auto"``: full size unless the measured cost needs
            less. Faces keep full-resolution boxes and chips.
        identify_threshold: operating point for deciding known/unknown (default ``open_set``:
            FPIR 1% for the gallery's size).
        min_hits: detections before a track is announced (filters one-frame false alarms).
        tracker: tracker settings.
        identity: per-track identification settings.
        pacer: how ``"auto"`` chooses.
    """

    detect_every: int | str = AUTO
    detect_max_side: int | str | None = AUTO
    identify_threshold: str | float = DEFAULT_IDENTIFY
    min_hits: int = 2
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    identity: TrackIdentityConfig = field(default_factory=TrackIdentityConfig)
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
    """Counters of a watch run (``detect_every`` and ``detect_max_side``: the last choice)."""

    frames: int = 0
    detected_frames: int = 0
    skipped: int = 0
    embeddings: int = 0
    tracks: int = 0
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


@dataclass
class _TrackInfo:
    first_frame: int
    first_time: float
    last_time: float
    hits: int = 0
    announced: bool = False
    name: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Watcher:
    """Watches one source. ``on_frame(frame, faces, labels)`` sees every frame's tracked
    faces (for an annotated output video). ``gallery``'s searches run in a period of use
    its caller opened (``GovernedGallery.stream_started``): they are refused within a
    second of an operator's stop, which ends the watch (``StoppedError``)."""

    def __init__(
        self,
        pipeline: Pipeline,
        gallery: GovernedGallery | None,
        bus: EventBus,
        config: WatchConfig | None = None,
        hold: Callable[[Event, NDArray[np.uint8] | None], None] | None = None,
    ) -> None:
        self.pipe = pipeline
        self.gallery = gallery
        self.bus = bus
        self.config = config or WatchConfig()
        # a gallery that wants people to confirm identifications: each ``identified`` event
        # goes to ``hold`` (with the track's best shot) instead of the bus, and nothing else
        # the watch says names the person until they confirm (facelens.govern.confirm)
        self.hold = hold
        self.stats = WatchStats()
        self._stop = False
        self._depth = 1  # candidates per search: what the identification rule needs

    def stop(self) -> None:
        """Ask ``run`` to return after the current frame."""
        self._stop = True

    def _names(self) -> dict[str, str]:
        if self.gallery is None:
            return {}
        return {i.id: i.name for i in self.gallery.identities()}

    def _search(self, probe: Any) -> list[Any]:
        if self.gallery is None:
            return []
        return self.gallery.stream_search(probe, self._depth)[0]

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

    def run(
        self,
        source: VideoSource,
        max_frames: int | None = None,
        on_frame: Callable[[Frame, Faces, list[str | None]], None] | None = None,
        on_progress: Callable[[WatchStats], None] | None = None,
    ) -> WatchStats:
        """Process ``source`` to its end (or ``max_frames``, or ``stop()``)."""
        cfg = self.config
        size = self.gallery.search_size(self.pipe.model) if self.gallery else (0, 0)
        rule = identify_rule(self.pipe.model, cfg.identify_threshold, *size)
        self._depth = rule.depth
        names = self._names()
        tracker = Tracker(cfg.tracker)
        ids = TrackIdentities(self._search, rule, self.pipe.model, cfg.identity)
        info: dict[int, _TrackInfo] = {}
        src = source.name
        start = time.perf_counter()
        last_progress = start
        faces = Faces.empty()
        pacer = Pacer(source.fps, max(source.width, source.height), cfg.pacer)
        every = pacer.stride if cfg.detect_every == AUTO else int(cfg.detect_every)
        side = cfg.detect_max_side
        max_side = pacer.max_side if side == AUTO else (None if side is None else int(side))
        since = 0  # frames since the last detection

        def emit(
            kind: str,
            frame: Frame | None,
            track: int | None,
            identity_id: str | None,
            score: float | None,
            **data: Any,
        ) -> None:
            if self.hold is not None and kind == "track_ended":
                identity_id = score = None  # named only once confirmed
            ev = Event(
                type=kind,
                time=_now(),
                frame=None if frame is None else frame.index,
                track_id=track,
                identity=names.get(identity_id) if identity_id else None,
                identity_id=identity_id,
                score=score,
                source=src,
                media_time=None if frame is None else frame.media_time,
                data=data,
            )
            if self.hold is not None and kind == "identified":
                self.hold(ev, ids.best_shot(track) if track is not None else None)
                kind = "alert_pending"
            else:
                self.bus.emit(ev)
            self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
            if frame is not None:
                self.stats.latencies.append(time.time() - frame.wall_time)

        def end_track(tid: int, frame: Frame | None) -> None:
            t = info.pop(tid, None)
            final = ids.end(tid)
            if t is None or not t.announced:
                return
            shot = final.best_shot
            emit(
                "track_ended",
                frame,
                tid,
                final.identity_id,
                final.score,
                dwell=round(t.last_time - t.first_time, 3),
                first_frame=t.first_frame,
                best_shot={
                    "frame": final.best_frame,
                    "quality": round(final.best_quality, 3),
                    "size": None if shot is None else list(shot.shape[:2]),
                },
            )

        for item in source:
            if isinstance(item, SourceStatus):
                kind = "source_lost" if item.kind == "lost" else "source_restored"
                data = (
                    {"gap": round(item.gap, 3)}
                    if item.kind == "restored"
                    else {"reason": item.reason}
                )
                emit(kind, None, None, None, None, last_frame=item.last_index, **data)
                if item.kind == "lost":  # tracks do not survive an outage
                    for tid in tracker.close():
                        end_track(tid, None)
                continue
            frame = item
            t_frame = time.perf_counter()
            self.stats.frames += 1
            self.stats.media_seconds = frame.media_time
            labels: list[str | None]
            detecting = since == 0 or since >= every
            if detecting:
                since = 1
                self.stats.detected_frames += 1
                image = frame.image
                detected = self._detect(image, max_side)
                update = tracker.update(detected, frame.index)
                faces = self.pipe.align(image, update.faces)
                for tid in update.ended:
                    end_track(tid, frame)
                for tid in update.started:
                    info[tid] = _TrackInfo(frame.index, frame.media_time, frame.media_time)
                    self.stats.tracks += 1
                self._identify(image, faces, frame, ids, info, emit)
            else:
                since += 1
                faces = tracker.predict(frame.index)
            labels = [
                (
                    "to confirm"
                    if self.hold is not None and ids.identity(int(t))
                    else names.get(ids.identity(int(t)) or "", None)
                )
                for t in (faces.track_id if faces.track_id is not None else [])
            ]
            if on_frame:
                on_frame(frame, faces, labels)
            pacer.observe(detecting, time.perf_counter() - t_frame)
            if cfg.detect_every == AUTO:
                every = pacer.stride
            if side == AUTO:
                max_side = pacer.max_side
            self.stats.detect_every, self.stats.detect_max_side = every, max_side
            now = time.perf_counter()
            self.stats.processing_seconds = now - start
            if on_progress and now - last_progress >= 1.0:
                last_progress = now
                on_progress(self.stats)
            if self._stop or (max_frames is not None and self.stats.frames >= max_frames):
                break
        for tid in tracker.close():
            end_track(tid, None)
        self.stats.skipped = source.frames_skipped
        self.stats.processing_seconds = time.perf_counter() - start
        return self.stats

    def _identify(
        self,
        image: NDArray[np.uint8],
        faces: Faces,
        frame: Frame,
        ids: TrackIdentities,
        info: dict[int, _TrackInfo],
        emit: Callable[..., None],
    ) -> None:
        if len(faces) == 0 or faces.track_id is None:
            return
        chips = self.pipe.aligner.chips(image, faces)
        q = measure(faces, chips)
        want = []
        for i, tid in enumerate(faces.track_id.tolist()):
            t = info.get(tid)
            if t is None:
                continue
            t.hits += 1
            t.last_time = frame.media_time
            quality = face_quality(
                float(q.detection_score[i]),
                float(q.inter_eye_px[i]),
                float(q.yaw_deg[i]),
                float(q.sharpness[i]),
            )
            ids.offer_shot(tid, quality, frame.index, partial(np.copy, chips[i]))
            if not t.announced and t.hits >= self.config.min_hits:
                t.announced = True
                emit(
                    "track_started",
                    frame,
                    tid,
                    None,
                    None,
                    box=[round(float(v), 1) for v in faces.xyxy[i]],
                )
            if t.announced and ids.wants(tid, quality):
                want.append((i, tid, quality))
        if not want:
            return
        rows = [i for i, _, _ in want]
        emb = self.pipe.embed_views(self.pipe.views(image, faces[rows], chips[rows]))
        self.stats.embeddings += len(want)
        for row, (_, tid, quality) in enumerate(want):
            verdict = ids.add(tid, emb.vectors[row], quality)
            if verdict is None:
                continue
            if verdict.kind == "identified" and verdict.candidate is not None:
                emit(
                    "identified",
                    frame,
                    tid,
                    verdict.candidate.identity_id,
                    verdict.score,
                    samples=verdict.samples,
                )
            else:
                emit("unknown_face", frame, tid, None, verdict.score, samples=verdict.samples)
