"""``Watcher``: a video source through detect -> track -> identify per track -> events.

Per frame: on detection frames (every ``detect_every``-th), faces are detected on a copy of
the frame shrunk to ``detect_max_side`` (boxes are scaled back), tracked, given landmarks and
a quality score; a track's frame is embedded only when it is among the track's best so far
(``TrackIdentities``). On the frames in between, tracks are moved by their velocity. Events go
to an ``EventBus``.
"""

from __future__ import annotations

import logging
import time
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
from facelens.gallery import Gallery
from facelens.match.thresholds import DEFAULT_IDENTIFY, identify_rule
from facelens.pipeline import Pipeline
from facelens.quality import measure
from facelens.track import Tracker, TrackerConfig, TrackIdentities, TrackIdentityConfig
from facelens.track.identity import face_quality

__all__ = ["WatchConfig", "WatchStats", "Watcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchConfig:
    """How a stream is watched.

    Attributes:
        detect_every: run the detector on every n-th frame; tracks carry faces in between.
        detect_max_side: shrink frames so their longer side is at most this before detection
            (None: full size). Faces keep full-resolution boxes and chips.
        identify_threshold: operating point for deciding known/unknown (default ``open_set``:
            FPIR 1% for the gallery's size).
        min_hits: detections before a track is announced (filters one-frame false alarms).
        tracker: tracker settings.
        identity: per-track identification settings.
    """

    detect_every: int = 1
    detect_max_side: int | None = None
    identify_threshold: str | float = DEFAULT_IDENTIFY
    min_hits: int = 2
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    identity: TrackIdentityConfig = field(default_factory=TrackIdentityConfig)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")


@dataclass
class WatchStats:
    """Counters of a watch run."""

    frames: int = 0
    detected_frames: int = 0
    skipped: int = 0
    embeddings: int = 0
    tracks: int = 0
    events: dict[str, int] = field(default_factory=dict)
    processing_seconds: float = 0.0
    media_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

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
    faces (for an annotated output video)."""

    def __init__(
        self,
        pipeline: Pipeline,
        gallery: Gallery | None,
        bus: EventBus,
        config: WatchConfig | None = None,
    ) -> None:
        self.pipe = pipeline
        self.gallery = gallery
        self.bus = bus
        self.config = config or WatchConfig()
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
        return self.gallery.search(probe, k=self._depth)[0]

    def _detect(self, image: NDArray[np.uint8]) -> Faces:
        m = self.config.detect_max_side
        h, w = image.shape[:2]
        if m is None or max(h, w) <= m:
            return self.pipe.detect(image)
        import cv2

        s = m / max(h, w)
        small = np.ascontiguousarray(
            cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
        faces = self.pipe.detect(small)
        return faces.replace(xyxy=faces.xyxy / s)

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

        def emit(
            kind: str,
            frame: Frame | None,
            track: int | None,
            identity_id: str | None,
            score: float | None,
            **data: Any,
        ) -> None:
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
            self.stats.frames += 1
            self.stats.media_seconds = frame.media_time
            labels: list[str | None]
            if frame.index % cfg.detect_every == 0 or self.stats.frames == 1:
                self.stats.detected_frames += 1
                image = frame.image
                detected = self._detect(image)
                update = tracker.update(detected, frame.index)
                faces = self.pipe.align(image, update.faces)
                for tid in update.ended:
                    end_track(tid, frame)
                for tid in update.started:
                    info[tid] = _TrackInfo(frame.index, frame.media_time, frame.media_time)
                    self.stats.tracks += 1
                self._identify(image, faces, frame, ids, info, emit)
            else:
                faces = tracker.predict(frame.index)
            labels = [
                names.get(ids.identity(int(t)) or "", None)
                for t in (faces.track_id if faces.track_id is not None else [])
            ]
            if on_frame:
                on_frame(frame, faces, labels)
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
        emb = self.pipe.embedder.embed(chips[[i for i, _, _ in want]])
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
