"""gallery, SQLite only: what is not a gallery file, schema versions, consent records.

The gallery contract itself is tested against both stores in test_conformance.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens import Embeddings, GalleryError
from facelens.errors import GalleryFormatError
from facelens.gallery import SCHEMA_VERSION, AnnConfig, Consent, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.gallery.portable import import_gallery

MODEL = "dlib_resnet_v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_consent_must_be_complete() -> None:
    with pytest.raises(ValueError, match="purpose"):
        Consent(purpose=" ", granted_by="x", granted_at=T0.isoformat())
    with pytest.raises(ValueError, match="not after"):
        Consent(
            purpose="p",
            granted_by="x",
            granted_at=T0.isoformat(),
            expires_at=(T0 - timedelta(days=1)).isoformat(),
        )


def test_files_that_are_not_galleries(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(GalleryFormatError, match="not a facelens gallery"):
        RawGallery.open(junk)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(GalleryFormatError, match="another application"):
        RawGallery.open(foreign)
    with pytest.raises(GalleryError, match="is a directory"):
        RawGallery.open(tmp_path)
    bad_export = tmp_path / "x.json"
    bad_export.write_text('{"format": "something else"}')
    with pytest.raises(GalleryFormatError, match="not a facelens gallery export"):
        import_gallery(RawGallery.open(tmp_path / "ok.db"), bad_export)


def test_schema_is_versioned(tmp_path: Path) -> None:
    from facelens.gallery import SCHEMA_VERSION

    RawGallery.open(tmp_path / "g.db").close()
    con = sqlite3.connect(tmp_path / "g.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(GalleryFormatError, match="Upgrade facelens"):
        RawGallery.open(tmp_path / "g.db")


def test_a_schema_2_gallery_is_migrated_with_its_samples_searchable(tmp_path: Path) -> None:
    from facelens.gallery.schema import SQLITE as _MIGRATIONS
    from facelens.gallery.schema import statements as _statements

    path = tmp_path / "old.db"
    con = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:2]:
        for stmt in _statements(step):
            con.execute(stmt)
    con.execute("PRAGMA user_version = 2")
    v = np.zeros(128, np.float32)
    v[0] = 1.0
    con.execute("INSERT INTO galleries VALUES ('default', 't')")
    con.execute("INSERT INTO identities VALUES ('i1', 'default', 'Ann', '{}', 't', 't')")
    con.execute(
        "INSERT INTO consents(identity_id, purpose, granted_by, granted_at) "
        "VALUES ('i1', 'p', 'Ann', '2026-01-01T00:00:00+00:00')"
    )
    con.execute(
        "INSERT INTO samples(id, identity_id, model, dim, embedding, image_sha256, created_at) "
        "VALUES ('s1', 'i1', ?, 128, ?, 'x', 't')",
        (MODEL, v.tobytes()),
    )
    con.close()
    store = SqliteStore(path, ann=AnnConfig(min_samples=0))
    assert store.schema_version() == SCHEMA_VERSION
    assert store.fetch("SELECT sample_id FROM sample_seq") == [("s1",)]
    found = RawGallery(store).search(Embeddings(v[None], MODEL))[0]
    assert [c.name for c in found] == ["Ann"] and store.index_info("default", MODEL)
    store.close()
