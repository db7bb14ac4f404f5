"""Existing galleries keep answering when the default recognizer changes: a search uses the
templates the gallery holds (with a notice saying how to add the default's), and a model the
gallery has no templates of is an error naming how many people are enrolled, never "no one
is enrolled"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facelens.cli.main import EXIT_GALLERY, main
from facelens.embed import EmbedConfig
from facelens.embed.base import template_tag

DEFAULT = template_tag(EmbedConfig())


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def enrol(capsys: pytest.CaptureFixture[str], gallery: Path, knn: Path, model: str) -> None:
    for person in ("obama", "biden"):
        code, _, err = run(
            capsys,
            "enroll",
            person,
            knn / "train" / person,
            "--consent",
            "evaluation",
            "--gallery",
            gallery,
            "--model",
            model,
        )
        assert code == 0, err


@pytest.fixture(scope="module")
def knn(data: Path) -> Path:
    return data / "faces" / "face_recognition" / "knn_examples"


@pytest.mark.parametrize("model", ["dlib", "sface"])
def test_a_gallery_of_another_recognizer_still_names_its_people(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, knn: Path, model: str
) -> None:
    """Enrolled with --model dlib (the default before issue 26) or --model sface: searched
    without --model, with the default recognizer's templates when the gallery holds them,
    else with the gallery's own, saying so once on stderr."""
    g = tmp_path / "g.db"
    enrol(capsys, g, knn, model)
    tag = template_tag(EmbedConfig(model=model))
    code, out, err = run(
        capsys, "identify", knn / "test" / "obama_and_biden.jpg", "--gallery", g, "--json"
    )
    assert code == 0, err
    named = sorted(
        f["identity"]["name"] for r in json.loads(out) for f in r["faces"] if f["identity"]
    )
    assert named == ["biden", "obama"]
    notices = [line for line in err.splitlines() if "retemplate" in line]
    if tag == DEFAULT:
        assert notices == []
    else:
        assert len(notices) == 1
        assert f"no templates of the default recognizer ({DEFAULT})" in notices[0]
        assert f"searching with {tag} (2 of 2 people)" in notices[0]
    assert "no one is enrolled" not in err


def test_a_model_the_gallery_has_no_templates_of_exits_5(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, knn: Path
) -> None:
    g = tmp_path / "g.db"
    enrol(capsys, g, knn, "sface")
    code, out, err = run(
        capsys, "identify", knn / "test" / "obama1.jpg", "--gallery", g, "--model", "dlib"
    )
    assert code == EXIT_GALLERY and out == ""
    assert "2 people are enrolled, none with dlib templates (dlib_resnet_v1+flip)" in err
    assert "facelens gallery retemplate --model dlib" in err
    assert "no one is enrolled" not in err


def test_retemplate_adds_the_default_and_the_notice_goes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, knn: Path
) -> None:
    """A gallery that keeps chips gets the default recognizer's templates from them
    (``gallery retemplate`` without --model), and then answers with the default."""
    g = tmp_path / "g.db"
    other = "sface" if template_tag(EmbedConfig(model="sface")) != DEFAULT else "dlib"
    assert run(capsys, "gallery", "settings", "--keep-chips", "--gallery", g)[0] == 0
    enrol(capsys, g, knn, other)
    code, out, err = run(capsys, "gallery", "retemplate", "--gallery", g, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == DEFAULT and doc["identities_retemplated"] == 2
    code, out, err = run(capsys, "identify", knn / "test" / "obama1.jpg", "--gallery", g, "--json")
    assert code == 0 and "retemplate" not in err
    assert [f["identity"]["name"] for r in json.loads(out) for f in r["faces"]] == ["obama"]
