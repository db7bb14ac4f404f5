"""embed: unit 128-d vectors, tagged; same person closer than different; models never mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens import EmbedConfig, Embeddings, ModelError, ModelMismatchError, load_image
from facelens.embed import make_embedder
from facelens.match import cosine_similarity


def test_embeddings_are_unit_vectors_tagged_with_their_model(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    img = load_image(fr_photos / "two_people.jpg")
    e = pipeline.embed(img)
    # the default embeds each chip and its mirror image, with each recognizer of its fusion
    # (128 values each); the tag says so
    parts = len(pipeline.embedder.parts)
    assert len(e) == 2 and e.model == pipeline.model and e.dim == 128 * parts
    assert e.model.count("+flip") == parts
    assert np.allclose(np.linalg.norm(e.vectors, axis=1), 1, atol=1e-5)
    assert not e.vectors.flags.writeable


def test_same_person_is_closer_than_different_people(pipeline, fr_photos: Path) -> None:  # type: ignore[no-untyped-def]
    o1 = pipeline.embed(load_image(fr_photos / "obama.jpg"))
    o2 = pipeline.embed(load_image(fr_photos / "obama2.jpg"))
    b = pipeline.embed(load_image(fr_photos / "biden.jpg"))
    same = cosine_similarity(o1, o2)[0, 0]
    diff = cosine_similarity(o1, b)[0, 0]
    assert same > diff + 0.03
    assert pipeline.verify(o1, o2).same and not pipeline.verify(o1, b).same


def test_embeddings_of_different_models_are_never_compared() -> None:
    a = Embeddings(np.eye(2, 128, dtype=np.float32), "dlib_resnet_v1")
    b = Embeddings(np.eye(2, 128, dtype=np.float32), "another_model")
    with pytest.raises(
        ModelMismatchError, match="cannot compare.*'dlib_resnet_v1'.*'another_model'"
    ):
        cosine_similarity(a, b)


def test_embeddings_validate_their_input() -> None:
    with pytest.raises(ValueError, match="zero row"):
        Embeddings(np.zeros((1, 4)), "m")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        Embeddings(np.zeros((1, 2, 3)), "m")
    with pytest.raises(ValueError, match="name the model"):
        Embeddings(np.ones((1, 4)), "")


def test_chips_of_the_wrong_shape_are_refused(pipeline) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"chips must be uint8 with shape \(N, 150, 150, 3\)"):
        pipeline.embedder.parts[0].embed(np.zeros((1, 100, 100, 3), np.uint8))


def test_unknown_embedder() -> None:
    with pytest.raises(ModelError, match="unknown embedder 'x'"):
        make_embedder(EmbedConfig(model="dlib", backend="x"))
