"""Single-person requests pick the face the photo is about, and look twice before giving up."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens import Faces, load_image
from facelens.pipeline import choose_primary


def test_primary_prefers_a_central_face_over_a_slightly_larger_edge_one() -> None:
    f = Faces(xyxy=[[0, 0, 110, 110], [200, 150, 300, 250]], score=[1, 1])
    assert choose_primary(f, 500, 400) == 1
    f = Faces(xyxy=[[0, 0, 300, 300], [200, 150, 240, 190]], score=[1, 1])
    assert choose_primary(f, 500, 400) == 0  # a much larger face still wins


def test_small_single_face_is_found_on_the_retry(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    img = load_image(fr_photos / "obama.jpg")
    # the face about 12 px wide: too small for YuNet at upsample 0, found at 1
    small = cv2.resize(img, None, fx=0.05, fy=0.05, interpolation=cv2.INTER_AREA)
    assert len(pipeline.detect(small)) == 0
    assert len(pipeline.detect_single(small)) == 1
    e = pipeline.primary_embedding(small)
    assert e is not None and len(e) == 1
    assert pipeline.primary_embedding(np.zeros((100, 100, 3), np.uint8)) is None
