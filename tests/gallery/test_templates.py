"""Templates per model on real faces: re-templating from kept chips, old galleries, fusion."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest

from facelens import DetectConfig, EmbedConfig, Gallery, Pipeline, PipelineConfig, load_image
from facelens.gallery import Consent
from facelens.gallery.enrol import prepare_samples
from facelens.gallery.schema import SQLITE as _MIGRATIONS
from facelens.gallery.schema import statements as _statements

CONSENT = Consent(purpose="test", granted_by="test", granted_at="2026-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def sface() -> Pipeline:
    p = Pipeline(PipelineConfig(embed=EmbedConfig(model="sface")))
    p.load()
    return p


def _train(fr_photos: Path, who: str) -> list[Path]:
    return sorted((fr_photos / "knn_examples" / "train" / who).iterdir())


def test_retemplate_from_kept_chips_and_who_must_enrol_again(
    sface: Pipeline, fr_photos: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline(PipelineConfig(embed=EmbedConfig(model="dlib")))
    keeping = Gallery.open(tmp_path / "keeping.db")
    keeping.configure(keep_chips=True)
    for who in ("obama", "biden"):
        keeping.enroll(pipeline, who, _train(fr_photos, who), CONSENT)
    assert keeping.get("obama", by="name").chips == 2
    probe = load_image(fr_photos / "knn_examples" / "test" / "obama1.jpg")
    # before: SFace finds no one (the gallery holds dlib templates only)
    assert keeping.search_size(sface.model) == (0, 0)
    report = keeping.retemplate(sface)
    assert report.model == "sface_2021dec+flip"
    assert (report.identities, report.already, report.must_reenrol) == (2, 0, ())
    assert report.added == 4
    assert keeping.get("obama", by="name").models == {
        "dlib_resnet_v1+flip": 2,
        "sface_2021dec+flip": 2,
    }
    found = keeping.identify(sface.embed(probe))[0]
    assert found.identity is not None and found.identity.name == "obama"
    # a template made from the kept chip is close to one made from the photo itself
    direct = prepare_samples(sface, _train(fr_photos, "obama")[0])[0]
    kept = [s for s in keeping.samples("obama", by="name") if s.model == sface.model]
    assert max(float(direct.embedding @ s.embedding) for s in kept) > 0.93
    assert keeping.retemplate(sface).already == 2  # a second run adds nothing
    keeping.close()

    plain = Gallery.open(tmp_path / "plain.db")  # did not keep chips
    plain.enroll(pipeline, "biden", _train(fr_photos, "biden"), CONSENT)
    report = plain.retemplate(sface)
    assert report.added == 0 and [n for _, n in report.must_reenrol] == ["biden"]
    plain.close()


def _v3_gallery(path: Path, people: dict[str, list[np.ndarray]], model: str) -> None:
    """A gallery as facelens 0.1 wrote it: schema 3, one sample row per image."""
    db = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:3]:
        for stmt in _statements(step):
            db.execute(stmt)
    db.execute("PRAGMA user_version = 3")
    now = "2026-11-01T00:00:00+00:00"
    db.execute("INSERT INTO galleries(name, created_at) VALUES ('default', ?)", (now,))
    for name, vectors in people.items():
        iid = uuid.uuid4().hex
        db.execute(
            "INSERT INTO identities(id, gallery, name, metadata, created_at, updated_at) "
            "VALUES (?, 'default', ?, '{}', ?, ?)",
            (iid, name, now, now),
        )
        db.execute(
            "INSERT INTO consents(identity_id, purpose, granted_by, granted_at) "
            "VALUES (?, 'door', ?, ?)",
            (iid, name, now),
        )
        for n, v in enumerate(vectors):
            db.execute(
                "INSERT INTO samples(id, identity_id, model, dim, embedding, quality, "
                "image_sha256, box, created_at) VALUES (?, ?, ?, 128, ?, '{}', ?, NULL, ?)",
                (uuid.uuid4().hex, iid, model, v.astype("<f4").tobytes(), f"{n:064x}", now),
            )
    db.close()


def test_an_old_gallery_opens_and_answers_as_before(fr_photos: Path, tmp_path: Path) -> None:
    # enrolled by 0.1's default pipeline: dlib's MMOD detector, dlib's ResNet with flip
    dlib = EmbedConfig(model="dlib")
    old = Pipeline(PipelineConfig(detect=DetectConfig(backend="onnx_mmod"), embed=dlib))
    new = Pipeline(PipelineConfig(embed=dlib))  # today's default detector, the same recognizer
    people = {
        who: [old.primary_embedding(load_image(p)).vectors[0] for p in _train(fr_photos, who)]  # type: ignore[union-attr]
        for who in ("obama", "biden", "kit_harington", "rose_leslie", "alex_lacamoire")
    }
    path = tmp_path / "old.db"
    _v3_gallery(path, people, old.model)
    probes = {
        "obama1.jpg": "obama",
        "alex_lacamoire1.jpg": "alex_lacamoire",
        "johnsnow_test1.jpg": "kit_harington",
        "kit_with_rose.jpg": None,  # two people: checked face by face below
    }
    with Gallery.open(path) as g:
        assert g._raw.store.schema_version() >= 4  # migrated (the store is internal)
        assert sorted(i.name for i in g.identities()) == sorted(people)
        assert g.get("obama", by="name").sample_count == 2
        assert g.settings() == {"keep_chips": False, "confirm": 1}
        for photo, who in probes.items():
            img = load_image(fr_photos / "knn_examples" / "test" / photo)
            a_old = g.identify(old.embed(img))
            a_new = g.identify(new.embed(img))
            names_old = sorted(r.identity.name if r.identity else "-" for r in a_old)
            names_new = sorted(r.identity.name if r.identity else "-" for r in a_new)
            assert names_old == names_new, photo
            if who is not None:
                assert names_new == [who]
            best_old = sorted(r.candidates[0].score for r in a_old)
            best_new = sorted(r.candidates[0].score for r in a_new)
            assert np.allclose(best_old, best_new, atol=0.01), (photo, best_old, best_new)
    # and a second open finds the migrated file as it left it
    with Gallery.open(path) as g:
        assert len(g.identities()) == 5
    assert (
        json.loads(sqlite3.connect(path).execute("SELECT settings FROM galleries").fetchone()[0])
        == {}
    )
