"""Screening on synthetic radiometric scenes with known truth, and every safeguard."""

from __future__ import annotations

import numpy as np
import pytest

from facelens import Faces
from facelens.thermal import (
    Blackbody,
    Environment,
    ScreeningConfig,
    ScreeningSession,
    from_celsius,
)

ROOM = Environment(ambient_c=21.0, humidity=0.45)
BB = Blackbody(box=(250, 20, 290, 60), set_c=35.0)


def scene(
    true_c: float,
    *,
    bias: float = 0.0,
    noise: float = 0.05,
    ambient: float = 21.0,
    seed: int = 0,
    people: int = 1,
    bb_c: float = 35.0,
    blackbody: bool = True,
) -> tuple[np.ndarray, Faces]:
    """A 240x320 frame: room, a face (skin ~34 C) with inner-canthus hot spots at
    ``true_c``, a blackbody at ``bb_c``; the camera reads everything ``bias`` too warm."""
    rng = np.random.default_rng(seed)
    c = np.full((240, 320), ambient, np.float64)
    faces, marks = [], []
    for p in range(people):
        x0 = 60 + 110 * p
        yy, xx = np.mgrid[0:240, 0:320]
        face = ((xx - (x0 + 40)) / 38) ** 2 + ((yy - 120) / 50) ** 2 <= 1
        c[face] = 34.0 - 0.4 * ((yy[face] - 120) / 50) ** 2  # cooler towards chin/forehead
        # eyes: corners 0/1 (image right eye), 2/3 (image left eye), 4 nose
        lm = np.array(
            [[x0 + 62, 105], [x0 + 50, 105], [x0 + 18, 105], [x0 + 30, 105], [x0 + 40, 135]],
            np.float64,
        )
        for x, y in (lm[1], lm[3]):  # the inner canthi: the warmest skin, 3x3 px
            c[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = true_c
        faces.append([x0, 70, x0 + 80, 170])
        marks.append(lm)
    if blackbody:
        c[20:60, 250:290] = bb_c
    c = c + bias + rng.normal(0, noise, c.shape)
    return c.astype(np.float32), Faces(
        xyxy=np.array(faces, np.float32),
        score=np.ones(people, np.float32),
        landmarks=np.array(marks, np.float32),
    )


@pytest.mark.parametrize("bias", [-1.5, 0.0, 0.8])
def test_estimate_within_0_2_c_across_35_to_40_without_pull_toward_37(bias: float) -> None:
    truths = np.arange(35.0, 40.01, 0.25)
    errors = []
    for i, t in enumerate(truths):
        c, faces = scene(float(t), bias=bias, seed=i)
        r = ScreeningSession(blackbody=BB).screen(from_celsius(c), ROOM, faces)
        assert r.outcome in ("clear", "refer") and r.site == "inner_canthus"
        errors.append(r.estimate_c - t)  # type: ignore[operator]
    errors = np.array(errors)
    assert np.abs(errors).max() <= 0.2, errors
    slope = np.polyfit(truths, errors, 1)[0]
    assert abs(slope) < 0.02  # the error does not depend on the true value


def test_outcomes_are_only_clear_or_refer() -> None:
    low, f = scene(36.6)
    high, _ = scene(38.4)
    s = ScreeningSession(blackbody=BB)
    assert s.screen(from_celsius(low), ROOM, f).outcome == "clear"
    r = s.screen(from_celsius(high), ROOM, f)
    assert r.outcome == "refer" and 0 < r.uncertainty_c < 0.5  # type: ignore[operator]
    assert "fever" not in str(r.to_dict()).lower()


def test_several_faces_are_refused() -> None:
    c, faces = scene(37.0, people=2)
    r = ScreeningSession(blackbody=BB).screen(from_celsius(c), ROOM, faces)
    assert r.outcome is None and r.refused == ("several_faces",)
    # the operator's screening region around one person gives a reading
    r = ScreeningSession(blackbody=BB).screen(
        from_celsius(c), ROOM, faces, region=(40, 60, 160, 180)
    )
    assert r.outcome == "clear"


def test_no_blackbody_is_refused() -> None:
    c, faces = scene(37.0, blackbody=False)
    assert (
        "no_blackbody"
        in ScreeningSession(blackbody=BB).screen(from_celsius(c), ROOM, faces).refused
    )
    c, faces = scene(37.0)
    assert (
        "no_blackbody"
        in ScreeningSession(blackbody=None).screen(from_celsius(c), ROOM, faces).refused
    )


def test_blackbody_drift_over_0_1_c_is_refused() -> None:
    s = ScreeningSession(blackbody=BB)
    c, faces = scene(37.0, seed=1)
    assert s.screen(from_celsius(c), ROOM, faces).outcome == "clear"
    c, faces = scene(37.0, bb_c=35.05, seed=2)  # within 0.1: fine
    assert s.screen(from_celsius(c), ROOM, faces).outcome == "clear"
    c, faces = scene(37.0, bb_c=35.25, seed=3)  # the reference moved
    r = s.screen(from_celsius(c), ROOM, faces)
    assert r.refused == ("blackbody_drift",) and r.drift_c > 0.1  # type: ignore[operator]
    s.rebaseline()
    assert s.screen(from_celsius(c), ROOM, faces).outcome == "clear"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (Environment(ambient_c=30.0, humidity=0.4), "ambient_out_of_range"),
        (Environment(ambient_c=21.0, humidity=0.95), "humidity_out_of_range"),
        (Environment(), "ambient_not_reported"),
    ],
)
def test_room_out_of_range_is_refused(env: Environment, reason: str) -> None:
    c, faces = scene(37.0)
    r = ScreeningSession(blackbody=BB).screen(from_celsius(c), env, faces)
    assert r.outcome is None and reason in r.refused


def test_ambient_change_is_corrected_by_the_blackbody() -> None:
    # the room warms by 2 C and the camera's offset moves with it: still within 0.2 C
    s = ScreeningSession(blackbody=BB)
    for i, (ambient, bias) in enumerate([(20.0, 0.0), (21.0, 0.04), (22.0, 0.08)]):
        c, faces = scene(37.2, ambient=ambient, bias=bias, seed=10 + i)
        r = s.screen(from_celsius(c), Environment(ambient, 0.4), faces)
        assert abs(r.estimate_c - 37.2) <= 0.2  # type: ignore[operator]


def test_no_landmarks_falls_back_to_the_hottest_region_and_says_so() -> None:
    c, faces = scene(37.0)
    r = ScreeningSession(blackbody=BB).screen(from_celsius(c), ROOM, faces.replace(landmarks=None))
    assert r.site == "face_hottest_region" and r.notes and "hottest region" in r.notes[0]
    assert abs(r.estimate_c - 37.0) <= 0.3  # type: ignore[operator]


def test_identity_is_never_attached_unless_configured() -> None:
    c, faces = scene(37.0)
    ask = lambda frame, face: "Ann"  # noqa: E731
    anon = ScreeningSession(blackbody=BB, identify=ask).screen(from_celsius(c), ROOM, faces)
    assert anon.identity is None and "identity" not in anon.to_dict()
    linked = ScreeningSession(ScreeningConfig(link_identity=True), BB, ask).screen(
        from_celsius(c), ROOM, faces
    )
    assert linked.identity == "Ann"
