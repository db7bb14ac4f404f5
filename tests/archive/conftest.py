"""Archive fixtures: the fused pipeline ``facelens index`` uses, and small photo folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facelens.archive import Archive, IndexConfig, Indexer
from facelens.embed import EmbedConfig
from facelens.gallery import SqliteStore
from facelens.pipeline import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig


@pytest.fixture(scope="session")
def fused() -> Pipeline:
    return Pipeline(
        PipelineConfig(embed=EmbedConfig(model="dlib+sface"), runtime=RuntimeConfig(threads=1))
    )


@pytest.fixture
def photos(data: Path, tmp_path: Path) -> Path:
    """A private copy of the Big Bang Theory photos (group shots and portraits)."""
    dst = tmp_path / "photos"
    shutil.copytree(data / "faces" / "bbt", dst)
    return dst


@pytest.fixture
def index_with(fused: Pipeline) -> Callable[[Archive], Indexer]:
    return lambda archive: Indexer(archive, lambda: fused, IndexConfig(workers=1, batch=4))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with SqliteStore(tmp_path / "g.db") as store:
        yield Archive(store, "default")
