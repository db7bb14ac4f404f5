"""Following faces through video, one frame at a time: shot cuts, tracks gated by
appearance, and each track's identity from its own evidence. Watching (``Watcher``) and
redaction's sparing (``facelens.redact``) both run this step, so both decide the same way.

On a detection frame the faces are aligned and measured; a face is embedded when its
position alone cannot say which track it continues (a new face, a crossing, a face back
after a miss), when its aligned chip no longer looks like the one its track had (a cheap
cue for someone else stepping into the same place), or when its track wants evidence (its
first samples, a better view, or the recheck cadence). The templates gate the association
(``Tracker``), and the track's samples are searched in the gallery, each frame's searches as
one audited ``stream_search`` within the watch's period of use (``GallerySearch``), to
decide who the track is (``TrackIdentities``).
A cut ends every track.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from facelens.decode.video import Frame
from facelens.embed import Embeddings
from facelens.faces import Faces
from facelens.match.decide import Candidate, IdentifyRule
from facelens.match.thresholds import (
    DEFAULT_IDENTIFY,
    SHIPPED,
    Calibrations,
    identify_rule,
    resolve_threshold,
)
from facelens.quality import measure
from facelens.stream.shots import ShotConfig, ShotDetector
from facelens.track import (
    Sample,
    Tracker,
    TrackerConfig,
    TrackIdentities,
    TrackIdentityConfig,
    TrackSummary,
    TrackVerdict,
    face_quality,
)

if TYPE_CHECKING:
    from facelens.govern import GovernedGallery
    from facelens.pipeline import Pipeline

__all__ = ["Announced", "Ended", "FollowConfig", "Follower", "GallerySearch", "Step"]

# The appearance gate: a face whose template is further than this operating point of the
# model's calibration from every recent template of a track never continues it. Same-person
# templates a few frames apart stay above it on the Hamilton clip for the dlib and the
# dlib+sface templates (benchmarks/video_identity.py, "appearance").
APPEARANCE_GATE = "fmr=1e-2"


@dataclass(frozen=True)
class FollowConfig:
    """How faces are followed and identified.

    Attributes:
        tracker: box association.
        identity: sampling, agreement and recheck cadence of each track's identity.
        shots: cut detection (a cut ends every track).
        identify_threshold: the gallery's 1:N operating point (default ``open_set``: FPIR 1%
            for the gallery's size, ``facelens.match.thresholds``); the bar for a name.
        appearance: the appearance gate, an operating point of the model's calibration
            (``fmr=X``, a name, or a number).
        change: least correlation (-1 to 1) between a face's small aligned chip and the
            one its track had at its last detection; below it the face is embedded at once.
        moved: least correlation between what a carried face's box shows and what it
            showed a frame before; below it the frame is detected at once. Between two
            frames of the Hamilton clip a face's box correlates 0.53 or more in 95% of
            cases; the face swapped in the synthetic ``swap`` clip gives 0.24.
        min_hits: detections before a track is announced and its identity sought.
        embed_poor: embed faces that fail the enrolment quality gate too (their templates
            still gate the tracks; they never count for or against a name). Redaction,
            which shows a face only on a frame its own good sample confirms, skips them.
    """

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    identity: TrackIdentityConfig = field(default_factory=TrackIdentityConfig)
    shots: ShotConfig = field(default_factory=ShotConfig)
    identify_threshold: str | float = DEFAULT_IDENTIFY
    appearance: str | float = APPEARANCE_GATE
    change: float = 0.8
    moved: float = 0.5
    min_hits: int = 2
    embed_poor: bool = True

    def __post_init__(self) -> None:
        if self.min_hits < 1 or not -1 <= self.change <= 1:
            raise ValueError(f"min_hits must be >= 1 and change in [-1, 1], got {self}")


class GallerySearch:
    """The governed gallery as a track's evidence is searched in it: every call is one
    audited ``stream_search`` (the frame's SHA-256, the candidates), allowed only within the
    period of use its caller opened (``stream_started``) and refused (``StoppedError``)
    within a second of an operator's stop; the rule is the gallery's calibrated one for its
    size when the search began.

    Args:
        gallery: the governed gallery.
        model: the template tag searched.
        point: the 1:N operating point (None: ``open_set``).
        calibrations: the thresholds of ``model`` (``Pipeline.calibrations``; default the
            shipped ones).
    """

    def __init__(
        self,
        gallery: GovernedGallery,
        model: str,
        point: str | float | None = None,
        calibrations: Calibrations = SHIPPED,
    ) -> None:
        self.gallery = gallery
        self.model = model
        identities, samples = gallery.search_size(model)
        self.rule: IdentifyRule = identify_rule(
            model, point, identities, samples, calibrations=calibrations
        )
        self.empty = identities == 0

    def __call__(
        self, probes: NDArray[np.float32], image: NDArray[np.uint8]
    ) -> list[list[Candidate]]:
        """Candidates, best first and ``rule.depth`` deep, for each probe row."""
        if self.empty or not len(probes):
            return [[] for _ in range(len(probes))]
        return self.gallery.stream_search(
            Embeddings(probes, self.model),
            self.rule.depth,
            probe_sha256=hashlib.sha256(np.ascontiguousarray(image).data).hexdigest(),
        )


@dataclass(frozen=True, eq=False)
class Ended:
    """A track that ended.

    Attributes:
        track_id: the track.
        reason: ``cut`` (the shot changed), ``unseen`` (not detected for a while),
            ``displaced`` (a face of another appearance took its place), ``split`` (its
            evidence named someone else: the face goes on as a new track), ``closed`` (end
            of the stream or an outage).
        summary: its final identity and best shot.
        announced: whether it was announced (seen ``min_hits`` times).
        first_frame: its first frame; ``first_time``, ``last_time``: media times of its first
            and last detection.
    """

    track_id: int
    reason: str
    summary: TrackSummary
    announced: bool
    first_frame: int
    first_time: float
    last_time: float


@dataclass(frozen=True)
class Announced:
    """A track seen ``min_hits`` times: from now on it is reported and identified."""

    track_id: int
    box: tuple[float, float, float, float]


Change = Ended | Announced | TrackVerdict
Detect = Callable[[NDArray[np.uint8]], Faces]


@dataclass(frozen=True, eq=False)
class Step:
    """What one frame showed and changed.

    Attributes:
        frame: the frame.
        faces: its faces with ``track_id`` (detected, or predicted between detections).
        detected: whether the detector ran on it.
        cut: whether it began a new shot.
        identities: per face, the identity id its track holds now, or None.
        confirmed: per face, whether that identity rests on a sample of its own track taken
            at most ``fresh_seconds`` before this frame.
        changes: what happened, in order: tracks ended, announced, identity verdicts.
        embedded: faces embedded on this frame.
    """

    frame: Frame
    faces: Faces
    detected: bool
    cut: bool
    identities: tuple[str | None, ...]
    confirmed: tuple[bool, ...]
    changes: tuple[Change, ...]
    embedded: int = 0


@dataclass(frozen=True, eq=False)
class _Measured:
    """Detected faces with landmarks, their chips, ranking quality, change thumbnails and
    whether each is good enough to judge."""

    faces: Faces
    chips: NDArray[np.uint8]
    quality: list[float]
    thumbs: list[NDArray[np.float32]]
    usable: list[bool]


@dataclass
class _Life:
    first_frame: int
    first_time: float
    last_time: float
    hits: int = 0
    announced: bool = False


def _box_thumb(image: NDArray[np.uint8], box: NDArray[np.float32]) -> NDArray[np.float32]:
    """A tiny normalised grey copy of what is inside ``box``, to notice a change between
    two frames."""
    import cv2

    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return np.zeros(144, np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (12, 12), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    out: NDArray[np.float32] = small / max(float(np.linalg.norm(small)), 1e-6)
    return out


def _thumb(chip: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A small normalised grey copy of an aligned chip, to notice a face changing."""
    import cv2

    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    out: NDArray[np.float32] = small / max(float(np.linalg.norm(small)), 1e-6)
    return out


class Follower:
    """Follows the faces of one video and says who each track is.

    Args:
        pipeline: aligns, measures and embeds the faces.
        search: the gallery to identify tracks in (None: no identity and no templates are
            ever computed: tracks by position only).
        config: how.
        best_shots: keep each track's best shot (aligns and measures every detected face
            even without a gallery); False with no gallery: boxes and tracks only.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        search: GallerySearch | None,
        config: FollowConfig | None = None,
        best_shots: bool = True,
    ) -> None:
        self.pipe = pipeline
        self.search = search
        self.best_shots = best_shots or search is not None
        self.config = config or FollowConfig()
        cfg = self.config
        gate = (
            resolve_threshold(
                pipeline.model,
                cfg.appearance,
                APPEARANCE_GATE,
                calibrations=pipeline.calibrations,
            )
            if search is not None
            else None
        )
        self.tracker = Tracker(cfg.tracker, gate)
        self.identities = TrackIdentities(
            search.rule if search is not None else IdentifyRule(1.0), cfg.identity
        )
        self.shots = ShotDetector(cfg.shots)
        self.names: dict[str, str] = {}  # identity id -> name, as the gallery answered
        self._life: dict[int, _Life] = {}
        self._thumbs: dict[int, NDArray[np.float32]] = {}
        self._boxes: dict[int, NDArray[np.float32]] = {}  # box thumbs of the last frame

    # -- ends -------------------------------------------------------------------------------

    def _end(self, track_id: int, reason: str) -> Ended:
        life = self._life.pop(track_id, None) or _Life(-1, 0.0, 0.0)
        self._thumbs.pop(track_id, None)
        self._boxes.pop(track_id, None)
        return Ended(
            track_id,
            reason,
            self.identities.end(track_id),
            life.announced,
            life.first_frame,
            life.first_time,
            life.last_time,
        )

    def close(self, reason: str = "closed") -> tuple[Ended, ...]:
        """End every track (end of the stream; ``interrupt`` for an outage)."""
        return tuple(self._end(t, reason) for t in self.tracker.close())

    def interrupt(self) -> tuple[Ended, ...]:
        """The source dropped: every track ends, and the next frame is no cut."""
        self.shots.reset()
        return self.close()

    # -- one frame --------------------------------------------------------------------------

    def step(self, frame: Frame, detect: Detect, due: bool = True) -> Step:
        """Follow the faces into ``frame``. ``detect`` finds its faces (full-size boxes); it
        runs when ``due``, after a cut, and when a face between detections no longer looks
        like it did a frame ago (someone else may stand there); otherwise tracks are carried
        by their motion."""
        changes: list[Change] = []
        cut = self.shots.cut(frame.image)
        if cut:
            changes += self.close("cut")
        if not due and not cut:
            faces = self.tracker.predict(frame.index)
            if not self._changed(frame.image, faces):
                return self._labelled(frame, faces, False, cut, changes, 0)
        detected = detect(frame.image)
        embedded = 0
        if self.best_shots:
            faces, embedded = self._detected(frame, detected, changes)
        else:
            faces = self._positions(frame, detected, changes)
        assert faces.track_id is not None
        for i, tid in enumerate(faces.track_id.tolist()):
            self._boxes[tid] = _box_thumb(frame.image, faces.xyxy[i])
        return self._labelled(frame, faces, True, cut, changes, embedded)

    def _changed(self, image: NDArray[np.uint8], faces: Faces) -> bool:
        """Does any carried face's box look unlike the same track's box a frame ago?"""
        assert faces.track_id is not None
        changed = False
        for i, tid in enumerate(faces.track_id.tolist()):
            now = _box_thumb(image, faces.xyxy[i])
            last = self._boxes.get(tid)
            changed |= last is not None and float(last @ now) < self.config.moved
            self._boxes[tid] = now
        return changed

    def _positions(self, frame: Frame, detected: Faces, changes: list[Change]) -> Faces:
        """Track by position only (no gallery, no best shots)."""
        update = self.tracker.update(detected, frame.index)
        changes += [self._end(t, "unseen") for t in update.ended]
        for tid in update.started:
            self._life[tid] = _Life(frame.index, frame.media_time, frame.media_time)
        assert update.faces.track_id is not None
        for i, tid in enumerate(update.faces.track_id.tolist()):
            self._seen(tid, frame, detected.xyxy[i], changes)
        return update.faces

    def _sighted(self, tid: int, frame: Frame, box: NDArray[np.float32]) -> Announced | None:
        """Count a detection of ``tid``; its announcement once it has ``min_hits``."""
        life = self._life[tid]
        life.hits += 1
        life.last_time = frame.media_time
        if life.announced or life.hits < self.config.min_hits:
            return None
        life.announced = True
        x1, y1, x2, y2 = (round(float(v), 1) for v in box)
        return Announced(tid, (x1, y1, x2, y2))

    def _labelled(
        self,
        frame: Frame,
        faces: Faces,
        detected: bool,
        cut: bool,
        changes: list[Change],
        embedded: int,
    ) -> Step:
        ids = faces.track_id.tolist() if faces.track_id is not None else []
        # a track the detector missed at its last round shows where it may be, unnamed:
        # no recent face of its own supports a name there
        named = [self.identities.identity(t) if not self.tracker.missed(t) else None for t in ids]
        return Step(
            frame=frame,
            faces=faces,
            detected=detected,
            cut=cut,
            identities=tuple(named),
            confirmed=tuple(
                n is not None and self.identities.confirmed(t, frame.media_time)
                for t, n in zip(ids, named, strict=True)
            ),
            changes=tuple(changes),
            embedded=embedded,
        )

    def _detected(self, frame: Frame, detected: Faces, changes: list[Change]) -> tuple[Faces, int]:
        """A detection frame: measure, embed where needed, match, identify, split."""
        image, t = frame.image, frame.media_time
        m = self._measure(image, detected)
        want = self._wanted(frame, m.faces, m.quality, m.thumbs)
        if not self.config.embed_poor:
            want = [i for i in want if m.usable[i]]
        templates = self._embed(image, m, want)
        update = self.tracker.update(m.faces, frame.index, templates)
        for tid in update.ended:
            changes.append(self._end(tid, "displaced" if tid in update.displaced else "unseen"))
        for tid in update.started:
            self._life[tid] = _Life(frame.index, t, t)
        assert update.faces.track_id is not None
        track_ids = update.faces.track_id.tolist()
        samples = []
        for i, tid in enumerate(track_ids):
            self._seen(tid, frame, m.faces.xyxy[i], changes)
            self._thumbs[tid] = m.thumbs[i]
            self.identities.offer_shot(tid, m.quality[i], frame.index, partial(np.copy, m.chips[i]))
            vector = templates[i]
            if self._life[tid].announced and vector is not None:
                samples.append(Sample(tid, vector, m.quality[i], t, frame.index, m.usable[i]))
        verdicts = self._identify(samples, image)
        changes += verdicts
        for v in verdicts:
            if v.kind == "withdrawn" and v.reason == "contradicted":
                i = track_ids.index(v.track_id)
                track_ids[i] = self._split(v.track_id, templates[i], frame, m.thumbs[i], changes)
                self._seen(track_ids[i], frame, m.faces.xyxy[i], changes)
        return update.faces.replace(track_id=np.array(track_ids, np.int64)), len(want)

    def _measure(self, image: NDArray[np.uint8], detected: Faces) -> _Measured:
        """Landmarks, chips and quality of detected faces."""
        aligned = self.pipe.align(image, detected)
        chips = self.pipe.aligner.chips(image, aligned)
        q = measure(aligned, chips)
        n = range(len(aligned))
        return _Measured(
            faces=aligned,
            chips=chips,
            quality=[
                face_quality(
                    float(q.detection_score[i]),
                    float(q.inter_eye_px[i]),
                    float(q.yaw_deg[i]),
                    float(q.sharpness[i]),
                )
                for i in n
            ],
            thumbs=[_thumb(c) for c in chips],
            # only a face good enough to enrol is good enough to judge
            usable=[not self.pipe.config.gate.reasons(q, i) for i in n],
        )

    def _embed(
        self, image: NDArray[np.uint8], m: _Measured, rows: list[int]
    ) -> list[NDArray[np.float32] | None]:
        """Templates of the faces in ``rows``, None for the others."""
        templates: list[NDArray[np.float32] | None] = [None] * len(m.faces)
        if rows:
            views = self.pipe.views(image, m.faces[rows], m.chips[rows])
            for k, vector in zip(rows, self.pipe.embed_views(views).vectors, strict=True):
                templates[k] = vector
        return templates

    def _seen(
        self, tid: int, frame: Frame, box: NDArray[np.float32], changes: list[Change]
    ) -> None:
        announced = self._sighted(tid, frame, box)
        if announced is not None:
            changes.append(announced)

    def _wanted(
        self,
        frame: Frame,
        faces: Faces,
        quality: list[float],
        thumbs: list[NDArray[np.float32]],
    ) -> list[int]:
        """Rows to embed: where position cannot decide, the face changed, or its track
        wants evidence."""
        if self.search is None:
            return []
        want = []
        for i, tid in enumerate(self.tracker.candidates(faces, frame.index).tolist()):
            if tid < 0:
                want.append(i)
                continue
            last = self._thumbs.get(tid)
            changed = last is None or float(last @ thumbs[i]) < self.config.change
            life = self._life.get(tid)
            eligible = life is not None and life.hits + 1 >= self.config.min_hits
            if changed or (eligible and self.identities.wants(tid, quality[i], frame.media_time)):
                want.append(i)
        return want

    def _identify(self, samples: list[Sample], image: NDArray[np.uint8]) -> list[TrackVerdict]:
        search = self.search
        if search is None or not samples:
            return []

        def find(probes: NDArray[np.float32]) -> list[list[Candidate]]:
            found = search(probes, image)
            for cands in found:
                self.names.update((c.identity_id, c.name) for c in cands)
            return found

        return self.identities.add(samples, find)

    def _split(
        self,
        track_id: int,
        template: NDArray[np.float32] | None,
        frame: Frame,
        thumb: NDArray[np.float32],
        changes: list[Change],
    ) -> int:
        changes.append(self._end(track_id, "split"))
        new = self.tracker.split(track_id, template)
        self._life[new] = _Life(frame.index, frame.media_time, frame.media_time)
        self._thumbs[new] = thumb
        return new
