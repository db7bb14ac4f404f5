"""gallery: consent before enrolment, atomic writes, erasure, search, export/import."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens import (
    ConflictError,
    ConsentError,
    Embeddings,
    Gallery,
    GalleryError,
    NotFoundError,
)
from facelens.errors import GalleryFormatError
from facelens.gallery import Consent, NewSample, export_gallery, import_gallery

MODEL = "dlib_resnet_v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def sample(seed: int, model: str = MODEL) -> NewSample:
    return NewSample(
        embedding=unit(seed),
        model=model,
        quality={"inter_eye_px": 40.0},
        image_sha256=f"{seed:064x}",
        box=(0.0, 0.0, 10.0, 10.0),
    )


def consent(expires: datetime | None = None) -> Consent:
    return Consent(
        purpose="building access",
        granted_by="the person",
        granted_at=T0.isoformat(),
        expires_at=expires.isoformat() if expires else None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=1))


@pytest.fixture
def gallery(tmp_path: Path, clock: Clock) -> Gallery:
    g = Gallery.open(tmp_path / "g.db", clock=clock)
    yield g  # type: ignore[misc]
    g.close()


def test_enrolment_without_consent_is_refused_and_writes_nothing(gallery: Gallery) -> None:
    with pytest.raises(ConsentError, match="no consent record"):
        gallery.enroll("Ann", [sample(1)])
    assert gallery.identities() == []


def test_enrol_then_add_samples_under_the_same_consent(gallery: Gallery) -> None:
    r = gallery.enroll("Ann", [sample(1), sample(2)], consent(), metadata={"team": "a"})
    assert r.created and len(r.added) == 2 and r.identity.sample_count == 2
    r2 = gallery.enroll("Ann", [sample(3), sample(1)])  # sample(1) again: a duplicate image
    assert not r2.created and len(r2.added) == 1 and r2.duplicates == 1
    ident = gallery.get("Ann")
    assert ident.sample_count == 3 and ident.metadata == {"team": "a"}
    assert ident.consents[0].purpose == "building access"
    assert [s.quality for s in gallery.samples("Ann")] == [{"inter_eye_px": 40.0}] * 3


def test_expired_consent_blocks_enrolment_and_search(gallery: Gallery, clock: Clock) -> None:
    gallery.enroll("Ann", [sample(1)], consent(expires=T0 + timedelta(days=10)))
    probe = Embeddings(unit(1)[None], MODEL)
    assert gallery.identify(probe, 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    clock.t = T0 + timedelta(days=11)
    assert gallery.identify(probe, 0.9)[0].identity is None  # lapsed: no longer searchable
    with pytest.raises(ConsentError, match="no consent valid now"):
        gallery.enroll("Ann", [sample(2)])
    gallery.add_consent(
        "Ann", Consent(purpose="renewed", granted_by="Ann", granted_at=clock.t.isoformat())
    )
    assert gallery.identify(probe, 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]


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


def test_search_is_open_set_with_candidates(gallery: Gallery) -> None:
    for i, name in enumerate(["Ann", "Bob", "Cat"]):
        gallery.enroll(name, [sample(10 * i), sample(10 * i + 1)], consent())
    probes = Embeddings(np.stack([unit(11), unit(999)]), MODEL)
    res = gallery.identify(probes, threshold=0.9, k=2)
    assert res[0].identity.name == "Bob" and res[0].candidates[0].score == pytest.approx(1.0)  # type: ignore[union-attr]
    assert len(res[0].candidates) == 2
    assert res[1].identity is None and len(res[1].candidates) == 2


def test_search_ignores_other_models_and_refuses_nothing_silently(gallery: Gallery) -> None:
    gallery.enroll("Ann", [sample(1, model="other_model")], consent())
    assert gallery.search(Embeddings(unit(1)[None], MODEL)) == [[]]
    assert gallery.search_size("other_model") == (1, 1)


def test_rename_and_conflicts(gallery: Gallery) -> None:
    gallery.enroll("Ann", [sample(1)], consent())
    gallery.enroll("Bob", [sample(2)], consent())
    assert gallery.rename("Ann", "Anna").name == "Anna"
    with pytest.raises(ConflictError, match="'Bob' already exists"):
        gallery.rename("Anna", "Bob")
    with pytest.raises(NotFoundError, match="no identity 'Ann'"):
        gallery.get("Ann")


def test_delete_erases_every_sample_and_consent(gallery: Gallery, tmp_path: Path) -> None:
    ann = gallery.enroll("Ann", [sample(1), sample(2)], consent()).identity
    gallery.enroll("Bob", [sample(3)], consent())
    probe = Embeddings(unit(1)[None], MODEL)
    assert gallery.identify(probe, 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    receipt = gallery.delete("Ann")
    assert (receipt.samples_deleted, receipt.consents_deleted) == (2, 1)
    assert gallery.identify(probe, 0.9)[0].identity is None
    db = sqlite3.connect(tmp_path / "g.db")
    for table, col in (
        ("samples", "identity_id"),
        ("consents", "identity_id"),
        ("identities", "id"),
    ):
        assert (
            db.execute(f"SELECT count(*) FROM {table} WHERE {col} = ?", (ann.id,)).fetchone()[0]
            == 0
        )
    with pytest.raises(NotFoundError):
        gallery.delete("Ann")


def test_a_second_process_view_sees_changes(tmp_path: Path, clock: Clock) -> None:
    a = Gallery.open(tmp_path / "g.db", clock=clock)
    b = Gallery.open(tmp_path / "g.db", clock=clock)
    probe = Embeddings(unit(1)[None], MODEL)
    assert b.identify(probe, 0.9)[0].identity is None
    a.enroll("Ann", [sample(1)], consent())
    assert b.identify(probe, 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    a.delete("Ann")
    assert b.identify(probe, 0.9)[0].identity is None  # no stale cache
    a.close()
    b.close()


def test_export_import_round_trip_without_photos(
    gallery: Gallery, tmp_path: Path, clock: Clock
) -> None:
    gallery.enroll(
        "Ann", [sample(1), sample(2)], consent(T0 + timedelta(days=100)), metadata={"badge": "17"}
    )
    gallery.enroll("Bob", [sample(3)], consent())
    out = tmp_path / "export.json"
    assert export_gallery(gallery, out) == 2
    doc = json.loads(out.read_text())
    assert doc["format"] == "facelens-gallery" and doc["version"] == 1
    assert all(
        set(s)
        == {"id", "model", "dim", "embedding", "quality", "image_sha256", "box", "created_at"}
        for i in doc["identities"]
        for s in i["samples"]
    )
    other = Gallery.open(tmp_path / "other.db", clock=clock)
    assert import_gallery(other, out) == (2, 0)
    ann_a, ann_b = gallery.get("Ann"), other.get("Ann")
    assert (ann_a.id, ann_a.metadata, ann_a.consents[0].to_dict()) == (
        ann_b.id,
        ann_b.metadata,
        ann_b.consents[0].to_dict(),
    )
    sa, sb = gallery.samples("Ann"), other.samples("Ann")
    assert [s.id for s in sa] == [s.id for s in sb]
    assert all(np.array_equal(x.embedding, y.embedding) for x, y in zip(sa, sb, strict=True))
    # importing again conflicts as a whole, or skips when asked
    with pytest.raises(ConflictError, match="nothing imported"):
        import_gallery(other, out)
    assert import_gallery(other, out, on_conflict="skip") == (0, 2)
    other.close()


def test_import_is_all_or_nothing(gallery: Gallery, tmp_path: Path, clock: Clock) -> None:
    gallery.enroll("Ann", [sample(1)], consent())
    gallery.enroll("Bob", [sample(2)], consent())
    out = tmp_path / "export.json"
    export_gallery(gallery, out)
    target = Gallery.open(tmp_path / "t.db", clock=clock)
    target.enroll("Bob", [sample(7)], consent())  # clashes with the second identity
    with pytest.raises(ConflictError):
        import_gallery(target, out)
    assert [i.name for i in target.identities()] == ["Bob"]  # Ann was not half-imported
    doc = json.loads(out.read_text())
    doc["identities"][1]["samples"][0]["embedding"] = "AAAA"
    out.write_text(json.dumps(doc))
    with pytest.raises(GalleryFormatError, match="identity #2, sample #1"):
        import_gallery(Gallery.open(tmp_path / "t2.db"), out)
    target.close()


def test_files_that_are_not_galleries(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(GalleryFormatError, match="not a facelens gallery"):
        Gallery.open(junk)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(GalleryFormatError, match="another application"):
        Gallery.open(foreign)
    with pytest.raises(GalleryError, match="is a directory"):
        Gallery.open(tmp_path)
    bad_export = tmp_path / "x.json"
    bad_export.write_text('{"format": "something else"}')
    with pytest.raises(GalleryFormatError, match="not a facelens gallery export"):
        import_gallery(Gallery.open(tmp_path / "ok.db"), bad_export)


def test_schema_is_versioned(tmp_path: Path) -> None:
    from facelens.gallery import SCHEMA_VERSION

    Gallery.open(tmp_path / "g.db").close()
    con = sqlite3.connect(tmp_path / "g.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(GalleryFormatError, match="Upgrade facelens"):
        Gallery.open(tmp_path / "g.db")
