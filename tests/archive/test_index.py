"""``facelens index``: every face of a folder, resumable, local paths only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens.archive import Archive, IndexConfig, Indexer, scan
from facelens.archive.pictures import face_photo, face_thumbnail
from facelens.errors import InputError, NotFoundError
from facelens.gallery import SqliteStore

FACELENS = [sys.executable, "-m", "facelens"]


def _snapshot(archive: Archive) -> dict[str, tuple[str, tuple[float, ...], bytes]]:
    """face id -> (path, box, fused template bytes): what a run left in the archive."""
    ids, vecs = archive.templates(next(m for m in archive.models() if m.startswith("fusion")))
    faces = {f.id: f for f in archive.faces()}
    return {
        i: (faces[i].path, tuple(round(v, 2) for v in faces[i].box), v.round(4).tobytes())
        for i, v in zip(ids, vecs, strict=True)
    }


def test_every_face_of_every_photo_is_indexed_with_box_quality_and_templates(
    photos: Path, archive: Archive, index_with: Callable[[Archive], Indexer]
) -> None:
    s = index_with(archive).run([photos])
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    assert s.seen == s.indexed == len(files) and not s.failed
    faces = archive.faces()
    group = [f for f in faces if f.path.endswith("bbt1.jpg")]
    assert len(group) >= 4  # a group shot: several faces, each its own row
    assert all(f.path == str(photos / "bbt1.jpg") for f in group)
    assert {"inter_eye_px", "yaw_deg", "sharpness"} <= set(group[0].quality)
    models = archive.models()
    assert len(models) == 3 and all(n == len(faces) for n in models.values())
    _, vecs = archive.templates(next(iter(models)))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_two_galleries_of_one_store_index_the_same_photos_each_on_their_own(
    photos: Path, archive: Archive, index_with: Callable[[Archive], Indexer]
) -> None:
    family = Archive(archive.store, "family")
    for a in (archive, family):
        s = index_with(a).run([photos / "amy", photos / "bbt1.jpg"])
        assert s.indexed == s.seen and not s.failed and s.faces >= 5
    mine, theirs = _snapshot(archive), _snapshot(family)
    assert len(mine) == len(theirs) and not set(mine) & set(theirs)  # each gallery its own ids
    assert sorted(mine.values()) == sorted(theirs.values())
    assert family.expire("9999", "9999") == len(theirs)  # retention in one gallery ...
    assert not family.faces() and _snapshot(archive) == mine  # ... leaves the other alone
    assert family.summary()["faces"] == 0 and archive.summary()["faces"] == len(mine)


def test_a_second_run_does_nothing_a_changed_file_is_redone_a_deleted_one_forgotten(
    photos: Path, archive: Archive, index_with: Callable[[Archive], Indexer]
) -> None:
    index_with(archive).run([photos])
    before = _snapshot(archive)
    again = index_with(archive).run([photos])
    assert (again.indexed, again.faces, again.removed) == (0, 0, 0)
    assert again.unchanged == again.seen and _snapshot(archive) == before

    # same content, new time: the hash says unchanged, nothing is analysed again
    amy = photos / "amy" / "amy1.png"
    os.utime(amy, ns=(time.time_ns(), time.time_ns()))
    touched = index_with(archive).run([photos])
    assert (touched.indexed, touched.unchanged) == (0, touched.seen)

    # new content at the same path: that file alone is redone, its faces replaced
    old_ids = {i for i, v in before.items() if v[0] == str(amy)}
    shutil.copyfile(photos / "raj" / "raj1.png", amy)
    changed = index_with(archive).run([photos])
    assert (changed.indexed, changed.changed) == (1, 1)
    now = _snapshot(archive)
    new_ids = {i for i, v in now.items() if v[0] == str(amy)}
    assert new_ids and not new_ids & old_ids
    assert {i: v for i, v in now.items() if v[0] != str(amy)} == {
        i: v for i, v in before.items() if v[0] != str(amy)
    }

    (photos / "bbt1.jpg").unlink()
    gone = index_with(archive).run([photos])
    assert gone.removed == 1
    assert not [f for f in archive.faces() if f.path.endswith("bbt1.jpg")]
    assert str(photos / "bbt1.jpg") not in archive.files()


def test_an_unreadable_file_is_listed_and_the_rest_indexed(
    photos: Path, archive: Archive, index_with: Callable[[Archive], Indexer]
) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (photos / "empty.png").write_bytes(b"")
    s = index_with(archive).run([photos])
    assert sorted(Path(p).name for p, _ in s.failed) == ["broken.jpg", "empty.png"]
    assert all(str(photos) not in reason for _, reason in s.failed)  # reasons, not paths
    assert archive.summary()["faces"] > 10
    assert index_with(archive).run([photos]).indexed == 0  # not retried until changed


def test_the_command_exits_3_when_a_file_could_not_be_read(tmp_path: Path, data: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(data / "faces" / "bbt" / "amy" / "amy1.png", folder / "amy.png")
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    cmd = [*FACELENS, "index", str(folder), "--json", "--gallery", str(tmp_path / "g.db")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)  # the summary is printed all the same
    assert doc["faces"] == 1 and [Path(f["path"]).name for f in doc["failed"]] == ["bomb.png"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0  # not retried until it changes


def test_only_local_paths_are_indexed(tmp_path: Path) -> None:
    for bad in ("http://example.com/photos/", "rtsp://camera/stream", str(tmp_path / "nope")):
        with pytest.raises(InputError):
            list(scan([bad]))
    r = subprocess.run(
        [*FACELENS, "index", "https://example.com/a.jpg", "--gallery", str(tmp_path / "g.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3 and "only local folders" in r.stderr
    assert not (tmp_path / "g.db").exists()


def _files_done(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return int(c.execute("SELECT COUNT(*) FROM archive_files").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_mid_run_then_resume_gives_the_same_index(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(data / "faces" / "face_recognition", folder)
    total = sum(1 for _ in scan([folder]))
    killed, clean = tmp_path / "killed.db", tmp_path / "clean.db"
    cmd = [*FACELENS, "index", str(folder), "--workers", "1", "--json", "--gallery"]
    proc = subprocess.Popen(
        [*cmd, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _files_done(killed) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    partial = _files_done(killed)
    assert 8 <= partial < total

    resumed = subprocess.run([*cmd, str(killed)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["indexed"] == total - partial and doc["archive"]["files"] == total
    fresh = subprocess.run([*cmd, str(clean)], capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    with SqliteStore(killed) as one, SqliteStore(clean) as other:
        a, b = _snapshot(Archive(one, "default")), _snapshot(Archive(other, "default"))
    assert a == b and len(a) > 20


def test_videos_are_indexed_at_sampled_frames_with_their_times(
    data: Path, tmp_path: Path, archive: Archive, fused: object
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copyfile(data / "video" / "hamilton_clip.mp4", folder / "clip.mp4")
    shutil.copyfile(data / "faces" / "bbt" / "amy" / "amy1.png", folder / "amy.png")
    config = IndexConfig(workers=1, video_every_s=4.0, video_max_frames=2)
    without = Indexer(archive, lambda: fused, config).run([folder])
    assert without.seen == 1  # videos only when asked
    s = Indexer(archive, lambda: fused, config).run([folder], videos=True)
    assert s.indexed == 1 and not s.failed
    frames = [f for f in archive.faces() if f.path.endswith("clip.mp4")]
    times = [f.time_s for f in frames]
    assert frames and all(t is not None and min(t, abs(t - 4.0)) < 0.1 for t in times)
    assert len({f.frame for f in frames}) <= 2 and all(f.time_s is not None for f in frames)

    # a video face's picture is its frame, while the video is as indexed
    known = archive.file_state(str(folder / "clip.mp4"))
    jpeg = face_thumbnail(frames[0], known=known)
    thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape == (112, 112, 3) and thumb.std() > 10
    os.utime(folder / "clip.mp4", ns=(time.time_ns(), time.time_ns()))
    with pytest.raises(NotFoundError):
        face_photo(frames[0], known=known)


def test_a_sealed_store_keeps_the_archive_templates_sealed(
    photos: Path, tmp_path: Path, index_with: Callable[[Archive], Indexer]
) -> None:
    from facelens.errors import GalleryKeyError
    from facelens.gallery.protect import TemplateKey, is_sealed

    key = TemplateKey(bytes(range(32)))
    path = tmp_path / "sealed.db"
    with SqliteStore(path, key=key) as store:
        archive = Archive(store, "default")
        index_with(archive).run([photos / "amy"])
        model = next(iter(archive.models()))
        ids, vecs = archive.templates(model)
        assert len(ids) == 5 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    with closing(sqlite3.connect(path)) as db:
        raw = db.execute("SELECT template FROM archive_templates").fetchall()
    assert raw and all(is_sealed(bytes(r[0])) for r in raw)
    with pytest.raises(GalleryKeyError):
        SqliteStore(path).close()
