"""The gallery contract, run unchanged against every store: SQLite and PostgreSQL + pgvector,
each searched exactly and through its approximate index (``min_samples=0`` forces it)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens import ConflictError, ConsentError, Embeddings, NotFoundError
from facelens.errors import GalleryFormatError
from facelens.gallery import AnnConfig, Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.portable import export_gallery, import_gallery
from facelens.gallery.protect import TemplateKey
from facelens.gallery.stores import is_postgres_url, open_store
from facelens.govern import AuditLog, GovernedGallery
from facelens.match import IdentifyRule

MODEL = "dlib_resnet_v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXACT = AnnConfig(min_samples=10**9)
APPROX = AnnConfig(min_samples=0, m=16)


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


KEY = TemplateKey(bytes(range(32)))


@pytest.fixture(params=["exact", "approximate", "exact-sealed", "approximate-sealed"])
def ann(request: pytest.FixtureRequest) -> tuple[AnnConfig, TemplateKey | None]:
    """How the store searches, and whether it seals templates (the contract holds alike)."""
    mode, _, sealed = str(request.param).partition("-")
    return (EXACT if mode == "exact" else APPROX), (KEY if sealed else None)


@pytest.fixture
def gallery(
    store_location: str, clock: Clock, ann: tuple[AnnConfig, TemplateKey | None]
) -> Iterator[RawGallery]:
    g = RawGallery(open_store(store_location, clock=clock, ann=ann[0], key=ann[1]), clock=clock)
    yield g
    g.close()


def probe(seed: int) -> Embeddings:
    return Embeddings(unit(seed)[None], MODEL)


def governed(gallery: RawGallery) -> GovernedGallery:
    """The gallery as every edge reaches it: the consent rules are the governed gallery's."""
    return GovernedGallery(gallery, AuditLog(gallery.store), tenant="default", actor="test")


def test_enrolment_without_consent_is_refused_and_writes_nothing(gallery: RawGallery) -> None:
    g = governed(gallery)
    with pytest.raises(ConsentError, match="no consent record"):
        g.enroll_samples("Ann", [sample(1)], None)
    assert gallery.identities() == []
    assert [r.action for r in g.audit.records()] == ["enroll_refused"]


def test_enrol_then_add_samples_under_the_same_consent(gallery: RawGallery) -> None:
    r = gallery.enroll("Ann", [sample(1), sample(2)], consent(), metadata={"team": "a"})
    assert r.created and len(r.added) == 2 and r.identity.sample_count == 2
    r2 = gallery.enroll("Ann", [sample(3), sample(1)])  # sample(1) again: a duplicate image
    assert not r2.created and len(r2.added) == 1 and r2.duplicates == 1
    ident = gallery.get("Ann", by="name")
    assert ident.sample_count == 3 and ident.metadata == {"team": "a"}
    assert gallery.get(ident.id).name == "Ann"  # by id as well as by name
    assert ident.consents[0].purpose == "building access"
    stored = gallery.samples("Ann", by="name")
    assert [s.quality for s in stored] == [{"inter_eye_px": 40.0}] * 3
    assert stored[0].box == (0.0, 0.0, 10.0, 10.0)
    # embeddings come back as enrolled, to float32 rounding: the gallery stores them moved
    # by its secret orthonormal transform (and sealed, with a key) and undoes that here
    back = sorted((s.embedding for s in stored), key=lambda v: float(v[0]))
    want = sorted((unit(i) for i in (1, 2, 3)), key=lambda v: float(v[0]))
    assert all(np.abs(a - b).max() < 1e-6 for a, b in zip(back, want, strict=True))


