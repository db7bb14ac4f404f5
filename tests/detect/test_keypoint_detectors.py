"""detect: YuNet and CenterFace, the detectors that also find five keypoints.

YuNet is checked against OpenCV's own implementation (``cv2.FaceDetectorYN``, which loads the
shipped int8 file itself); both against dlib's hand-labelled faces."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facelens import DetectConfig, load_image
from facelens.detect import make_detector
from facelens.detect.tiles import Pyramid, suppress, windows
from facelens.eval.boxes import DetectionCounts, match_boxes, read_imglab
from facelens.faces import Faces, box_iou
from facelens.models import ModelStore

PHOTOS = (
    "faces/face_recognition/obama.jpg",
    "faces/face_recognition/two_people.jpg",
    "faces/bbt/bbt1.jpg",
    "faces/bbt/bbt4.jpg",
    "detection/2008_002079.jpg",
    "detection/2008_007676.jpg",
)


@pytest.mark.parametrize("photo", PHOTOS)
def test_yunet_gives_opencvs_boxes_keypoints_and_scores(data: Path, photo: str) -> None:
    import cv2

    img = load_image(data / photo)
    ours = make_detector(DetectConfig(backend="yunet", threshold=0.6)).detect(img)
    ref_det = cv2.FaceDetectorYN.create(
        str(ModelStore().path("yunet_2023mar")), "", (img.shape[1], img.shape[0]), 0.6, 0.3, 5000
    )
    _, ref = ref_det.detect(np.ascontiguousarray(img[:, :, ::-1]))
    ref = np.zeros((0, 15), np.float32) if ref is None else ref
    assert len(ours) == len(ref) > 0
    ref_boxes = np.c_[ref[:, :2], ref[:, :2] + ref[:, 2:4]]
    iou = box_iou(ours.xyxy, ref_boxes)
    match = iou.argmax(axis=1)
    assert sorted(match.tolist()) == list(range(len(ref)))  # one to one
    assert iou.max(axis=1).min() >= 0.99
    assert ours.keypoints is not None
    kp_ref = ref[match, 4:14].reshape(-1, 5, 2)
    assert np.abs(ours.keypoints - kp_ref).max() < 1.0
    assert np.abs(ours.score - ref[match, 14]).max() < 1e-3


@pytest.mark.parametrize(("backend", "recall"), [("yunet", 0.95), ("centerface", 0.97)])
def test_recall_and_precision_on_the_labelled_faces(
    data: Path, backend: str, recall: float
) -> None:
    det = make_detector(DetectConfig(backend=backend))
    total = DetectionCounts()
    for name in ("testing.xml", "training.xml"):
        for li in read_imglab(data / "detection" / name):
            faces = det.detect(load_image(li.path))
            assert faces.keypoints is not None and faces.keypoints.shape == (len(faces), 5, 2)
            total = total + match_boxes(faces.xyxy, li.boxes, 0.5, li.ignore)
    # measured: yunet 42/43 with 1 false alarm, centerface 43/43 with none
    # (docs/benchmarks.md, "Detection")
    assert total.recall >= recall and total.precision >= 0.95, total


@pytest.mark.parametrize("backend", ["yunet", "centerface"])
def test_keypoints_are_in_the_documented_order(fr_photos: Path, backend: str) -> None:
    faces = make_detector(DetectConfig(backend=backend)).detect(load_image(fr_photos / "obama.jpg"))
    assert len(faces) == 1 and faces.keypoints is not None
    eye_l, eye_r, nose, mouth_l, mouth_r = faces.keypoints[0]
    x1, y1, x2, y2 = faces.xyxy[0]
    assert np.all((faces.keypoints[0] >= [x1, y1]) & (faces.keypoints[0] <= [x2, y2]))
    assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_the_group_photo_the_old_default_missed(data: Path) -> None:
    # five faces of about 40 px: the MMOD detector at upsample 0 finds none
    img = load_image(data / "detection" / "2008_002079.jpg")
    assert len(make_detector(DetectConfig(backend="onnx_mmod")).detect(img)) == 0
    assert len(make_detector(DetectConfig()).detect(img)) >= 5


def _small_face_frame(data: Path, face_px: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1920x1080 frame (a real photo, blurred) with one LFW face about ``face_px`` wide."""
    import cv2

    bg = cv2.resize(load_image(data / "detection" / "2008_002470.jpg"), (1920, 1080))
    frame = cv2.GaussianBlur(bg, (0, 0), 3)
    face = load_image(data / "lfw" / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    s = face_px / 114  # LFW's faces are about 114 px wide in the 250 px images
    small = cv2.resize(face[55:195, 55:195], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    x0, y0 = 1400, 700
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return frame, np.array([[x0 + 13 * s, y0 + 13 * s, x0 + 127 * s, y0 + 127 * s]])


def test_a_12px_face_in_a_1080p_frame_is_found_with_the_pyramid(data: Path) -> None:
    frame, truth = _small_face_frame(data, 12)
    found = make_detector(DetectConfig(upsample=2)).detect(frame)
    assert len(found) and box_iou(found.xyxy, truth).max() >= 0.3


def test_a_40_megapixel_photo_is_tiled_in_bounded_memory(data: Path) -> None:
    # In a fresh process: its peak resident memory is the whole cost. One network pass over
    # 40 MP would take gigabytes (ONNX Runtime's buffers for a 7300 x 5480 input).
    script = textwrap.dedent(
        f"""
        import resource, sys, cv2, json
        from facelens import DetectConfig, load_image
        from facelens.detect import make_detector
        import numpy as np
        photo = load_image({str(data / "faces" / "face_recognition" / "two_people.jpg")!r})
        big = np.tile(photo, (8, 7, 1))  # 7882 x 5288: 41.7 MP, 56 copies of 2 faces
        det = make_detector(DetectConfig())
        det.load()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        faces = det.detect(big)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"faces": len(faces), "base_kb": base, "peak_kb": peak}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["faces"] == 112  # every face once, across pyramid levels and tile borders
    grown_mb = (r["peak_kb"] - r["base_kb"]) / 1024
    assert grown_mb < 600, f"detection grew the process by {grown_mb:.0f} MB"


def test_windows_cover_the_image_with_the_overlap() -> None:
    w = windows(2500, 1300, tile=1024, overlap=160)
    cover = np.zeros((1300, 2500), bool)
    for x1, y1, x2, y2 in w:
        assert x2 - x1 <= 1024 and y2 - y1 <= 1024
        cover[y1:y2, x1:x2] = True
    assert cover.all()
    xs = sorted({x1 for x1, _, _, _ in w})
    assert all(b - a <= 1024 - 160 for a, b in itertools.pairwise(xs))
    with pytest.raises(ValueError):
        Pyramid(tile=100, overlap=60)


def test_suppress_keeps_the_best_and_drops_cut_faces() -> None:
    faces = Faces(
        xyxy=[[0, 0, 100, 100], [5, 5, 105, 105], [0, 0, 100, 25], [300, 0, 400, 100]],
        score=[0.9, 0.8, 0.6, 0.7],
    )
    # the near-duplicate goes by IoU; the strip a tile border cut off the face overlaps it by
    # IoU 0.25 only, but lies wholly inside it, so it goes too; the far face stays
    kept = suppress(faces, iou=0.3, cover=0.7)
    assert kept.xyxy.tolist() == [[0, 0, 100, 100], [300, 0, 400, 100]]
    assert len(suppress(faces, iou=0.3, cover=1.0)) == 3  # plain NMS keeps the strip
