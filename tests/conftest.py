"""Shared fixtures: the real evaluation data, a shared pipeline, tiny factories."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from facelens import Faces, Pipeline

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("FACELENS_DATA") or ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def facelens_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private $FACELENS_HOME for the whole run (and the CLI processes it starts)."""
    home = tmp_path_factory.mktemp("facelens-home")
    os.environ["FACELENS_HOME"] = str(home)
    os.environ.pop("FACELENS_GALLERY", None)
    os.environ.pop("FACELENS_PROVIDER", None)
    return home


@pytest.fixture(scope="session")
def data() -> Path:
    """``../shared/data`` (or $FACELENS_DATA); tests needing it skip, visibly, without it."""
    root = data_root()
    if not (root / "README.md").is_file():
        pytest.skip(f"evaluation data not found at {root} (set FACELENS_DATA)")
    return root


@pytest.fixture(scope="session")
def fr_photos(data: Path) -> Path:
    return data / "faces" / "face_recognition"


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """One pipeline for the session (model loading is the slow part)."""
    p = Pipeline()
    p.load()
    return p


def make_faces(
    n: int = 1, *, size: float = 100.0, landmarks: bool = False, **overrides: object
) -> Faces:
    """``n`` faces in a row, each ``size`` pixels wide, optionally with frontal landmarks."""
    xyxy = np.array([[i * 2 * size, 0, i * 2 * size + size, size] for i in range(n)], np.float32)
    lm = None
    if landmarks:
        pts = []
        for x1, y1, _, _ in xyxy:
            s = size
            pts.append(
                [
                    [x1 + 0.75 * s, y1 + 0.4 * s],
                    [x1 + 0.6 * s, y1 + 0.4 * s],
                    [x1 + 0.25 * s, y1 + 0.4 * s],
                    [x1 + 0.4 * s, y1 + 0.4 * s],
                    [x1 + 0.5 * s, y1 + 0.65 * s],
                ]
            )
        lm = np.array(pts, np.float32)
    fields: dict[str, object] = {"xyxy": xyxy, "score": np.ones(n, np.float32), "landmarks": lm}
    fields.update(overrides)
    return Faces(**fields)  # type: ignore[arg-type]
