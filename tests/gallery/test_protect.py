"""Protected templates: sealed at rest (a copied database without its key yields no template),
a store never answers without its key, rotation keeps every answer, and each gallery's secret
transform makes one person's templates in two galleries unrelated."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facelens import Embeddings
from facelens.cli.main import main
from facelens.errors import GalleryKeyError
from facelens.gallery import AnnConfig, Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.protect import OVERHEAD, TemplateKey
from facelens.gallery.stores import open_store

MODEL = "dlib_resnet_v1"
K1 = TemplateKey(bytes(range(32)))
K2 = TemplateKey(bytes(range(1, 33)))


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def sample(seed: int, chip: bool = False) -> NewSample:
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), np.uint8) if chip else None
    return NewSample(unit(seed), MODEL, {}, f"{seed:064x}", chip=pixels)


def enrol_people(g: RawGallery, n: int = 20) -> None:
    c = Consent(purpose="door", granted_by="self", granted_at="2026-01-01T00:00:00Z")
    g.configure(keep_chips=True)
    for i in range(n):
        g.enroll(f"person {i}", [sample(i, chip=True), sample(1000 + i)], c)


class Answers(list):  # type: ignore[type-arg]
    """Names and scores of 25 searches; equal when the names are and the scores agree to
    float32 rounding (templates are moved between the model's space and a gallery's)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list) and all(
            a[0] == b[0] and abs(a[1] - b[1]) < 1e-5 for a, b in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]


def answers(g: RawGallery) -> Answers:
    probes = np.stack([unit(i) + 0.3 * unit(5000 + i) for i in range(25)])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    found = g.identify(Embeddings(probes.astype(np.float32), MODEL), 0.8, k=3)
    return Answers((x.identity.name if x.identity else None, x.candidates[0].score) for x in found)


