"""align: 5-point landmarks inside the face, chips as dlib's ResNet expects them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import Faces, PolicyError, load_image
from facelens.align import AlignConfig, Aligner
from facelens.models import ModelStore


def test_landmarks_lie_in_the_face_in_the_documented_order(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    img = load_image(fr_photos / "obama.jpg")
    faces = pipeline.detect(img)
    out = pipeline.align(img, faces)
    assert faces.landmarks is None  # the input is untouched
    lm = out.landmarks
    assert lm.shape == (1, 5, 2)
    x1, y1, x2, y2 = out.xyxy[0]
    assert np.all((lm[0, :, 0] >= x1) & (lm[0, :, 0] <= x2))
    assert np.all((lm[0, :, 1] >= y1) & (lm[0, :, 1] <= y2))
    # image-right eye (points 0, 1) is right of the image-left eye (2, 3); nose is below both
    assert lm[0, 0:2, 0].min() > lm[0, 2:4, 0].max()
    assert lm[0, 4, 1] > lm[0, :4, 1].max()


def test_chips_are_150px_and_match_dlibs_own_alignment(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    import dlib

    img = load_image(fr_photos / "biden.jpg")
    faces = pipeline.align(img, pipeline.detect(img))
    chips = pipeline.chips(img, faces)
    assert chips.shape == (1, 150, 150, 3) and chips.dtype == np.uint8
    sp = dlib.shape_predictor(str(ModelStore().path("dlib_landmarks5_v1")))
    # the predictor runs on the box dlib's detector would have drawn (mapped from YuNet's
    # keypoints), as dlib's own code would on its own detection
    x1, y1, x2, y2 = (round(float(v)) for v in pipeline.aligner.predictor_boxes(faces)[0])
    shape = sp(img, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
    ref = dlib.get_face_chip(img, shape, size=150, padding=0.25)
    assert np.array_equal(chips[0], ref)


def test_no_faces_gives_no_chips(pipeline) -> None:  # type: ignore[no-untyped-def]
    img = np.zeros((50, 50, 3), np.uint8)
    assert pipeline.chips(img, Faces.empty()).shape == (0, 150, 150, 3)
    assert pipeline.align(img, Faces.empty()).landmarks.shape == (0, 5, 2)


def test_the_68_point_model_is_never_a_silent_default() -> None:
    assert AlignConfig().landmark_model == "dlib_landmarks5_v1"
    with pytest.raises(PolicyError, match="iBUG 300-W"):
        Aligner(AlignConfig(landmark_model="dlib_landmarks68_v1")).load()


def test_keypoint_faces_get_the_box_dlibs_detector_would_draw(
    pipeline, fr_photos: Path, data: Path
) -> None:  # type: ignore[no-untyped-def]
    from facelens import DetectConfig
    from facelens.detect import make_detector
    from facelens.faces import box_iou

    mmod = make_detector(DetectConfig(backend="onnx_mmod", upsample=1))
    ious_own, ious_mapped = [], []
    for photo in ("obama.jpg", "biden.jpg", "two_people.jpg", "obama2.jpg"):
        img = load_image(fr_photos / photo)
        faces = pipeline.detect(img)
        ref = mmod.detect(img)
        own = box_iou(faces.xyxy, ref.xyxy).max(axis=1)
        mapped = box_iou(pipeline.aligner.predictor_boxes(faces), ref.xyxy).max(axis=1)
        ious_own += own.tolist()
        ious_mapped += mapped.tolist()
    # YuNet's own boxes are taller and lower than MMOD's; the mapped ones sit on them
    assert np.median(ious_mapped) > 0.8 > np.median(ious_own)
