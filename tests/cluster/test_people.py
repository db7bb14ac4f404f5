"""``facelens cluster`` on the shared photos: groups, corrections that last, naming with
consent, erasure and retention reaching the archive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens.archive import Archive, IndexConfig, Indexer
from facelens.cluster import Clusterer, Clustering
from facelens.errors import (
    ConflictError,
    ConsentError,
    IdentityMismatchError,
    InputError,
    NotFoundError,
)
from facelens.gallery import Consent, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.govern import AuditLog, GovernedGallery
from facelens.govern.retention import Retention, RetentionPolicy
from facelens.pipeline import Pipeline

FACELENS = [sys.executable, "-m", "facelens"]
PORTRAITS = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")


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
    g = RawGallery.open(gallery_file)
    yield GovernedGallery(g, AuditLog(g.store), tenant="default", actor="test:archive")
    g.close()


def _person(path: str) -> str | None:
    parts = Path(path).parts
    return parts[-2] if parts[-2] in PORTRAITS else None


def _where(result: Clustering) -> dict[str, str]:
    return {f.id: c.id for c in result.clusters for f in c.faces}


def test_portraits_of_each_person_group_together_and_apart_from_the_others(
    governed: GovernedGallery,
) -> None:
    result = Clusterer(governed.archive()).run(governed)
    where = _where(result)
    owner: dict[str, Counter[str]] = {}
    for c in result.clusters:
        for f in c.faces:
            p = _person(f.path)
            if p:
                owner.setdefault(c.id, Counter())[p] += 1
    for cid, people in owner.items():
        assert len(people) == 1, f"cluster {cid} mixes {dict(people)}"
    for person in PORTRAITS:
        faces = [f for f in governed.archive().faces() if _person(f.path) == person]
        clusters = Counter(where.get(f.id) for f in faces)
        assert clusters.most_common(1)[0][1] >= len(faces) - 2, (person, clusters)
    assert not any(f.identity_id for c in result.clusters for f in c.faces)


def test_the_json_lists_clusters_and_unclustered_faces_with_absolute_paths(
    gallery_file: Path,
) -> None:
    r = subprocess.run(
        [*FACELENS, "cluster", "--gallery", str(gallery_file), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) >= {"clusters", "unclustered"} and len(doc["clusters"]) >= 8
    for c in doc["clusters"]:
        assert c["id"].startswith("c") and len(c["faces"]) >= 2
        for f in c["faces"]:
            assert set(f) == {"face_id", "path", "box"}
            assert Path(f["path"]).is_absolute() and Path(f["path"]).is_file()
            x1, y1, x2, y2 = f["box"]
            assert x2 > x1 and y2 > y1
    assert all(u["reason"] in ("alone", "poor_quality") for u in doc["unclustered"])

    first = doc["clusters"][0]
    shown = subprocess.run(
        [*FACELENS, "cluster", "show", first["id"], "--gallery", str(gallery_file), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    one = json.loads(shown.stdout)
    assert {f["face_id"] for f in one["faces"]} == {f["face_id"] for f in first["faces"]}
    assert one["photos"] == sorted({f["path"] for f in first["faces"]})
    missing = subprocess.run(
        [*FACELENS, "cluster", "show", "cnothere", "--gallery", str(gallery_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 5 and "cnothere" in missing.stderr


def test_corrections_survive_reclustering_and_new_indexing(
    governed: GovernedGallery, data: Path, fused: Pipeline, tmp_path: Path
) -> None:
    archive = governed.archive()
    c = Clusterer(archive)
    first = c.run(governed)
    big, second, third = first.clusters[0], first.clusters[1], first.clusters[2]

    merged = c.merge(second.id, third.id)
    part = [big.faces[0].id, big.faces[1].id]
    rest_id, part_id = c.split(big.id, part)
    loner = first.clusters[3].faces[0].id
    assert c.move(loner) is None

    # new photos indexed (a copy of a group shot), then grouped again from scratch
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copyfile(data / "faces" / "bbt" / "bbt2.jpg", extra / "copy.jpg")
    Indexer(archive, lambda: fused, IndexConfig(workers=1)).run([extra])
    again = _where(c.run(governed))

    assert again[second.faces[0].id] == again[third.faces[0].id]  # merged stays merged
    assert all(again[f.id] == again[second.faces[0].id] for f in (*second.faces, *third.faces))
    assert again[part[0]] == again[part[1]] != again[big.faces[2].id]  # split stays split
    assert loner not in again or again[loner] != again.get(first.clusters[3].faces[1].id)
    assert merged and rest_id != part_id


def test_moving_a_face_into_another_cluster_lasts(governed: GovernedGallery) -> None:
    c = Clusterer(governed.archive())
    first = c.run(governed)
    face, target = first.clusters[0].faces[-1].id, first.clusters[1]
    c.move(face, target.id)
    again = _where(c.run(governed))
    assert again[face] == again[target.faces[0].id]
    assert again[face] != again[first.clusters[0].faces[0].id]
    with pytest.raises(NotFoundError):
        c.move("no-such-face")
    with pytest.raises(InputError):  # the target's id now (the moved face may be its smallest)
        c.split(again[target.faces[0].id], ["not-a-member"])


def test_naming_without_consent_is_refused_and_enrols_nobody(
    governed: GovernedGallery, gallery_file: Path
) -> None:
    c = Clusterer(governed.archive())
    cid = c.run(governed).clusters[0].id
    with pytest.raises(ConsentError):
        c.name(governed, cid, "Somebody", None)
    assert governed.identities() == []
    assert cid in set(c.archive.assignments().values())
    r = subprocess.run(
        [*FACELENS, "cluster", "name", cid, "Somebody", "--gallery", str(gallery_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 6 and "consent" in r.stderr
    assert governed.identities() == []


def _identified(result: Clustering) -> dict[str, str]:
    return {f.id: i for f, i in result.identified}


def test_a_named_cluster_is_an_enrolment_and_its_person_leaves_the_clusters(
    governed: GovernedGallery,
) -> None:
    archive = governed.archive()
    c = Clusterer(archive)
    first = c.run(governed)
    amy = next(x for x in first.clusters if any(_person(f.path) == "amy" for f in x.faces))
    consent = Consent("family photo album", "Amy", datetime.now(UTC).isoformat())
    result = c.name(governed, amy.id, "Amy", consent)
    assert result.created and result.identity.name == "Amy"
    assert [r.action for r in governed.audit.records()][-1] == "enroll"

    again = c.run(governed)
    named = _identified(again)
    assert all(named.get(f.id) == result.identity.id for f in amy.faces)
    assert not any(f.id in named for x in again.clusters for f in x.faces)

    # "not this person": that face is never named as Amy again
    wrong = amy.faces[0].id
    c.not_person(wrong, result.identity.id)
    assert _identified(c.run(governed)).get(wrong) != result.identity.id

    # erasing Amy erases the archive's faces named as her
    governed.delete("Amy", by="name")
    left = {f.id for f in archive.faces()}
    assert not ({f.id for f in amy.faces} - {wrong}) & left


def test_a_group_of_someone_else_is_refused_under_an_enrolled_name(
    governed: GovernedGallery,
) -> None:
    c = Clusterer(governed.archive())
    first = c.run(governed)

    def group_of(who: str) -> str:
        return next(x.id for x in first.clusters if any(_person(f.path) == who for f in x.faces))

    amy, penny = group_of("amy"), group_of("penny")
    consent = Consent("family photo album", "Amy", datetime.now(UTC).isoformat())
    enrolled = c.name(governed, amy, "Amy", consent).identity
    # Penny's faces named "Amy": adding samples to Amy, so they must be Amy's
    with pytest.raises(IdentityMismatchError, match="do not match the templates of 'Amy'"):
        c.name(governed, penny, "Amy", None)
    assert governed.get(enrolled.id).sample_count == enrolled.sample_count
    assert penny in {x.id for x in Clusterer(governed.archive()).run(governed).clusters}
    assert [r.action for r in governed.audit.records()][-2] == "enroll_refused"
    # a look-alike of the name is refused too, not made a second "Amy"
    with pytest.raises(ConflictError, match="looks the same as 'Amy'"):
        c.name(governed, penny, "AMY", consent)


def test_retention_erases_unnamed_faces_and_keeps_named_ones(
    gallery_file: Path, data: Path, fused: Pipeline
) -> None:
    # the photos were indexed now; 31 days later, with a 30-day policy, a person is named
    later = datetime.now(UTC) + timedelta(days=31)
    with SqliteStore(gallery_file, clock=lambda: later) as store:
        audit = AuditLog(store)
        governed = GovernedGallery(RawGallery(store), audit, tenant="default", actor="test")
        Retention(store, audit).set_policy("default", RetentionPolicy(max_idle_days=30), "t")
        c = Clusterer(Archive(store, "default"))
        cluster = c.run(governed).clusters[0]
        c.name(governed, cluster.id, "P", Consent("album", "P", later.isoformat()))

        result = Retention(store, audit).purge("test:retention", galleries=["default"])
        assert result.archive_faces > 20 and result.to_dict()["archive_faces_erased"] > 20
        kept = Archive(store, "default").faces()
        assert {f.id for f in kept} == {f.id for f in cluster.faces}
        assert all(f.identity_id for f in kept)
        # their unchanged photos are not indexed again
        again = Indexer(Archive(store, "default"), lambda: fused, IndexConfig(workers=1)).run(
            [data / "faces" / "bbt"]
        )
        assert again.indexed == 0
        assert "purge_archive" in [r.action for r in audit.records()]
        assert [i.name for i in governed.identities()] == ["P"]


LFW_PEOPLE = ("Colin_Powell", "Jennifer_Capriati", "Serena_Williams", "Tony_Blair")


def test_lfw_people_are_grouped_apart_among_distractors(
    data: Path, fused: Pipeline, tmp_path: Path
) -> None:
    """Eight photos each of four people (two pairs of the same sex and field), and twenty
    people of one photo each: each person ends in one group of their own."""
    lfw = data / "lfw" / "images"
    folder = tmp_path / "lfw"
    folder.mkdir()
    for person in LFW_PEOPLE:
        for src in sorted((lfw / person).iterdir())[:8]:
            shutil.copyfile(src, folder / src.name)
    singles = [p for p in sorted(lfw.iterdir()) if len(list(p.iterdir())) == 1][:20]
    for p in singles:
        src = next(p.iterdir())
        shutil.copyfile(src, folder / src.name)
    with SqliteStore(tmp_path / "g.db") as store:
        archive = Archive(store, "default")
        Indexer(archive, lambda: fused, IndexConfig(workers=1)).run([folder])
        result = Clusterer(archive).run()
    # each photo's labelled face is the one nearest its centre (LFW's convention)
    central: dict[str, tuple[float, str]] = {}
    for c in result.clusters:
        for f in c.faces:
            d = abs((f.box[0] + f.box[2]) / 2 - 125) + abs((f.box[1] + f.box[3]) / 2 - 125)
            if f.path not in central or d < central[f.path][0]:
                central[f.path] = (d, c.id)
    groups: dict[str, Counter[str]] = {}
    for path, (_, cid) in central.items():
        groups.setdefault(cid, Counter())[Path(path).name.rsplit("_", 1)[0]] += 1
    for person in LFW_PEOPLE:
        mine = {cid: n[person] for cid, n in groups.items() if n[person]}
        best = max(mine, key=lambda cid: mine[cid])
        assert mine[best] >= 7, (person, mine)  # at most one photo of eight astray
        assert sum(groups[best].values()) - groups[best][person] <= 1, groups[best]


def test_faces_too_poor_to_judge_stay_unclustered(
    data: Path, fused: Pipeline, tmp_path: Path
) -> None:
    """A group shot at a quarter of its size: its four faces are still found, eyes 9-11 px
    apart, and are left out of every cluster instead of joining the sharp copies'."""
    import cv2

    folder = tmp_path / "photos"
    shutil.copytree(data / "faces" / "bbt", folder)
    big = cv2.imread(str(folder / "bbt1.jpg"))
    cv2.imwrite(str(folder / "tiny.jpg"), cv2.resize(big, None, fx=0.25, fy=0.25))
    with SqliteStore(tmp_path / "g.db") as store:
        archive = Archive(store, "default")
        Indexer(archive, lambda: fused, IndexConfig(workers=1)).run([folder])
        result = Clusterer(archive).run()
    poor = [f for f, reason in result.unclustered if reason == "poor_quality"]
    in_clusters = [f for c in result.clusters for f in c.faces]
    assert len([f for f in poor if f.path.endswith("tiny.jpg")]) == 4
    assert not [f for f in in_clusters if f.path.endswith("tiny.jpg")]
    assert len([f for f in in_clusters if f.path.endswith("bbt1.jpg")]) == 4