def test_a_copied_database_without_its_key_yields_no_template(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with RawGallery(open_store(path, key=K1)) as g:
        enrol_people(g)
        assert g.store.encrypted()
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    raw = copy.read_bytes()
    con = sqlite3.connect(copy)
    blobs = [bytes(r[0]) for r in con.execute("SELECT embedding FROM samples")]
    chips = [bytes(r[0]) for r in con.execute("SELECT data FROM chips")]
    secrets = [bytes(r[0]) for r in con.execute("SELECT secret FROM galleries")]
    con.close()
    assert len(blobs) == 40 and all(len(b) == 4 * 128 + OVERHEAD for b in blobs)
    assert len(chips) == 20 and not any(b"PNG" in c[:16] for c in chips)
    assert all(s.startswith(b"FLE1") for s in secrets)
    # no template (as enrolled, or in any 4-byte alignment of the sealed bytes) is in the file
    for i in range(20):
        assert unit(i).tobytes()[:16] not in raw
    for b in blobs:
        for shift in range(4):
            with np.errstate(all="ignore"):
                v = np.frombuffer(b[shift : shift + 512], "<f4").astype(np.float64)
                v = np.where(np.isfinite(v), v, 0.0)
                v /= np.linalg.norm(v)
            cos = np.stack([unit(i) for i in range(20)]).astype(np.float64) @ v
            assert np.abs(cos).max() < 0.6  # same person: > 0.9
    with pytest.raises(GalleryKeyError, match="encrypted"):
        open_store(copy)
    with pytest.raises(GalleryKeyError, match="not this store's"):
        open_store(copy, key=K2)


def test_rotation_keeps_every_answer_and_retires_the_old_key(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    ann = AnnConfig(min_samples=0, m=16)  # the approximate index too, saved sealed
    with RawGallery(open_store(path, ann=ann)) as g:  # a plain store first
        enrol_people(g)
        before = answers(g)
        templates = {s.id: s.embedding for s in g.samples("person 3", by="name")}
        chip = g.chips("person 3", by="name")
        counts = g.store.rekey(K1)  # plain -> sealed
        assert counts == {"galleries": 1, "templates": 40, "chips": 20}
        assert answers(g) == before
    with RawGallery(open_store(path, key=K1, ann=ann)) as g:
        assert answers(g) == before
        assert g.store.index_info("default", MODEL) is not None  # the sealed index reloaded
        g.store.rekey(K2)  # sealed -> sealed, transforms renewed
        assert answers(g) == before
    with pytest.raises(GalleryKeyError):
        open_store(path, key=K1)
    with RawGallery(open_store(path, key=K2, ann=ann)) as g:
        assert answers(g) == before
        after = {s.id: s.embedding for s in g.samples("person 3", by="name")}
        assert after.keys() == templates.keys()
        assert all(np.abs(after[k] - templates[k]).max() < 1e-5 for k in templates)
        assert [(sha, px.tobytes()) for sha, px in g.chips("person 3", by="name")] == [
            (sha, px.tobytes()) for sha, px in chip
        ]
    index_files = list((tmp_path / "g.db.ann").iterdir())
    assert index_files and all(
        f.read_bytes()[:4] == b"FLE1" for f in index_files if ".faiss" in f.name
    )


def test_one_person_in_two_galleries_is_unlinkable(tmp_path: Path) -> None:
    with open_store(tmp_path / "g.db", key=K1) as store:
        a, b = RawGallery(store, "a"), RawGallery(store, "b")
        c = Consent(purpose="door", granted_by="self", granted_at="2026-01-01T00:00:00Z")
        for g in (a, b):
            g.enroll("Ann", [sample(1)], c)
        stored = {}
        for name in ("a", "b"):
            (row,) = store.fetch(
                "SELECT s.embedding FROM samples s JOIN identities i ON i.id = s.identity_id "
                "WHERE i.gallery = ?",
                (name,),
            )
            stored[name] = store._emb_value(row[0], 128)  # opened, still in the gallery's space
        assert abs(float(stored["a"] @ stored["b"])) < 0.4  # unrelated vectors
        assert float(stored["a"] @ unit(1)) < 0.4
        for g in (a, b):  # while each gallery answers as if untransformed
            (found,) = g.identify(Embeddings(unit(1)[None], MODEL), 0.9)
            assert found.identity is not None and found.candidates[0].score > 0.9999


def test_the_cli_needs_the_key_and_rotates_it(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = tmp_path / "g.db"
    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    assert main(["govern", "new-key", str(k1)]) == 0
    assert main(["govern", "new-key", str(k2)]) == 0
    assert main(["govern", "new-key", str(k2)]) == 5  # never overwritten
    assert os.stat(k1).st_mode & 0o777 == 0o600
    monkeypatch.setenv("FACELENS_KEY_FILE", str(k1))
    knn = data / "faces" / "face_recognition" / "knn_examples"
    for who in ("obama", "biden"):
        imgs = sorted((knn / "train" / who).iterdir())
        assert main(["enroll", who, *map(str, imgs), "--consent", "door", "--gallery", str(g)]) == 0
    probes = [
        str(knn / "test" / "obama1.jpg"),
        str(data / "faces" / "face_recognition" / "biden.jpg"),
    ]
    capsys.readouterr()

    def identify() -> list[tuple[str | None, float]]:
        assert main(["identify", *probes, "--gallery", str(g), "--json"]) == 0
        return [
            (f["identity"]["name"], f["identity"]["score"])
            for r in json.loads(capsys.readouterr().out)
            for f in r["faces"]
        ]

    before = identify()
    assert [b[0] for b in before] == ["obama", "biden"]
    monkeypatch.delenv("FACELENS_KEY_FILE")
    assert main(["identify", *probes, "--gallery", str(g)]) == 5
    assert "encrypted" in capsys.readouterr().err
    monkeypatch.setenv("FACELENS_KEY_FILE", str(tmp_path / "missing"))
    assert main(["gallery", "list", "--gallery", str(g)]) == 5
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path) not in err  # names the file, not the path
    monkeypatch.setenv("FACELENS_KEY_FILE", str(k1))
    assert main(["govern", "rotate-key", "--new-key-file", str(k2), "--gallery", str(g)]) == 0
    capsys.readouterr()
    assert main(["identify", *probes, "--gallery", str(g)]) == 5  # the old key opens nothing
    capsys.readouterr()
    monkeypatch.setenv("FACELENS_KEY_FILE", str(k2))
    after = identify()  # the same answers (scores printed to 4 decimals: one rounding step)
    assert [a[0] for a in after] == [b[0] for b in before]
    assert all(abs(a[1] - b[1]) <= 0.00011 for a, b in zip(after, before, strict=True))
    assert main(["audit", "list", "--gallery", str(g), "--json"]) == 0
    actions = [r["action"] for r in json.loads(capsys.readouterr().out)]
    assert "rotate_key" in actions


def test_both_stores_seal_rotate_and_refuse_a_wrong_key(store_location: str) -> None:
    """SQLite and PostgreSQL alike: plain -> sealed -> another key, the same answers; a store
    sealed with K2 opens neither without a key nor with K1."""
    with RawGallery(open_store(store_location)) as g:
        enrol_people(g, 8)
        before = answers(g)
        g.store.rekey(K1)
        assert answers(g) == before
    with RawGallery(open_store(store_location, key=K1)) as g:
        assert g.store.encrypted() and answers(g) == before
        g.store.rekey(K2)
    for wrong in (None, K1):
        with pytest.raises(GalleryKeyError):
            open_store(store_location, key=wrong)
    with RawGallery(open_store(store_location, key=K2)) as g:
        assert answers(g) == before
        assert len(g.chips("person 1", by="name")) == 1


def test_a_new_gallery_file_is_its_owners_alone_and_memory_is_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facelens.gallery.sqlite import SqliteStore

    SqliteStore(tmp_path / "site.db").close()
    assert os.stat(tmp_path / "site.db").st_mode & 0o777 == 0o600
    # SQLite's in-memory database: nothing written where the caller stands
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    SqliteStore(":memory:").close()
    assert list(here.iterdir()) == []
