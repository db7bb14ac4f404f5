"""SFace through the generic ONNX recognizer: OpenCV's own alignment and features, same
person closer than different, fusion arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, Embeddings, ModelError, Pipeline, PipelineConfig, load_image
from facelens.convert.cache import converted
from facelens.detect import DetectConfig
from facelens.embed.fusion import fuse
from facelens.faces import box_iou
from facelens.gallery.enrol import prepare_samples
from facelens.match import cosine_similarity
from facelens.models import ModelStore


@pytest.fixture(scope="module")
def sface() -> Pipeline:
    p = Pipeline(PipelineConfig(embed=EmbedConfig(model="sface", augment="none")))
    p.load()
    return p


@pytest.mark.parametrize(
    "photo",
    [
        "faces/face_recognition/obama.jpg",
        "faces/face_recognition/two_people.jpg",
        "faces/bbt/bbt1.jpg",
        "detection/2008_002079.jpg",
    ],
)
def test_chips_and_features_match_opencvs_face_recognizer(
    sface: Pipeline, data: Path, photo: str, tmp_path: Path
) -> None:
    import cv2

    # OpenCV cannot load the shipped int8 file (three graph inputs); it loads the same
    # weights as facelens converts them
    conv = converted("sface_2021dec", ModelStore(), tmp_path)
    rec = cv2.FaceRecognizerSF.create(str(conv.onnx), "")
    img = load_image(data / photo)
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    det = cv2.FaceDetectorYN.create(
        str(ModelStore().path("yunet_2023mar")), "", (img.shape[1], img.shape[0]), 0.8, 0.3, 5000
    )
    _, ref = det.detect(bgr)
    faces = sface.detect(img)
    assert len(faces) == len(ref) > 0
    ref_boxes = np.c_[ref[:, :2], ref[:, :2] + ref[:, 2:4]]
    for i, j in enumerate(box_iou(faces.xyxy, ref_boxes).argmax(axis=1)):
        crop = rec.alignCrop(bgr, ref[j])
        # the chip from the detector's keypoints, as OpenCV aligns it (the pipeline's own
        # views re-detect the keypoints of a tilted head upright: align.arcface)
        chip = sface.aligner.chips_for(img, faces[i], "arcface", 112)[0]
        assert np.abs(chip.astype(int) - crop[:, :, ::-1].astype(int)).max() <= 1
        ours = sface.embedder.parts[0].embed(chip[None]).vectors[0]
        feature = rec.feature(crop).reshape(-1)
        cos = float(ours @ feature) / float(np.linalg.norm(feature))
        assert cos >= 0.9999, cos


def test_same_person_is_closer_than_different_people(sface: Pipeline, fr_photos: Path) -> None:
    o1 = sface.embed(load_image(fr_photos / "obama.jpg"))
    o2 = sface.embed(load_image(fr_photos / "obama2.jpg"))
    b = sface.embed(load_image(fr_photos / "biden.jpg"))
    assert o1.model == "sface_2021dec" and o1.dim == 128
    assert cosine_similarity(o1, o2)[0, 0] > cosine_similarity(o1, b)[0, 0] + 0.2


def test_arcface_alignment_needs_a_detector_with_keypoints() -> None:
    with pytest.raises(ModelError, match="finds none.*--detector yunet"):
        Pipeline(
            PipelineConfig(
                detect=DetectConfig(backend="onnx_mmod"), embed=EmbedConfig(model="sface")
            )
        )


def test_fusion_scores_are_the_weighted_mean_of_the_models_scores() -> None:
    rng = np.random.default_rng(0)
    a = Embeddings(rng.normal(size=(2, 128)), "m1")
    b = Embeddings(rng.normal(size=(2, 64)), "m2")
    f = fuse([a, b], (0.7, 0.3))
    assert f.dim == 192 and f.model == "fusion(m1*0.7,m2*0.3)"
    expected = 0.7 * float(a.vectors[0] @ a.vectors[1]) + 0.3 * float(b.vectors[0] @ b.vectors[1])
    assert float(f.vectors[0] @ f.vectors[1]) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ModelError, match="one weight each"):
        fuse([a], (1.0,))


def test_a_fusion_pipeline_stores_each_models_template(fr_photos: Path) -> None:
    p = Pipeline(PipelineConfig(embed=EmbedConfig(model="dlib+sface")))
    samples = prepare_samples(p, fr_photos / "obama.jpg")
    assert [s.model for s in samples] == [p.model, "dlib_resnet_v1+flip", "sface_2021dec+flip"]
    assert p.model.startswith("fusion(dlib_resnet_v1+flip*")
    assert samples[0].chip is not None and samples[1].chip is None
    assert len({s.image_sha256 for s in samples}) == 1


def test_the_shipped_fusion_uses_its_measured_weights_and_thresholds(fr_photos: Path) -> None:
    from facelens.match.thresholds import calibration, open_set_calibration

    p = Pipeline(PipelineConfig(embed=EmbedConfig(model="dlib+sface")))
    assert p.embedder.weights == (0.85, 0.15)  # type: ignore[attr-defined]
    cal = calibration(p.model)
    assert cal is not None and cal.balanced > 0.8
    assert open_set_calibration(p.model) is not None
    # verify and identify answer without a threshold given, from the fusion's calibration
    obama = p.primary_embedding(p.decode(fr_photos / "obama.jpg")[0])
    biden = p.primary_embedding(p.decode(fr_photos / "biden.jpg")[0])
    assert obama is not None and biden is not None
    assert p.verify(obama, obama).same and not p.verify(obama, biden).same
    assert p.verify(obama, biden).threshold == pytest.approx(cal.balanced)
