"""Test-time augmentation: deterministic views, averaged, with their own model tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, ModelMismatchError, load_image
from facelens.embed import make_embedder
from facelens.embed.augment import augmented_chips
from facelens.match import cosine_similarity


def test_views() -> None:
    chip = np.random.default_rng(0).integers(0, 255, (150, 150, 3), dtype=np.uint8)
    assert np.array_equal(augmented_chips(chip, "none")[0], chip)
    flip = augmented_chips(chip, "flip")
    assert np.array_equal(flip[1], chip[:, ::-1])
    tta = augmented_chips(chip, "tta")
    assert tta.shape == (14, 150, 150, 3)
    assert np.array_equal(tta[0], chip) and np.array_equal(tta[7], chip[:, ::-1])
    assert np.array_equal(augmented_chips(chip, "tta"), tta)  # deterministic
    with pytest.raises(ValueError, match="unknown augmentation"):
        augmented_chips(chip, "random")


def test_flip_embedding_is_the_mean_of_both_views(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    img = load_image(fr_photos / "obama.jpg")
    chips = pipeline.chips(img, pipeline.detect(img))
    plain = make_embedder(EmbedConfig(model="dlib", augment="none"))
    flip = make_embedder(EmbedConfig(model="dlib", augment="flip"))
    e = flip.embed(chips)
    assert e.model == "dlib_resnet_v1+flip" and plain.model == "dlib_resnet_v1"
    views = plain.embed(augmented_chips(chips[0], "flip")).vectors
    expect = views.mean(0) / np.linalg.norm(views.mean(0))
    assert np.allclose(e.vectors[0], expect, atol=1e-6)
    with pytest.raises(ModelMismatchError):  # averaged and single views never mix
        cosine_similarity(e, plain.embed(chips))
