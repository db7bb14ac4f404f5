"""A fusion is an embedder of its own: the pipeline holds one embedder whatever the model,
and a real face's templates through it are those of the computation it replaced (each
recognizer on its own chips, concatenated with the square roots of the measured weights)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, ModelError, Pipeline, PipelineConfig, load_image
from facelens.embed import make_embedder
from facelens.embed.base import SingleEmbedder, view_key
from facelens.embed.fusion import FusionEmbedder, make_fusion

DEFAULT = "fusion(dlib_resnet_v1_int8+flip*0.6,sface_2021dec+flip*0.4)"


def _by_hand(p: Pipeline, image: np.ndarray, names: list[str], weights: list[float]) -> np.ndarray:
    """Templates as the pipeline made them before a fusion was an embedder: each recognizer
    built alone, fed its own chips of the detected faces, weighted by sqrt(w), unit length."""
    faces = p.align(image, p.detect(image))
    views = p.views(image, faces)
    parts = []
    for n in names:
        e = make_embedder(dataclasses.replace(p.config.embed, model=n))
        parts.append(e.embed(views[view_key(e.alignment, e.chip_size)]).vectors)
    if len(parts) == 1:
        return parts[0]
    v = np.concatenate([a * np.float32(np.sqrt(w)) for a, w in zip(parts, weights, strict=True)], 1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_default_fusion_is_one_embedder_with_the_old_templates(
    pipeline: Pipeline, fr_photos: Path
) -> None:
    e = pipeline.embedder
    assert isinstance(e, FusionEmbedder) and e.model == DEFAULT == pipeline.model
    assert [p.model for p in e.parts] == ["dlib_resnet_v1_int8+flip", "sface_2021dec+flip"]
    assert e.weights == (0.6, 0.4) and e.views == (("dlib", 150), ("arcface", 112))
    image = load_image(fr_photos / "two_people.jpg")
    ours = pipeline.embed(image)
    ref = _by_hand(pipeline, image, ["dlib_resnet_v1_int8", "sface_2021dec"], [0.6, 0.4])
    assert ours.model == DEFAULT and ours.vectors.shape == ref.shape == (2, 256)
    assert np.abs(ours.vectors - ref).max() <= 1e-6
    # what a gallery stores: the fused templates, then each part's own
    fused, dlib, sface = pipeline.templates(pipeline.analyze(image).views)
    assert np.abs(fused.vectors - ref).max() <= 1e-6
    assert (dlib.model, sface.model) == tuple(p.model for p in e.parts)


def test_one_recognizer_is_read_the_same_way(fr_photos: Path) -> None:
    p = Pipeline(PipelineConfig(embed=EmbedConfig(model="dlib")))
    assert isinstance(p.embedder, SingleEmbedder) and p.embedder.views == (("dlib", 150),)
    image = load_image(fr_photos / "obama.jpg")
    ours = p.embed(image)
    ref = _by_hand(p, image, ["dlib_resnet_v1"], [1.0])
    assert ours.model == "dlib_resnet_v1+flip" and ours.vectors.shape == ref.shape == (1, 128)
    assert np.abs(ours.vectors - ref).max() <= 1e-6
    assert [t.model for t in p.templates(p.analyze(image).views)] == [ours.model]


def test_a_fusion_is_built_by_name_and_refuses_what_it_cannot_fuse() -> None:
    f = make_fusion(EmbedConfig(model="dlib+sface", weights=(0.5, 0.5)))
    assert f.model == "fusion(dlib_resnet_v1+flip*0.5,sface_2021dec+flip*0.5)"
    with pytest.raises(ModelError, match="one weight per model"):
        make_fusion(EmbedConfig(model="dlib+sface", weights=(1.0,)))
    with pytest.raises(ModelError, match="one recognizer"):
        make_fusion(EmbedConfig(model="dlib"))
    with pytest.raises(ModelError, match="positive"):
        FusionEmbedder(f.parts, (1.0, 0.0))
