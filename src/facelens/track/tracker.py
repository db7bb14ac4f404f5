"""A multi-face tracker: box overlap with constant-velocity prediction, gated by appearance.

A detection continues a track when it overlaps the track's predicted box *and*, where both
have a template, its template agrees with the track's recent ones (in the manner of
ByteTrack / BoT-SORT with an appearance gate). A track whose place is taken by a face that
disagrees ends at once: a position is never evidence of who is there. It never writes into
the ``Faces`` it is given.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facelens.faces import Faces, box_iou

__all__ = ["TrackUpdate", "Tracker", "TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """How tracks are kept.

    Attributes:
        iou_match: least overlap between a predicted track box and a detection to continue it.
        max_missed: detection rounds a track survives without a match (covers short
            occlusions and detector misses); then it ends.
        velocity_smoothing: weight of the newest motion in the velocity estimate.
        memory: recent templates of a track a detection's template is compared with.
    """

    iou_match: float = 0.3
    max_missed: int = 8
    velocity_smoothing: float = 0.5
    memory: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.iou_match <= 1 or self.max_missed < 0 or self.memory < 1:
            raise ValueError(
                "iou_match must be in (0, 1], max_missed >= 0 and memory >= 1, got "
                f"{self.iou_match}, {self.max_missed}, {self.memory}"
            )


@dataclass
class _Track:
    id: int
    box: NDArray[np.float64]
    velocity: NDArray[np.float64]  # per frame, for x1 y1 x2 y2
    last_frame: int
    first_frame: int
    score: float
    templates: deque[NDArray[np.float32]]
    missed: int = 0
    hits: int = 1


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed.

    Attributes:
        faces: the frame's faces with ``track_id`` set.
        started: ids of tracks that began on this frame.
        ended: ids of tracks that ended (not seen for ``max_missed`` rounds, or displaced).
        displaced: the ended tracks whose place a face of another appearance took.
    """

    faces: Faces
    started: tuple[int, ...] = ()
    ended: tuple[int, ...] = ()
    displaced: tuple[int, ...] = field(default=())


