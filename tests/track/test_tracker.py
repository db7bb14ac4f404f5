"""The tracker keeps one id per face while it stays in view, never lets a face of another
appearance continue a track, and never mutates its input."""

from __future__ import annotations

import numpy as np

from facelens import Faces
from facelens.track import Tracker, TrackerConfig

GATE = 0.9  # a test's own gate (facelens.stream resolves the real one from a calibration)
ANN, BOB = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]


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
    assert t.predict(1).track_id.tolist() == [1] and t.missed(1) == 1  # type: ignore[union-attr]
    back = t.update(Faces(xyxy=[face_at(11)], score=[1]), frame=2)
    assert back.faces.track_id.tolist() == [1] and t.missed(1) == 0  # type: ignore[union-attr]
    ended = []
    for f in range(3, 7):
        ended += t.update(Faces.empty(), frame=f).ended
    assert ended == [1] and t.active == []


def test_a_face_of_another_appearance_in_the_same_place_starts_a_new_track() -> None:
    t = Tracker(gate=GATE)
    box = Faces(xyxy=[face_at(10)], score=[1])
    t.update(box, frame=0, templates=[ANN])
    same = t.update(box, frame=1, templates=[ANN * 0.99 + BOB * 0.01])
    assert same.faces.track_id.tolist() == [1] and not same.ended  # type: ignore[union-attr]
    # someone else stands exactly where Ann stood: position says 1, appearance says no
    other = t.update(box, frame=2, templates=[BOB])
    assert other.faces.track_id.tolist() == [2]  # type: ignore[union-attr]
    assert other.started == (2,) and other.ended == (1,) and other.displaced == (1,)
    # without a template for the face, position alone decides (the caller embeds first
    # where ``candidates`` says position cannot)
    assert t.update(box, frame=3).faces.track_id.tolist() == [2]  # type: ignore[union-attr]


def test_faces_that_swap_places_are_never_given_each_others_tracks() -> None:
    t = Tracker(gate=GATE)
    t.update(Faces(xyxy=[face_at(0), face_at(100)], score=[1, 1]), 0, templates=[ANN, BOB])
    # next frame they have passed each other: Ann's face is where Bob's track expects him
    swapped = Faces(xyxy=[face_at(95), face_at(5)], score=[1, 1])
    out = t.update(swapped, 1, templates=[ANN, BOB])
    assert out.faces.track_id.tolist() == [3, 4]  # type: ignore[union-attr]
    assert sorted(out.displaced) == [1, 2]  # neither track was given the other's face


def test_candidates_say_where_position_alone_cannot_decide() -> None:
    t = Tracker(gate=GATE)
    t.update(Faces(xyxy=[face_at(0), face_at(200)], score=[1, 1]), 0, templates=[ANN, BOB])
    faces = Faces(xyxy=[face_at(2), face_at(400), face_at(180), face_at(190)], score=[1, 1, 1, 1])
    # the first continues track 1; the second is new; the last two overlap each other
    assert t.candidates(faces, 1).tolist() == [1, -1, -1, -1]
    no_templates = Tracker(gate=GATE)
    no_templates.update(Faces(xyxy=[face_at(0)], score=[1]), 0)
    assert no_templates.candidates(Faces(xyxy=[face_at(1)], score=[1]), 1).tolist() == [-1]


def test_split_gives_the_face_a_new_track() -> None:
    t = Tracker(gate=GATE)
    t.update(Faces(xyxy=[face_at(0)], score=[1]), 0, templates=[ANN])
    new = t.split(1, BOB)
    assert new == 2 and t.active == [2]
    assert t.update(
        Faces(xyxy=[face_at(1)], score=[1]), 1, templates=[BOB]
    ).faces.track_id.tolist() == [2]  # type: ignore[union-attr]
