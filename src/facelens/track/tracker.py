"""A multi-face tracker: box overlap with constant-velocity prediction, and re-association by
embedding after short occlusions. It never writes into the ``Faces`` it is given."""

from __future__ import annotations

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
        reid_similarity: least cosine similarity between a new detection's embedding and a
            recently lost track's to give it the old track id back.
        velocity_smoothing: weight of the newest motion in the velocity estimate.
    """

    iou_match: float = 0.3
    max_missed: int = 8
    reid_similarity: float = 0.85
    velocity_smoothing: float = 0.5


@dataclass
class _Track:
    id: int
    box: NDArray[np.float64]
    velocity: NDArray[np.float64]  # per frame, for x1 y1 x2 y2
    last_frame: int
    first_frame: int
    score: float
    missed: int = 0
    hits: int = 1
    embedding: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed.

    Attributes:
        faces: the frame's faces with ``track_id`` set.
        started: ids of tracks that began on this frame.
        ended: ids of tracks that ended (not seen for ``max_missed`` rounds).
        reassociated: ids given back to a face after an occlusion.
    """

    faces: Faces
    started: tuple[int, ...] = ()
    ended: tuple[int, ...] = ()
    reassociated: tuple[int, ...] = field(default=())


class Tracker:
    """Assigns stable track ids to faces across frames.

    Example:
        >>> t = Tracker()
        >>> a = t.update(Faces(xyxy=[[10, 10, 50, 50]], score=[1.0]), frame=0)
        >>> b = t.update(Faces(xyxy=[[12, 10, 52, 50]], score=[1.0]), frame=1)
        >>> a.faces.track_id.tolist() == b.faces.track_id.tolist() == [1]
        True
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, _Track] = {}
        self._next = 1

    @property
    def active(self) -> list[int]:
        return sorted(self._tracks)

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

    def update(
        self, faces: Faces, frame: int, embeddings: NDArray[np.float32] | None = None
    ) -> TrackUpdate:
        """Match this frame's detections to tracks; returns the faces with track ids.

        ``embeddings`` (one unit vector per face, optional) allow re-association of a face
        with a track lost a few frames ago.
        """
        cfg = self.config
        ids = sorted(self._tracks)
        assigned = np.full(len(faces), -1, np.int64)
        if ids and len(faces):
            pred = np.array([self._at(self._tracks[i], frame) for i in ids])
            iou = box_iou(pred, faces.xyxy)
            # greedy, best pairs first; recently seen tracks first among equals
            order = np.argsort(-iou, axis=None, kind="stable")
            used_t: set[int] = set()
            for flat in order:
                ti, fi = (int(v) for v in divmod(int(flat), len(faces)))
                if iou[ti, fi] < cfg.iou_match:
                    break
                if ti in used_t or assigned[fi] >= 0:
                    continue
                used_t.add(ti)
                assigned[fi] = ids[ti]
        reassociated = []
        if embeddings is not None and len(faces):
            lost = [
                i
                for i in ids
                if i not in set(assigned.tolist()) and self._tracks[i].embedding is not None
            ]
            for fi in np.flatnonzero(assigned < 0).tolist():
                best, best_s = -1, cfg.reid_similarity
                for i in lost:
                    emb = self._tracks[i].embedding
                    assert emb is not None
                    s = float(np.dot(emb, embeddings[fi]))
                    if s >= best_s:
                        best, best_s = i, s
                if best >= 0:
                    assigned[fi] = best
                    lost.remove(best)
                    reassociated.append(best)
        started = []
        for fi in range(len(faces)):
            box = faces.xyxy[fi].astype(np.float64)
            if assigned[fi] < 0:
                t = _Track(
                    id=self._next,
                    box=box,
                    velocity=np.zeros(4),
                    last_frame=frame,
                    first_frame=frame,
                    score=float(faces.score[fi]),
                )
                self._tracks[t.id] = t
                assigned[fi] = t.id
                started.append(t.id)
                self._next += 1
            else:
                t = self._tracks[int(assigned[fi])]
                dt = max(1, frame - t.last_frame)
                v = (box - t.box) / dt
                a = cfg.velocity_smoothing
                t.velocity = a * v + (1 - a) * t.velocity if t.hits > 1 else v
                t.box, t.last_frame, t.score = box, frame, float(faces.score[fi])
                t.missed = 0
                t.hits += 1
            if embeddings is not None:
                t = self._tracks[int(assigned[fi])]
                t.embedding = embeddings[fi].astype(np.float32)
        ended = []
        seen = set(assigned.tolist())
        for i in ids:
            if i not in seen:
                self._tracks[i].missed += 1
                if self._tracks[i].missed > cfg.max_missed:
                    ended.append(i)
                    del self._tracks[i]
        return TrackUpdate(
            faces=faces.replace(track_id=assigned),
            started=tuple(started),
            ended=tuple(ended),
            reassociated=tuple(reassociated),
        )

    def set_embedding(self, track_id: int, embedding: NDArray[np.float32]) -> None:
        """Remember a track's appearance (used to re-associate it after an occlusion)."""
        if track_id in self._tracks:
            self._tracks[track_id].embedding = embedding.astype(np.float32)

    def close(self) -> tuple[int, ...]:
        """End every live track (end of stream)."""
        ended = tuple(sorted(self._tracks))
        self._tracks.clear()
        return ended