def test_expired_consent_blocks_enrolment_and_search(gallery: RawGallery, clock: Clock) -> None:
    gallery.enroll("Ann", [sample(1)], consent(expires=T0 + timedelta(days=10)))
    gallery.enroll("Bob", [sample(2)], consent())
    assert gallery.identify(probe(1), 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    clock.t = T0 + timedelta(days=11)
    res = gallery.identify(probe(1), 0.9)[0]
    assert res.identity is None  # lapsed: no longer searchable
    assert [c.name for c in res.candidates] == ["Bob"]
    with pytest.raises(ConsentError, match="no consent valid now"):
        governed(gallery).enroll_samples("Ann", [sample(3)], None)
    gallery.add_consent(
        "Ann",
        Consent(purpose="renewed", granted_by="Ann", granted_at=clock.t.isoformat()),
        by="name",
    )
    assert gallery.identify(probe(1), 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]


def test_search_is_open_set_with_ranked_candidates(gallery: RawGallery) -> None:
    for i, name in enumerate(["Ann", "Bob", "Cat"]):
        gallery.enroll(name, [sample(10 * i), sample(10 * i + 1)], consent())
    probes = Embeddings(np.stack([unit(11), unit(999)]), MODEL)
    res = gallery.identify(probes, threshold=0.9, k=2)
    assert res[0].identity.name == "Bob"  # type: ignore[union-attr]
    assert res[0].candidates[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(res[0].candidates) == 2 and res[0].candidates[1].score < 0.9
    assert res[1].identity is None and len(res[1].candidates) == 2
    # the best sample counts for each identity; scores agree with the dot product
    cands = gallery.search(Embeddings(unit(999)[None], MODEL), k=3)[0]
    expected = {
        name: max(float(unit(999) @ unit(s)) for s in (10 * i, 10 * i + 1))
        for i, name in enumerate(["Ann", "Bob", "Cat"])
    }
    assert [c.name for c in cands] == sorted(expected, key=lambda n: -expected[n])
    for c in cands:
        assert c.score == pytest.approx(expected[c.name], abs=1e-5)


def test_search_keeps_models_and_galleries_apart(gallery: RawGallery) -> None:
    gallery.enroll("Ann", [sample(1, model="other_model")], consent())
    other = RawGallery(gallery.store, "elsewhere")
    other.enroll("Zed", [sample(1)], consent())
    assert gallery.search(probe(1)) == [[]]
    assert gallery.search_size("other_model") == (1, 1)
    assert other.search(probe(1))[0][0].name == "Zed"
    assert gallery.store.galleries() == ["default", "elsewhere"]


def test_rename_and_conflicts(gallery: RawGallery) -> None:
    gallery.enroll("Ann", [sample(1)], consent())
    gallery.enroll("Bob", [sample(2)], consent())
    assert gallery.rename("Ann", "Anna", by="name").name == "Anna"
    with pytest.raises(ConflictError, match="'Bob' already exists"):
        gallery.rename("Anna", "Bob", by="name")
    with pytest.raises(NotFoundError, match="no identity named 'Ann'"):
        gallery.get("Ann", by="name")
    assert [i.name for i in gallery.identities()] == ["Anna", "Bob"]
    assert gallery.search(probe(1))[0][0].name == "Anna"


def test_delete_erases_every_sample_and_consent(gallery: RawGallery) -> None:
    ann = gallery.enroll("Ann", [sample(1), sample(2)], consent()).identity
    gallery.enroll("Bob", [sample(3)], consent())
    assert gallery.identify(probe(1), 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    receipt = gallery.delete("Ann", by="name")
    assert (receipt.samples_deleted, receipt.consents_deleted) == (2, 1)
    res = gallery.identify(probe(1), 0.9)[0]
    assert res.identity is None and [c.name for c in res.candidates] == ["Bob"]
    for table, col in (
        ("samples", "identity_id"),
        ("consents", "identity_id"),
        ("identities", "id"),
    ):
        rows = gallery.store.fetch(f"SELECT count(*) FROM {table} WHERE {col} = ?", (ann.id,))
        assert rows[0][0] == 0
    with pytest.raises(NotFoundError):
        gallery.delete("Ann", by="name")


def test_a_second_view_of_the_store_sees_changes(
    store_location: str, clock: Clock, ann: tuple[AnnConfig, TemplateKey | None]
) -> None:
    a = RawGallery(open_store(store_location, clock=clock, ann=ann[0], key=ann[1]), clock=clock)
    b = RawGallery(open_store(store_location, clock=clock, ann=ann[0], key=ann[1]), clock=clock)
    assert b.identify(probe(1), 0.9)[0].identity is None
    a.enroll("Ann", [sample(1)], consent())
    assert b.identify(probe(1), 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    a.delete("Ann", by="name")
    assert b.identify(probe(1), 0.9)[0].identity is None  # no stale cache or index
    a.enroll("Ann", [sample(5)], consent())  # a new Ann, with another face
    res = b.identify(probe(1), 0.9)[0]
    assert res.identity is None and res.candidates[0].score < 0.5
    a.close()
    b.close()


def test_move_a_gallery_to_the_other_store_and_back(
    gallery: RawGallery, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    gallery.enroll(
        "Ann", [sample(1), sample(2)], consent(T0 + timedelta(days=100)), metadata={"badge": "17"}
    )
    gallery.enroll("Bob", [sample(3)], consent())
    gallery.add_consent(
        "Bob", Consent(purpose="second", granted_by="Bob", granted_at=T0.isoformat()), by="name"
    )
    out = tmp_path / "export.json"
    assert export_gallery(gallery, out) == 2
    doc = json.loads(out.read_text())
    assert doc["format"] == "facelens-gallery"
    assert all(
        "image" not in s and "photo" not in s for i in doc["identities"] for s in i["samples"]
    )
    # into the other kind of store
    if is_postgres_url(gallery.store.location):
        target_location = str(tmp_path / "moved.db")
    else:
        target_location = str(request.getfixturevalue("pg_url"))
    other = RawGallery(open_store(target_location, clock=clock), clock=clock)
    assert import_gallery(other, out) == (2, 0)
    for name in ("Ann", "Bob"):
        a, b = gallery.get(name, by="name"), other.get(name, by="name")
        assert (a.id, a.name, a.metadata, a.created_at, a.updated_at) == (
            b.id,
            b.name,
            b.metadata,
            b.created_at,
            b.updated_at,
        )
        assert [c.to_dict() | {"id": None} for c in a.consents] == [
            c.to_dict() | {"id": None} for c in b.consents
        ]
        sa, sb = gallery.samples(name, by="name"), other.samples(name, by="name")
        assert [(s.id, s.model, s.quality, s.image_sha256, s.box, s.created_at) for s in sa] == [
            (s.id, s.model, s.quality, s.image_sha256, s.box, s.created_at) for s in sb
        ]
        # the same templates, to float32 rounding (each store's gallery has its own transform)
        assert all(
            np.abs(x.embedding - y.embedding).max() < 1e-6 for x, y in zip(sa, sb, strict=True)
        )
    assert other.identify(probe(2), 0.9)[0].identity.name == "Ann"  # type: ignore[union-attr]
    # importing again conflicts as a whole, or skips when asked
    with pytest.raises(ConflictError, match="nothing imported"):
        import_gallery(other, out)
    assert import_gallery(other, out, on_conflict="skip") == (0, 2)
    other.close()


def test_import_is_all_or_nothing(gallery: RawGallery, tmp_path: Path) -> None:
    gallery.enroll("Ann", [sample(1)], consent())
    gallery.enroll("Bob", [sample(2)], consent())
    out = tmp_path / "export.json"
    export_gallery(gallery, out)
    target = RawGallery(gallery.store, "target")
    target.enroll("Bob", [sample(7)], consent())  # clashes with the second identity by name
    doc = json.loads(out.read_text())
    out.write_text(json.dumps(doc))
    with pytest.raises(ConflictError, match="already"):  # same ids
        import_gallery(target, out)
    for ident in doc["identities"]:  # new ids: then only Bob's name clashes
        ident["id"] = ident["id"][::-1]
        for s in ident["samples"]:
            s["id"] = s["id"][::-1]
    out.write_text(json.dumps(doc))
    with pytest.raises(ConflictError, match="'Bob'"):
        import_gallery(target, out)
    assert [i.name for i in target.identities()] == ["Bob"]  # Ann was not half-imported
    doc["identities"][1]["samples"][0]["embedding"] = "AAAA"
    out.write_text(json.dumps(doc))
    with pytest.raises(GalleryFormatError, match="identity #2, sample #1"):
        import_gallery(RawGallery(gallery.store, "third"), out)
    assert RawGallery(gallery.store, "third").identities() == []


def test_schema_is_versioned_and_migrations_run_once(store_location: str) -> None:
    s = open_store(store_location)
    version = s.schema_version()
    assert version >= 1
    s.close()
    s2 = open_store(store_location)  # reopening migrates nothing
    assert s2.schema_version() == version and s2.galleries() == []
    s2.close()


RACER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from facelens.errors import NotFoundError
    from facelens.gallery import Consent, NewSample
    from facelens.gallery.gallery import RawGallery
    from facelens.gallery.stores import open_store

    location, who, action, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    g = RawGallery(open_store(location))
    c = Consent(purpose="p", granted_by="x", granted_at="2026-01-01T00:00:00+00:00")
    done = 0
    for i in range(n):
        name = f"P{i:03d}"
        if action == "enroll":
            v = np.random.default_rng(1000 * who + i).normal(size=128).astype(np.float32)
            s = NewSample(v / np.linalg.norm(v), "dlib_resnet_v1", {}, f"{who}-{i}".ljust(64, "0"))
            g.enroll(name, [s], c)
            done += 1
        else:
            try:
                g.delete(name, by="name")
                done += 1
            except NotFoundError:
                pass
    g.close()
    print(json.dumps({"done": done}))
    """
)


def _race(location: str, action: str, n: int) -> list[int]:
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, location, str(who), action, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for who in (1, 2)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout)["done"])
    return out


def test_racing_processes_lose_nothing_and_duplicate_nothing(store_location: str) -> None:
    n = 40
    assert _race(store_location, "enroll", n) == [n, n]
    g = RawGallery(open_store(store_location))
    people = g.identities()
    assert sorted(i.name for i in people) == [f"P{i:03d}" for i in range(n)]  # no duplicates
    assert all(i.sample_count == 2 for i in people)  # nothing lost: one sample from each
    assert sum(_race(store_location, "delete", n)) == n  # each deletion happened exactly once
    assert g.identities() == []
    assert g.store.fetch("SELECT count(*) FROM samples")[0][0] == 0
    assert g.store.fetch("SELECT count(*) FROM consents")[0][0] == 0
    g.close()


def test_identify_searches_as_deep_as_the_rule_needs(gallery: RawGallery) -> None:
    for i, name in enumerate(["Ann", "Bob", "Cat", "Dan", "Eve", "Fay"]):
        gallery.enroll(name, [sample(10 * i)], consent())
    p = probe(10)  # Bob's own sample: similarity 1 to Bob
    sims = sorted((float(unit(10) @ unit(10 * i)) for i in range(6)), reverse=True)
    rule = IdentifyRule(0.3, cohort=4, weight=0.5, fallback=0.99, name="open_set")
    res = gallery.identify(p, rule, k=1)[0]
    assert [c.name for c in res.candidates] == ["Bob"]  # trimmed to k after deciding
    assert res.decision_score == pytest.approx(sims[0] - 0.5 * np.mean(sims[1:5]), abs=1e-5)
    assert (res.identity is not None) == (res.decision_score >= 0.3)
    assert res.rule == "open_set" and res.threshold == 0.3
    # a rule the runners-up defeat: the same probe is unknown
    strict = IdentifyRule(res.decision_score + 0.01, cohort=4, weight=0.5, fallback=0.5)
    assert gallery.identify(p, strict, k=1)[0].identity is None
    # the gallery's default rule for its size: a plain similarity threshold for 6 people
    assert not gallery.rule(MODEL).normalised


def _chip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)


def test_templates_of_two_models_never_meet(gallery: RawGallery) -> None:
    # one image of Ann, embedded by two models; Bob has only the second model's template
    gallery.enroll("Ann", [sample(1), sample(1, model="other_model")], consent())
    gallery.enroll("Bob", [sample(2, model="other_model")], consent())
    ann = gallery.get("Ann", by="name")
    assert ann.sample_count == 1 and ann.models == {MODEL: 1, "other_model": 1}
    assert gallery.search_size(MODEL) == (1, 1)
    assert gallery.search_size("other_model") == (2, 2)
    # a probe equal to Bob's vector, but of MODEL: Bob (other_model only) is never a candidate
    res = gallery.search(Embeddings(unit(2)[None], MODEL), k=5)[0]
    assert [c.name for c in res] == ["Ann"] and res[0].score < 0.5
    assert gallery.search(Embeddings(unit(2)[None], "other_model"))[0][0].name == "Bob"
    assert gallery.models() == {MODEL: (1, 1), "other_model": (2, 2)}


def test_kept_chips_follow_the_setting_and_are_erased_with_the_person(
    gallery: RawGallery, tmp_path: Path
) -> None:
    chip = _chip(1)
    with_chip = dataclasses.replace(sample(1), chip=chip)
    gallery.enroll("Ann", [with_chip], consent())
    assert gallery.get("Ann", by="name").chips == 0  # not kept: the default
    assert gallery.settings() == {"keep_chips": False, "confirm": 1}
    assert gallery.configure(keep_chips=True) == {"keep_chips": True, "confirm": 1}
    gallery.enroll("Bob", [dataclasses.replace(sample(2), chip=_chip(2))], consent())
    gallery.enroll("Ann", [dataclasses.replace(sample(3), chip=_chip(3))])
    assert gallery.get("Bob", by="name").chips == 1 and gallery.get("Ann", by="name").chips == 1
    ((sha, back),) = gallery.chips("Bob", by="name")
    assert sha == sample(2).image_sha256 and np.array_equal(back, _chip(2))  # lossless
    # exported only when asked; imported only into a gallery that keeps chips
    plain, full = tmp_path / "plain.json", tmp_path / "full.json"
    export_gallery(gallery, plain)
    export_gallery(gallery, full, chips=True)
    assert all("chips" not in i for i in json.loads(plain.read_text())["identities"])
    assert sum(len(i.get("chips", [])) for i in json.loads(full.read_text())["identities"]) == 2
    keeping = RawGallery(open_store(str(tmp_path / "keeping.db")))
    keeping.configure(keep_chips=True)
    import_gallery(keeping, full)
    assert keeping.get("Bob", by="name").chips == 1
    not_keeping = RawGallery(open_store(str(tmp_path / "not-keeping.db")))
    import_gallery(not_keeping, full)
    assert not_keeping.get("Bob", by="name").chips == 0
    not_keeping.close()
    # erased with the identity
    receipt = gallery.delete("Bob", by="name")
    assert receipt.chips_deleted == 1
    bob_id = receipt.identity_id
    assert gallery.store.fetch("SELECT count(*) FROM chips WHERE identity_id = ?", (bob_id,)) == [
        (0,)
    ]
    # turning the setting off erases the gallery's chips (and only this gallery's)
    other = RawGallery(gallery.store, "elsewhere")
    other.configure(keep_chips=True)
    other.enroll("Cat", [dataclasses.replace(sample(4), chip=_chip(4))], consent())
    gallery.configure(keep_chips=False)
    assert gallery.get("Ann", by="name").chips == 0 and other.get("Cat", by="name").chips == 1
    with pytest.raises(ValueError, match="unknown gallery setting"):
        gallery.configure(colour="red")
    keeping.close()


def test_templates_of_a_new_model_are_added_to_the_same_images(gallery: RawGallery) -> None:
    gallery.enroll("Ann", [sample(1)], consent(expires=T0 + timedelta(days=5)))
    added = gallery.add_templates("Ann", [sample(1, model="other_model")], by="name")
    ann = gallery.get("Ann", by="name")
    assert len(added) == 1 and ann.models == {MODEL: 1, "other_model": 1}
    assert ann.sample_count == 1  # one image, templates of two models
