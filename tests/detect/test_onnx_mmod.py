"""The ONNX MMOD detector finds dlib's faces: same boxes (IoU >= 0.95), scores within 1e-3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import DetectConfig, load_image
from facelens.detect import make_detector
from facelens.detect.mmod import pyramid_rects, pyramid_up
from facelens.faces import box_iou
from facelens.models import ModelStore


def _images(data: Path) -> list[Path]:
    photos = data / "faces" / "face_recognition"
    return (
        sorted((data / "detection").glob("*.jpg"))
        + [photos / n for n in ("obama.jpg", "obama2.jpg", "biden.jpg", "lin-manuel-miranda.png")]
        + sorted((photos / "knn_examples" / "test").glob("*.jpg"))[:3]
        + [data / "faces" / "bbt" / "bbt1.jpg"]
    )


@pytest.fixture(scope="module")
def dlib_cnn():  # type: ignore[no-untyped-def]
    import dlib

    return dlib.cnn_face_detection_model_v1(str(ModelStore().path("dlib_mmod_v1")))


def _compare(dlib_cnn, img: np.ndarray, upsample: int) -> int:  # type: ignore[no-untyped-def]
    ours = make_detector(DetectConfig(backend="onnx_mmod", upsample=upsample)).detect(img)
    ref = dlib_cnn(img, upsample)
    ref_xyxy = np.array(
        [[d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1] for d in ref],
        np.float32,
    ).reshape(-1, 4)
    ref_score = np.array([d.confidence for d in ref], np.float32)
    assert len(ours) == len(ref)
    if len(ref):
        iou = box_iou(ours.xyxy, ref_xyxy)
        match = iou.argmax(axis=1)
        assert sorted(match.tolist()) == list(range(len(ref)))  # one-to-one
        assert iou.max(axis=1).min() >= 0.95
        assert np.abs(ours.score - ref_score[match]).max() <= 1e-3
    return len(ref)


@pytest.mark.parametrize("group", range(4))
def test_same_faces_as_dlib_on_detection_and_faces(data: Path, dlib_cnn, group: int) -> None:  # type: ignore[no-untyped-def]
    images = _images(data)[group::4]  # four groups, so parallel workers share the dlib time
    found = sum(_compare(dlib_cnn, load_image(p), 0) for p in images)
    assert found >= 3  # the comparison is not vacuous


def test_same_faces_as_dlib_when_upsampling(data: Path, dlib_cnn) -> None:  # type: ignore[no-untyped-def]
    small = [data / "detection" / "2008_002506.jpg", data / "faces" / "bbt" / "bbt3.jpg"]
    assert sum(_compare(dlib_cnn, load_image(p), 1) for p in small) >= 5


def test_pyramid_up_geometry(data: Path) -> None:
    # dlib's pyramid_up (pyramid_down<2>) maps (0, 0, w-1, h-1) to (3, 2, 2w+1, 2h): the image
    # becomes (2h+1) x (2w+2), corner-aligned. Its pixels are checked end to end by the
    # upsampling parity test above.
    img = load_image(data / "faces" / "face_recognition" / "obama_small.jpg")
    h, w = img.shape[:2]
    up = pyramid_up(img)
    assert up.shape == (2 * h + 1, 2 * w + 2, 3)
    assert np.array_equal(up[0, 0], img[0, 0]) and np.array_equal(up[-1, -1], img[-1, -1])


def test_pyramid_layout() -> None:
    rects, nr, nc = pyramid_rects(480, 640, 10, 11)
    assert rects[0] == (11, 11, 650, 490) and nc == 640 + 22
    heights = [r[3] - r[1] + 1 for r in rects]
    assert heights[1] == 400 and all(h >= 5 for h in heights)
    for i, a in enumerate(rects):  # levels never overlap and stay inside the image
        assert a[0] >= 0 and a[2] < nc and a[1] >= 0 and a[3] < nr
        for b in rects[i + 1 :]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_tiny_and_empty_images(dlib_cnn) -> None:  # type: ignore[no-untyped-def]
    det = make_detector(DetectConfig(backend="onnx_mmod", upsample=0))
    assert len(det.detect(np.zeros((4, 4, 3), np.uint8))) == 0
    assert len(det.detect(np.full((120, 90, 3), 200, np.uint8))) == 0
