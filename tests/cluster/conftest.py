"""Cluster fixtures: the shared photos indexed once, and a private copy per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.archive import Archive, IndexConfig, Indexer
from facelens.embed import EmbedConfig
from facelens.gallery import Gallery, SqliteStore
from facelens.govern import AuditLog, GovernedGallery
from facelens.pipeline import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig


@pytest.fixture(scope="session")
def fused() -> Pipeline:
    return Pipeline(
        PipelineConfig(embed=EmbedConfig(model="dlib+sface"), runtime=RuntimeConfig(threads=1))
    )


@pytest.fixture(scope="session")
def indexed(data: Path, fused: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery file whose archive holds every face of faces/bbt and faces/face_recognition
    (made once; tests copy it)."""
    path = tmp_path_factory.mktemp("indexed") / "g.db"
    with SqliteStore(path) as store:
        store.ensure_gallery("default")
        Indexer(Archive(store, "default"), lambda: fused, IndexConfig(workers=1)).run(
            [data / "faces" / "bbt", data / "faces" / "face_recognition"]
        )
    return path


@pytest.fixture
def gallery_file(indexed: Path, tmp_path: Path) -> Path:
    path = tmp_path / "g.db"
    shutil.copyfile(indexed, path)
    return path


@pytest.fixture
def governed(gallery_file: Path) -> Iterator[GovernedGallery]:
    g = Gallery.open(gallery_file)
    yield GovernedGallery(g, AuditLog(g.store), tenant="default", actor="test:archive")
    g.close()
