"""The tracker keeps one id per face while it stays in view, and never mutates its input."""

from __future__ import annotations

import numpy as np

from facelens import Faces
from facelens.track import Tracker, TrackerConfig


def face_at(x: float, y: float = 0.0, size: float = 40.0) -> list[float]:
    return [x, y, x + size, y + size]


def test_ids_follow_moving_faces_and_input_is_untouched() -> None:
    t = Tracker()
    ids = []
    for f in range(10):
        faces = Faces(xyxy=[face_at(10 + 5 * f), face_at(200 - 5 * f, 100)], score=[1, 1])
        out = t.update(faces, frame=f)
        assert faces.track_id is None  # not written into
        ids.append(out.faces.track_id.tolist())  # type: ignore[union-attr]
        if f == 0:
            assert out.started == (1, 2)
    assert all(i == [1, 2] for i in ids)


def test_crossing_faces_keep_their_ids_thanks_to_motion() -> None:
    t = Tracker()
    last = None
    for f in range(12):  # two faces pass each other horizontally
        a, b = face_at(20 + 12 * f, 0), face_at(160 - 12 * f, 30)
        last = t.update(Faces(xyxy=[a, b], score=[1, 1]), frame=f).faces
    assert last is not None and last.track_id.tolist() == [1, 2]  # type: ignore[union-attr]


def test_short_miss_is_bridged_and_long_absence_ends_the_track() -> None:
    t = Tracker(TrackerConfig(max_missed=2))
    t.update(Faces(xyxy=[face_at(10)], score=[1]), frame=0)
    t.update(Faces.empty(), frame=1)
    assert t.predict(1).track_id.tolist() == [1]  # type: ignore[union-attr]
    back = t.update(Faces(xyxy=[face_at(11)], score=[1]), frame=2)
    assert back.faces.track_id.tolist() == [1]  # type: ignore[union-attr]
    ended = []
    for f in range(3, 7):
        ended += t.update(Faces.empty(), frame=f).ended
    assert ended == [1] and t.active == []


def test_reassociation_by_embedding_after_an_occlusion() -> None:
    t = Tracker(TrackerConfig(max_missed=5))
    e1 = np.eye(4, dtype=np.float32)[0]
    t.update(Faces(xyxy=[face_at(10)], score=[1]), frame=0, embeddings=e1[None])
    for f in range(1, 4):  # hidden
        t.update(Faces.empty(), frame=f)
    # reappears far away (walked behind something): overlap says new, appearance says same
    out = t.update(Faces(xyxy=[face_at(300)], score=[1]), frame=4, embeddings=e1[None])
    assert out.faces.track_id.tolist() == [1] and out.reassociated == (1,)  # type: ignore[union-attr]
    other = np.eye(4, dtype=np.float32)[1]
    out = t.update(
        Faces(xyxy=[face_at(300), face_at(600)], score=[1, 1]),
        frame=5,
        embeddings=np.stack([e1, other]),
    )
    assert out.faces.track_id.tolist() == [1, 2]  # type: ignore[union-attr]
