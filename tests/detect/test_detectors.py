"""detect: the dlib backends find the labelled faces and return well-formed ``Faces``; every
backend refuses bad input and answers "no face" with an empty result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import DetectConfig, ModelError, load_image
from facelens.detect import make_detector
from facelens.eval.boxes import DetectionCounts, match_boxes, read_imglab


def test_unknown_backend_is_a_model_error_listing_the_known_ones() -> None:
    with pytest.raises(ModelError, match="unknown detector 'yolo'.*dlib_cnn, dlib_hog"):
        make_detector(DetectConfig(backend="yolo"))


def test_upsample_is_validated() -> None:
    with pytest.raises(ValueError, match="upsample must be 0..4"):
        DetectConfig(upsample=9)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 4), np.uint8),
    ],
)
def test_non_rgb_uint8_input_is_refused_clearly(bad: np.ndarray) -> None:
    for backend in ("yunet", "centerface", "onnx_mmod"):
        with pytest.raises(ValueError, match=r"RGB uint8 with shape \(H, W, 3\)"):
            make_detector(DetectConfig(backend=backend)).detect(bad)


def test_hog_recall_and_precision_on_labelled_faces(data: Path) -> None:
    det = make_detector(DetectConfig(backend="dlib_hog", upsample=1))
    total = DetectionCounts()
    for name in ("testing.xml", "training.xml"):
        for li in read_imglab(data / "detection" / name):
            faces = det.detect(load_image(li.path))
            assert faces.xyxy.dtype == np.float32 and faces.score.shape == (len(faces),)
            total = total + match_boxes(faces.xyxy, li.boxes, 0.5, li.ignore)
    # Measured 43/43 with no false positive (docs/benchmarks.md); allow one face of slack.
    assert total.recall >= 0.97 and total.precision >= 0.97, total


@pytest.mark.parametrize("backend", ["yunet", "centerface", "onnx_mmod", "dlib_hog"])
def test_no_face_is_an_empty_result_not_an_error(data: Path, backend: str) -> None:
    # dogs.jpg: four dogs, no person (YuNet scores two dog faces 0.65 and 0.77: its default
    # threshold, 0.8, was chosen on this and the labelled faces, docs/benchmarks.md)
    det = make_detector(DetectConfig(backend=backend))
    faces = det.detect(load_image(data / "detection" / "dogs.jpg"))
    assert len(faces) == 0 and faces.xyxy.shape == (0, 4)


def test_cnn_finds_the_faces_hog_finds(fr_photos: Path) -> None:
    img = load_image(fr_photos / "two_people.jpg")[::2, ::2].copy()  # 563x331: keeps CNN quick
    hog = make_detector(DetectConfig(backend="dlib_hog", upsample=1)).detect(img)
    cnn = make_detector(DetectConfig(backend="dlib_cnn", upsample=1)).detect(img)
    assert len(hog) == len(cnn) == 2
    counts = match_boxes(cnn.xyxy, hog.xyxy, iou=0.3)
    assert counts.tp == 2
    assert np.all(cnn.score > 0)


def test_upsampling_finds_smaller_faces(data: Path) -> None:
    li = read_imglab(data / "detection" / "testing.xml")[0]
    img = load_image(li.path)
    n0 = len(make_detector(DetectConfig(backend="onnx_mmod", upsample=0)).detect(img))
    n1 = len(make_detector(DetectConfig(backend="onnx_mmod", upsample=1)).detect(img))
    assert n1 > n0