class Tracker:
    """Assigns stable track ids to faces across frames.

    Args:
        config: how tracks are kept.
        gate: least cosine similarity between a detection's template and the closest of a
            track's recent templates for the detection to continue the track (the caller
            resolves it from the model's calibration, ``facelens.stream``); None: position
            alone (templates are never given).

    Example:
        >>> t = Tracker()
        >>> a = t.update(Faces(xyxy=[[10, 10, 50, 50]], score=[1.0]), frame=0)
        >>> b = t.update(Faces(xyxy=[[12, 10, 52, 50]], score=[1.0]), frame=1)
        >>> a.faces.track_id.tolist() == b.faces.track_id.tolist() == [1]
        True
    """

    def __init__(self, config: TrackerConfig | None = None, gate: float | None = None) -> None:
        self.config = config or TrackerConfig()
        self.gate = gate
        self._tracks: dict[int, _Track] = {}
        self._next = 1

    @property
    def active(self) -> list[int]:
        return sorted(self._tracks)

    def missed(self, track_id: int) -> int:
        """Detection rounds since the track was last matched (0: seen at the last one)."""
        t = self._tracks.get(track_id)
        return 0 if t is None else t.missed

    def predict(self, frame: int) -> Faces:
        """Where each live track is expected at ``frame`` (for frames not detected on)."""
        if not self._tracks:
            return Faces.empty().replace(track_id=np.zeros(0, np.int64))
        ids = sorted(self._tracks)
        boxes = [self._at(self._tracks[i], frame) for i in ids]
        return Faces(
            xyxy=np.array(boxes, np.float32),
            score=np.array([self._tracks[i].score for i in ids], np.float32),
            track_id=np.array(ids, np.int64),
        )

    @staticmethod
    def _at(t: _Track, frame: int) -> NDArray[np.float64]:
        box = t.box + t.velocity * (frame - t.last_frame)
        if box[2] < box[0] or box[3] < box[1]:
            return t.box
        return box

    def _overlaps(self, faces: Faces, frame: int) -> tuple[list[int], NDArray[np.float64]]:
        ids = sorted(self._tracks)
        if not ids or not len(faces):
            return ids, np.zeros((len(ids), len(faces)))
        pred = np.array([self._at(self._tracks[i], frame) for i in ids])
        return ids, box_iou(pred, faces.xyxy)

    def candidates(self, faces: Faces, frame: int) -> NDArray[np.int64]:
        """Per detection, the one track its position says it continues, or -1 where position
        alone cannot say: a face that starts a track, overlaps several tracks or another
        face, continues a track with no template yet, or one that was missed (it may be
        someone else now). Those need a template before ``update``."""
        out = np.full(len(faces), -1, np.int64)
        ids, iou = self._overlaps(faces, frame)
        if not len(faces) or not ids:
            return out
        faces_iou = box_iou(faces.xyxy, faces.xyxy)
        np.fill_diagonal(faces_iou, 0.0)
        pred = np.array([self._at(self._tracks[i], frame) for i in ids])
        tracks_iou = box_iou(pred, pred)
        np.fill_diagonal(tracks_iou, 0.0)
        for fi in range(len(faces)):
            near = np.flatnonzero(iou[:, fi] >= self.config.iou_match)
            if len(near) != 1 or faces_iou[fi].max(initial=0.0) > 0:
                continue
            ti = int(near[0])
            t = self._tracks[ids[ti]]
            crowded = tracks_iou[ti].max(initial=0.0) > 0
            if not (crowded or t.missed > 0 or (self.gate is not None and not t.templates)):
                out[fi] = t.id
        return out

    def _disagrees(self, t: _Track, template: NDArray[np.float32] | None) -> bool:
        if self.gate is None or template is None or not t.templates:
            return False
        return float(np.max(np.stack(t.templates) @ template)) < self.gate

    def update(
        self,
        faces: Faces,
        frame: int,
        templates: list[NDArray[np.float32] | None] | None = None,
    ) -> TrackUpdate:
        """Match this frame's detections to tracks; returns the faces with track ids.

        ``templates`` (one unit vector or None per face) gate the matching: a face whose
        template disagrees with a track's recent templates never continues that track, and
        a track whose place such a face took ends now (``displaced``).
        """
        given: list[NDArray[np.float32] | None] = (
            list(templates) if templates is not None else [None] * len(faces)
        )
        if len(given) != len(faces):
            raise ValueError(f"got {len(given)} templates for {len(faces)} faces")
        ids = sorted(self._tracks)
        assigned, refused = self._match(faces, frame, given)
        started = []
        for fi in range(len(faces)):
            if assigned[fi] < 0:
                assigned[fi] = self._start(faces, fi, frame)
                started.append(int(assigned[fi]))
            else:
                self._continue(self._tracks[int(assigned[fi])], faces, fi, frame)
            template = given[fi]
            if template is not None:
                self._tracks[int(assigned[fi])].templates.append(np.asarray(template, np.float32))
        ended, displaced = [], []
        seen = set(assigned.tolist())
        for i in ids:
            if i in seen:
                continue
            if i in refused:
                displaced.append(i)
            else:
                self._tracks[i].missed += 1
                if self._tracks[i].missed <= self.config.max_missed:
                    continue
            ended.append(i)
            del self._tracks[i]
        return TrackUpdate(
            faces=faces.replace(track_id=assigned),
            started=tuple(started),
            ended=tuple(ended),
            displaced=tuple(displaced),
        )

    def _match(
        self, faces: Faces, frame: int, given: list[NDArray[np.float32] | None]
    ) -> tuple[NDArray[np.int64], set[int]]:
        """Greedy matching, best overlaps first; a pair whose appearance disagrees is never
        made. Returns each face's track (-1: none) and the tracks a disagreeing face took
        the place of."""
        ids, iou = self._overlaps(faces, frame)
        assigned = np.full(len(faces), -1, np.int64)
        refused: set[int] = set()
        if not ids or not len(faces):
            return assigned, refused
        used: set[int] = set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            ti, fi = (int(v) for v in divmod(int(flat), len(faces)))
            if iou[ti, fi] < self.config.iou_match:
                break
            if ti in used or assigned[fi] >= 0:
                continue
            if self._disagrees(self._tracks[ids[ti]], given[fi]):
                refused.add(ids[ti])
                continue
            used.add(ti)
            assigned[fi] = ids[ti]
        return assigned, refused - set(assigned.tolist())

    def _start(self, faces: Faces, fi: int, frame: int) -> int:
        t = _Track(
            id=self._next,
            box=faces.xyxy[fi].astype(np.float64),
            velocity=np.zeros(4),
            last_frame=frame,
            first_frame=frame,
            score=float(faces.score[fi]),
            templates=deque(maxlen=self.config.memory),
        )
        self._tracks[t.id] = t
        self._next += 1
        return t.id

    def _continue(self, t: _Track, faces: Faces, fi: int, frame: int) -> None:
        box = faces.xyxy[fi].astype(np.float64)
        v = (box - t.box) / max(1, frame - t.last_frame)
        a = self.config.velocity_smoothing
        t.velocity = a * v + (1 - a) * t.velocity if t.hits > 1 else v
        t.box, t.last_frame, t.score = box, frame, float(faces.score[fi])
        t.missed = 0
        t.hits += 1

    def split(self, track_id: int, template: NDArray[np.float32] | None = None) -> int:
        """End ``track_id`` and continue its latest face as a new track (its evidence
        disagreed with what the track was); returns the new id. ``template``: the face's,
        the new track's first."""
        old = self._tracks.pop(track_id)
        t = _Track(
            id=self._next,
            box=old.box,
            velocity=old.velocity,
            last_frame=old.last_frame,
            first_frame=old.last_frame,
            score=old.score,
            templates=deque(maxlen=self.config.memory),
        )
        if template is not None:
            t.templates.append(np.asarray(template, np.float32))
        self._tracks[t.id] = t
        self._next += 1
        return t.id

    def close(self) -> tuple[int, ...]:
        """End every live track (end of stream, a cut, a source outage)."""
        ended = tuple(sorted(self._tracks))
        self._tracks.clear()
        return ended
