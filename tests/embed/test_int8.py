"""The int8 build of dlib's ResNet: a model of its own, built from a shipped table to the
pinned bytes, whose templates stay close to its float32 parent's on real faces."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, ModelError, load_image
from facelens.align import Aligner
from facelens.convert import cache
from facelens.embed import make_embedder
from facelens.eval import lfw_image, read_pairs
from facelens.faces import Faces
from facelens.models import MODELS, ModelStore
from facelens.runtime import RuntimeConfig

INT8 = "dlib_resnet_v1_int8"
# On LFW (which the activation ranges were not measured on): the least cosine between a
# face's int8 and float32 templates, and the median (measured: 0.993 and 0.999 on 500 faces).
MIN_COSINE, MEDIAN_COSINE = 0.985, 0.998
LFW_BOX = [68.0, 68.0, 182.0, 182.0]


@pytest.fixture(scope="module")
def lfw_chips(data: Path) -> np.ndarray:
    """dlib chips of 120 LFW faces (View 2 images; none was a calibration image)."""
    pairs = read_pairs(data / "lfw" / "pairs.txt")
    keys = sorted({(p.name_b, p.index_b) for p in pairs})[::40][:120]
    aligner = Aligner()
    out = []
    for name, idx in keys:
        img = load_image(lfw_image(data / "lfw", name, idx))
        out.append(aligner.chips(img, Faces(xyxy=[LFW_BOX], score=[1.0]))[0])
    return np.stack(out)


def test_int8_templates_are_close_to_the_float32_parent(lfw_chips: np.ndarray) -> None:
    rt = RuntimeConfig(threads=1)
    parent = make_embedder(EmbedConfig(model="dlib_resnet_v1", augment="none"), runtime=rt)
    int8 = make_embedder(EmbedConfig(model=INT8, augment="none"), runtime=rt)
    a, b = parent.embed(lfw_chips), int8.embed(lfw_chips)
    assert b.model == INT8 and a.model == "dlib_resnet_v1"  # never the parent's tag
    cos = (a.vectors * b.vectors).sum(axis=1)
    assert cos.min() >= MIN_COSINE and np.median(cos) >= MEDIAN_COSINE, (cos.min(), cos.mean())
    # and it is a different model: not the float32 graph under another name
    assert np.median(cos) < 0.99999


def test_int8_build_is_the_pinned_file_and_a_tampered_cache_is_rebuilt(tmp_path: Path) -> None:
    cache.forget()
    first = cache.converted(INT8, ModelStore(), tmp_path)
    assert isinstance(first.onnx, Path)
    assert hashlib.sha256(first.onnx.read_bytes()).hexdigest() == MODELS[INT8].onnx_sha256
    with open(first.onnx, "r+b") as f:  # someone edits the cached int8 graph
        f.seek(4000)
        f.write(b"\x00\x01\x02\x03")
    cache.forget()
    again = cache.converted(INT8, ModelStore(), tmp_path)
    assert again.converted_now
    assert hashlib.sha256(Path(again.onnx).read_bytes()).hexdigest() == MODELS[INT8].onnx_sha256  # type: ignore[arg-type]
    cache.forget()


def test_an_int8_build_other_than_the_pinned_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = dataclasses.replace(MODELS[INT8], onnx_sha256="0" * 64)
    monkeypatch.setitem(MODELS, INT8, spec)
    cache.forget()
    with pytest.raises(ModelError, match="registry pins"):
        cache.converted(INT8, ModelStore(), None)
    cache.forget()


def test_int8_runs_on_onnx_runtime_only() -> None:
    with pytest.raises(ModelError, match="ONNX Runtime only"):
        make_embedder(EmbedConfig(model=INT8, backend="dlib"))
