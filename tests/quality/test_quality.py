"""quality: measures respond to what they claim to measure; the gate names its reasons."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.conftest import make_faces

from facelens import DetectConfig, Faces, Pipeline, PipelineConfig, QualityGate, load_image
from facelens.quality import REASONS, measure


@pytest.fixture(scope="module")
def face(pipeline, fr_photos: Path):  # type: ignore[no-untyped-def]
    img = load_image(fr_photos / "obama.jpg")
    return img, pipeline.align(img, pipeline.detect(img))


def test_a_good_photo_passes_the_gate(pipeline, face) -> None:  # type: ignore[no-untyped-def]
    img, faces = face
    q = pipeline.quality(img, faces)
    assert pipeline.config.gate.reasons(q, 0) == []
    assert 40 < q.inter_eye_px[0] < 200 and abs(q.yaw_deg[0]) < 20 and abs(q.roll_deg[0]) < 10


def test_a_small_face_is_too_small(pipeline, face) -> None:  # type: ignore[no-untyped-def]
    img, _ = face
    small = cv2.resize(img, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    finder = Pipeline(PipelineConfig(detect=DetectConfig(upsample=2)))  # finds tiny faces
    faces = pipeline.align(small, finder.detect(small))
    assert len(faces) == 1
    q = pipeline.quality(small, faces)
    assert "too_small" in QualityGate().reasons(q, 0)


def test_a_blurred_face_is_blurred_and_sharpness_falls_with_blur(pipeline, face) -> None:  # type: ignore[no-untyped-def]
    img, faces = face
    sharp = [
        pipeline.quality(cv2.GaussianBlur(img, (0, 0), s) if s else img, faces).sharpness[0]
        for s in (0, 1, 2, 4)
    ]
    assert sharp == sorted(sharp, reverse=True)
    q = pipeline.quality(cv2.GaussianBlur(img, (0, 0), 10), faces)
    assert "blurred" in QualityGate().reasons(q, 0)


def test_exposure(pipeline, face) -> None:  # type: ignore[no-untyped-def]
    img, faces = face
    dark = (img.astype(np.float32) * 0.15).astype(np.uint8)
    bright = np.clip(img.astype(np.float32) * 2.5 + 60, 0, 255).astype(np.uint8)
    assert "too_dark" in QualityGate().reasons(pipeline.quality(dark, faces), 0)
    assert "too_bright" in QualityGate().reasons(pipeline.quality(bright, faces), 0)


def test_pose_from_landmarks() -> None:
    frontal = make_faces(1, landmarks=True)
    chips = np.full((1, 150, 150, 3), 128, np.uint8)
    q = measure(frontal, chips)
    assert abs(q.yaw_deg[0]) < 1
    lm = frontal.landmarks.copy()  # type: ignore[union-attr]
    lm[0, 4, 0] += 30  # nose far to one side of the eyes' midpoint: a turned head
    turned = measure(frontal.replace(landmarks=lm), chips)
    assert turned.yaw_deg[0] > 45
    assert "profile" in QualityGate().reasons(turned, 0)
    rolled = frontal.replace(landmarks=_rotate(frontal.landmarks[0], 30)[None])  # type: ignore[index]
    assert abs(measure(rolled, chips).roll_deg[0] - 30) < 0.5
    assert abs(measure(rolled, chips).yaw_deg[0]) < 1  # roll is not mistaken for yaw


def _rotate(pts: np.ndarray, deg: float) -> np.ndarray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = pts.mean(axis=0)
    return (pts - c) @ r.T + c


def test_every_reason_is_documented() -> None:
    assert set(REASONS) == {
        "too_small",
        "blurred",
        "profile",
        "head_pitched",
        "too_dark",
        "too_bright",
    }
    doc = (Path(__file__).resolve().parents[2] / "docs" / "quality.md").read_text()
    for reason in REASONS:
        assert f"`{reason}`" in doc


def test_measure_needs_landmarks() -> None:
    with pytest.raises(ValueError, match="landmarks"):
        measure(Faces(xyxy=[[0, 0, 9, 9]], score=[1]), np.zeros((1, 150, 150, 3), np.uint8))
