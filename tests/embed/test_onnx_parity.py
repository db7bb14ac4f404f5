"""The ONNX embedder gives dlib's descriptors on 500+ real faces (same weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, load_image
from facelens.align import Aligner
from facelens.embed import make_embedder
from facelens.eval import lfw_image, read_pairs
from facelens.faces import Faces
from facelens.models import ModelStore

# Deep-funneled LFW images hold the central face about here (data README).
LFW_BOX = [68.0, 68.0, 182.0, 182.0]


@pytest.fixture(scope="module")
def chips(data: Path) -> np.ndarray:
    """500 LFW faces (fold 1 of pairs.txt) and every face crop and photo face of faces/."""
    aligner = Aligner()
    out = []
    pairs = read_pairs(data / "lfw" / "pairs.txt")
    keys = sorted({(p.name_a, p.index_a) for p in pairs} | {(p.name_b, p.index_b) for p in pairs})[
        :460
    ]
    for name, idx in keys:
        img = load_image(lfw_image(data / "lfw", name, idx))
        out.append(aligner.chips(img, Faces(xyxy=[LFW_BOX], score=[1.0]))[0])
    for crop in sorted((data / "faces" / "bbt").glob("*/*.png")):
        img = load_image(crop)  # 150x150 grayscale crops: the face fills the image
        out.append(aligner.chips(img, Faces(xyxy=[[10, 10, 140, 140]], score=[1.0]))[0])
    return np.stack(out)


def test_embeddings_match_dlib_component_by_component(chips: np.ndarray) -> None:
    import dlib

    assert len(chips) >= 500
    net = dlib.face_recognition_model_v1(str(ModelStore().path("dlib_resnet_v1")))
    ref = np.array(
        net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips]), np.float32
    )
    onnx = make_embedder(EmbedConfig(model="dlib", backend="onnx", batch_size=32, augment="none"))
    got = onnx.descriptors(chips)  # type: ignore[attr-defined]
    assert got.shape == ref.shape == (len(chips), 128)
    assert np.abs(got - ref).max() <= 1e-4
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999
    # and the public result carries the same model tag as dlib's backend
    dlib_backend = make_embedder(EmbedConfig(model="dlib", backend="dlib", augment="none"))
    assert onnx.embed(chips[:2]).model == dlib_backend.model == "dlib_resnet_v1"


def test_batch_size_does_not_change_the_result(chips: np.ndarray) -> None:
    one = EmbedConfig(model="dlib", backend="onnx", batch_size=1, augment="none")
    many = EmbedConfig(model="dlib", backend="onnx", batch_size=32, augment="none")
    a = make_embedder(one).descriptors(chips[:9])  # type: ignore[attr-defined]
    b = make_embedder(many).descriptors(chips[:9])  # type: ignore[attr-defined]
    assert np.abs(a - b).max() < 1e-5
