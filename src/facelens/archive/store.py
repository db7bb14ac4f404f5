"""The archive's tables in the gallery's store, and the one way to read and write them.

Migrations run through ``Tables.apply_migrations`` (component ``archive``), so SQLite
and PostgreSQL get the same tables. Templates are kept as the store keeps biometric data:
sealed with its key when it has one (``Tables.protect``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.gallery.contract import Db, Tables

__all__ = ["Archive", "ArchiveFace", "FileState", "ensure_archive_schema", "forget_identity_in"]

COMPONENT = "archive"

_TABLES = """
    CREATE TABLE archive_files (
        gallery     TEXT NOT NULL,
        path        TEXT NOT NULL,
        size        {bigint} NOT NULL,
        mtime_ns    {bigint} NOT NULL,
        sha256      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        faces       INTEGER NOT NULL,
        error       TEXT,
        indexed_at  TEXT NOT NULL,
        expired_at  TEXT,
        PRIMARY KEY (gallery, path)
    );
    CREATE TABLE archive_faces (
        id          TEXT PRIMARY KEY,
        gallery     TEXT NOT NULL,
        path        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        frame       INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        time_s      {real},
        x1 {real} NOT NULL, y1 {real} NOT NULL, x2 {real} NOT NULL, y2 {real} NOT NULL,
        landmarks   {blob},
        quality     TEXT NOT NULL,
        identity_id TEXT,
        indexed_at  TEXT NOT NULL
    );
    CREATE INDEX archive_faces_path ON archive_faces(gallery, path);
    CREATE INDEX archive_faces_identity ON archive_faces(identity_id);
    CREATE TABLE archive_templates (
        face_id  TEXT NOT NULL REFERENCES archive_faces(id) ON DELETE CASCADE,
        model    TEXT NOT NULL,
        template {blob} NOT NULL,
        PRIMARY KEY (face_id, model)
    );
    CREATE TABLE archive_links (
        gallery    TEXT NOT NULL,
        kind       TEXT NOT NULL,
        a          TEXT NOT NULL,
        b          TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (gallery, kind, a, b)
    );
    CREATE INDEX archive_links_b ON archive_links(gallery, b);
    CREATE TABLE archive_clusters (
        gallery TEXT NOT NULL,
        face_id TEXT NOT NULL REFERENCES archive_faces(id) ON DELETE CASCADE,
        cluster TEXT NOT NULL,
        PRIMARY KEY (gallery, face_id)
    );
    CREATE INDEX archive_clusters_cluster ON archive_clusters(gallery, cluster);
"""
# step 2: when each gallery's faces were last grouped
_GROUPINGS = "CREATE TABLE archive_groupings (gallery TEXT PRIMARY KEY, grouped_at TEXT NOT NULL);"

_TYPES = {
    "sqlite": {"blob": "BLOB", "bigint": "INTEGER", "real": "REAL"},
    "postgresql": {"blob": "BYTEA", "bigint": "BIGINT", "real": "DOUBLE PRECISION"},
}
MIGRATIONS = {d: (_TABLES.format(**t), _GROUPINGS) for d, t in _TYPES.items()}

# the link kinds a user's corrections are kept as (``facelens.cluster.constraints``)
LINK_KINDS = ("same", "apart", "not_identity")


@dataclass(frozen=True)
class FileState:
    """What the archive knows of one file: enough to tell whether it changed."""

    size: int
    mtime_ns: int
    sha256: str
    expired: bool


@dataclass(frozen=True)
class ArchiveFace:
    """One indexed face (never a name: see ``identity_id``).

    Attributes:
        id: stable id (the same file content at the same path gives the same id).
        path: the absolute path of its photo or video.
        sha256: the file's content hash when it was indexed.
        frame: the video frame (0 for a photo); ``time_s``: its time in the video.
        box: ``(x1, y1, x2, y2)`` in the photo.
        quality: quality measures (``facelens.quality``).
        identity_id: the enrolled identity it was named as, else None.
    """

    id: str
    path: str
    sha256: str
    frame: int
    time_s: float | None
    box: tuple[float, float, float, float]
    quality: dict[str, float]
    identity_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"face_id": self.id, "path": self.path, "box": [round(v, 1) for v in self.box]}


_FACE_COLS = "f.id, f.path, f.sha256, f.frame, f.time_s, f.x1, f.y1, f.x2, f.y2, f.quality, \
f.identity_id"


def _face(row: Sequence[Any]) -> ArchiveFace:
    return ArchiveFace(
        id=row[0],
        path=row[1],
        sha256=row[2],
        frame=int(row[3]),
        time_s=None if row[4] is None else float(row[4]),
        box=(float(row[5]), float(row[6]), float(row[7]), float(row[8])),
        quality=json.loads(row[9]),
        identity_id=row[10],
    )


def _state(row: Sequence[Any]) -> FileState:
    """(size, mtime_ns, sha256, expired_at) -> ``FileState``."""
    return FileState(int(row[0]), int(row[1]), row[2], row[3] is not None)


def _chunks(items: Sequence[str], n: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Archive:
    """The indexed faces of one gallery in a store.

    Args:
        store: the gallery's store (its tables are created on first use).
        gallery: the stored gallery name.
    """

    def __init__(self, store: Tables, gallery: str) -> None:
        self.store, self.gallery = store, gallery
        ensure_archive_schema(store)

    # -- files ------------------------------------------------------------------------------

    def files(self) -> dict[str, FileState]:
        """Every file indexed (or tried) so far, by path."""
        rows = self.store.fetch(
            "SELECT path, size, mtime_ns, sha256, expired_at FROM archive_files WHERE gallery = ?",
            (self.gallery,),
        )
        return {r[0]: _state(r[1:]) for r in rows}

    def file_state(self, path: str) -> FileState | None:
        """What the archive knows of one file (None: not indexed)."""
        rows = self.store.fetch(
            "SELECT size, mtime_ns, sha256, expired_at FROM archive_files "
            "WHERE gallery = ? AND path = ?",
            (self.gallery, path),
        )
        return _state(rows[0]) if rows else None

    def write(self, results: Iterable[Any], now: str) -> int:
        """Store a batch of ``facelens.archive.index.FileResult`` in one transaction: each
        file's previous faces are replaced by its new ones. Returns the faces written."""
        written = 0
        with self.store.transaction(bump=False) as db:
            for r in results:
                if r.unchanged:
                    db.execute(
                        "UPDATE archive_files SET size = ?, mtime_ns = ? "
                        "WHERE gallery = ? AND path = ?",
                        (r.size, r.mtime_ns, self.gallery, r.path),
                    )
                    continue
                self._drop_faces(db, [r.path])
                db.execute(
                    "DELETE FROM archive_files WHERE gallery = ? AND path = ?",
                    (self.gallery, r.path),
                )
                db.execute(
                    "INSERT INTO archive_files(gallery, path, size, mtime_ns, sha256, kind, "
                    "faces, error, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.gallery,
                        r.path,
                        r.size,
                        r.mtime_ns,
                        r.sha256,
                        r.kind,
                        len(r.faces),
                        r.error,
                        now,
                    ),
                )
                for f in r.faces:
                    self._insert_face(db, r, f, now)
                    written += 1
        return written

    def _insert_face(self, db: Db, r: Any, f: Any, now: str) -> None:
        x1, y1, x2, y2 = f.box
        fid = face_id(self.gallery, r.path, r.sha256, f.frame, f.n)
        db.execute(
            "INSERT INTO archive_faces(id, gallery, path, sha256, frame, n, time_s, x1, y1, "
            "x2, y2, landmarks, quality, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fid,
                self.gallery,
                r.path,
                r.sha256,
                f.frame,
                f.n,
                f.time_s,
                x1,
                y1,
                x2,
                y2,
                f.landmarks,
                json.dumps(f.quality, sort_keys=True),
                now,
            ),
        )
        for model, vector in f.templates.items():
            data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
            db.execute(
                "INSERT INTO archive_templates(face_id, model, template) VALUES (?, ?, ?)",
                (fid, model, self.store.protect(data, _purpose(fid, model))),
            )

    def _drop_faces(self, db: Db, paths: Sequence[str]) -> int:
        gone = 0
        for part in _chunks(paths):
            marks = ", ".join("?" * len(part))
            ids = [
                r[0]
                for r in db.execute(
                    f"SELECT id FROM archive_faces WHERE gallery = ? AND path IN ({marks})",
                    (self.gallery, *part),
                ).fetchall()
            ]
            gone += self._drop_ids(db, ids)
        return gone

    def _drop_ids(self, db: Db, ids: Sequence[str]) -> int:
        for part in _chunks(ids):
            marks = ", ".join("?" * len(part))
            db.execute(f"DELETE FROM archive_templates WHERE face_id IN ({marks})", tuple(part))
            db.execute(f"DELETE FROM archive_clusters WHERE face_id IN ({marks})", tuple(part))
            db.execute(
                f"DELETE FROM archive_links WHERE gallery = ? AND (a IN ({marks}) "
                f"OR b IN ({marks}))",
                (self.gallery, *part, *part),
            )
            db.execute(f"DELETE FROM archive_faces WHERE id IN ({marks})", tuple(part))
        return len(ids)

    def forget(self, paths: Sequence[str]) -> int:
        """Forget files (deleted from disk): their rows and every face of them, one
        transaction. Returns the faces removed."""
        with self.store.transaction(bump=False) as db:
            gone = self._drop_faces(db, paths)
            for part in _chunks(paths):
                marks = ", ".join("?" * len(part))
                db.execute(
                    f"DELETE FROM archive_files WHERE gallery = ? AND path IN ({marks})",
                    (self.gallery, *part),
                )
        return gone

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of each file that could not be indexed."""
        rows = self.store.fetch(
            "SELECT path, error FROM archive_files WHERE gallery = ? AND error IS NOT NULL "
            "ORDER BY path",
            (self.gallery,),
        )
        return [(r[0], r[1]) for r in rows]

    def summary(self) -> dict[str, int]:
        rows = self.store.fetch(  # faces still kept (retention erases some, files stay)
            "SELECT COUNT(*), (SELECT COUNT(*) FROM archive_faces WHERE gallery = ?), "
            "COALESCE(SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END), 0) "
            "FROM archive_files WHERE gallery = ?",
            (self.gallery, self.gallery),
        )
        files, faces, failed = (int(v) for v in rows[0])
        return {"files": files, "faces": faces, "failed": failed}

    # -- faces ------------------------------------------------------------------------------

    def faces(self, ids: Sequence[str] | None = None) -> list[ArchiveFace]:
        """Indexed faces (all, or those of ``ids``), in path and position order."""
        order = " ORDER BY f.path, f.frame, f.n"
        if ids is None:
            rows = self.store.fetch(
                f"SELECT {_FACE_COLS} FROM archive_faces f WHERE f.gallery = ?{order}",
                (self.gallery,),
            )
            return [_face(r) for r in rows]
        out: list[ArchiveFace] = []
        for part in _chunks(list(ids)):
            marks = ", ".join("?" * len(part))
            rows = self.store.fetch(
                f"SELECT {_FACE_COLS} FROM archive_faces f WHERE f.gallery = ? "
                f"AND f.id IN ({marks}){order}",
                (self.gallery, *part),
            )
            out.extend(_face(r) for r in rows)
        return out

    def face(self, face_id: str) -> ArchiveFace | None:
        found = self.faces([face_id])
        return found[0] if found else None

    def templates(
        self, model: str, ids: Sequence[str] | None = None
    ) -> tuple[list[str], NDArray[np.float32]]:
        """(face ids, (N, D) templates) of ``model`` (of every face, or of ``ids``), in face
        id order."""
        sql = (
            "SELECT t.face_id, t.template FROM archive_templates t "
            "JOIN archive_faces f ON f.id = t.face_id WHERE f.gallery = ? AND t.model = ?"
        )
        if ids is None:
            rows = self.store.fetch(sql + " ORDER BY t.face_id", (self.gallery, model))
        else:
            rows = []
            for part in _chunks(list(ids)):
                marks = ", ".join("?" * len(part))
                rows += self.store.fetch(
                    f"{sql} AND t.face_id IN ({marks})", (self.gallery, model, *part)
                )
            rows.sort(key=lambda r: r[0])
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        ids = [r[0] for r in rows]
        vecs = [
            np.frombuffer(self.store.unprotect(r[1], _purpose(r[0], model)), "<f4") for r in rows
        ]
        return ids, np.vstack(vecs).astype(np.float32)

    def models(self) -> dict[str, int]:
        """Templates per model tag."""
        rows = self.store.fetch(
            "SELECT t.model, COUNT(*) FROM archive_templates t "
            "JOIN archive_faces f ON f.id = t.face_id WHERE f.gallery = ? GROUP BY t.model",
            (self.gallery,),
        )
        return {r[0]: int(r[1]) for r in rows}

    def set_identity(self, face_ids: Sequence[str], identity_id: str | None) -> None:
        """Mark faces as the enrolled identity they were named as (or unmark them)."""
        with self.store.transaction(bump=False) as db:
            for part in _chunks(list(face_ids)):
                marks = ", ".join("?" * len(part))
                db.execute(
                    f"UPDATE archive_faces SET identity_id = ? WHERE gallery = ? "
                    f"AND id IN ({marks})",
                    (identity_id, self.gallery, *part),
                )

    _EXPIRED = "FROM archive_faces WHERE gallery = ? AND identity_id IS NULL AND indexed_at < ?"

    def expirable(self, indexed_before: str) -> int:
        """How many unnamed faces were indexed before ``indexed_before``."""
        return int(
            self.store.fetch(f"SELECT COUNT(*) {self._EXPIRED}", (self.gallery, indexed_before))[0][
                0
            ]
        )

    def expire(self, indexed_before: str, now: str) -> int:
        """Retention: erase the unnamed faces indexed before ``indexed_before``."""
        with self.store.transaction(bump=False) as db:
            return self.expire_in(db, indexed_before, now)

    def expire_in(self, db: Db, indexed_before: str, now: str) -> int:
        """``expire`` in a caller's transaction (retention's, with its audit record). The
        files stay listed (as expired) so that an unchanged photo is not indexed again."""
        rows = db.execute(
            f"SELECT id, path {self._EXPIRED}", (self.gallery, indexed_before)
        ).fetchall()
        paths = sorted({r[1] for r in rows})
        for part in _chunks(paths):
            marks = ", ".join("?" * len(part))
            db.execute(
                f"UPDATE archive_files SET expired_at = ? WHERE gallery = ? AND path IN ({marks})",
                (now, self.gallery, *part),
            )
        return self._drop_ids(db, [r[0] for r in rows])

    # -- clusters and corrections (read and written by ``facelens.cluster``) ------------------

    def links(self) -> list[tuple[str, str, str]]:
        """(kind, a, b) of every correction kept."""
        rows = self.store.fetch(
            "SELECT kind, a, b FROM archive_links WHERE gallery = ? ORDER BY created_at, a, b",
            (self.gallery,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def add_links(self, links: Sequence[tuple[str, str, str]], now: str) -> None:
        for kind, _, _ in links:
            if kind not in LINK_KINDS:
                raise ValueError(f"unknown link kind {kind!r}")
        with self.store.transaction(bump=False) as db:
            for kind, a, b in links:
                if kind != "not_identity":
                    a, b = min(a, b), max(a, b)
                db.execute(
                    "INSERT INTO archive_links(gallery, kind, a, b, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (self.gallery, kind, a, b, now),
                )

    def grouped_at(self) -> str | None:
        """When the faces were last grouped (None: never; a group can be empty of clusters
        when every face is alone, too poor or of an enrolled person)."""
        rows = self.store.fetch(
            "SELECT grouped_at FROM archive_groupings WHERE gallery = ?", (self.gallery,)
        )
        return str(rows[0][0]) if rows else None

    def assignments(self) -> dict[str, str]:
        """face id -> cluster id, as last clustered (and corrected since)."""
        rows = self.store.fetch(
            "SELECT face_id, cluster FROM archive_clusters WHERE gallery = ?", (self.gallery,)
        )
        return {r[0]: r[1] for r in rows}

    def unassign(self, face_ids: Sequence[str] = (), cluster: str | None = None) -> None:
        """Take faces (and every face of ``cluster``) out of the kept clustering."""
        with self.store.transaction(bump=False) as db:
            if cluster is not None:
                db.execute(
                    "DELETE FROM archive_clusters WHERE gallery = ? AND cluster = ?",
                    (self.gallery, cluster),
                )
            for part in _chunks(list(face_ids)):
                marks = ", ".join("?" * len(part))
                db.execute(
                    f"DELETE FROM archive_clusters WHERE gallery = ? AND face_id IN ({marks})",
                    (self.gallery, *part),
                )

    def save_assignments(self, clusters: dict[str, str], replace: bool = True) -> None:
        """Keep face id -> cluster id; ``replace``: instead of every earlier assignment."""
        with self.store.transaction(bump=False) as db:
            if replace:
                db.execute("DELETE FROM archive_clusters WHERE gallery = ?", (self.gallery,))
                db.execute(
                    "INSERT INTO archive_groupings(gallery, grouped_at) VALUES (?, ?) "
                    "ON CONFLICT(gallery) DO UPDATE SET grouped_at = excluded.grouped_at",
                    (self.gallery, self.store.clock().astimezone(UTC).isoformat()),
                )
            else:
                for part in _chunks(list(clusters)):
                    marks = ", ".join("?" * len(part))
                    db.execute(
                        f"DELETE FROM archive_clusters WHERE gallery = ? AND face_id IN ({marks})",
                        (self.gallery, *part),
                    )
            for face_id, cluster in clusters.items():
                db.execute(
                    "INSERT INTO archive_clusters(gallery, face_id, cluster) VALUES (?, ?, ?)",
                    (self.gallery, face_id, cluster),
                )


def face_id(gallery: str, path: str, sha256: str, frame: int, n: int) -> str:
    """A face's id: the same file content at the same path gives the same ids in a gallery,
    on any machine (a distributed run gives the ids a local one does); another gallery of the
    same store has its own ids for the same photo."""
    key = f"{gallery}\0{path}\0{sha256}\0{frame}\0{n}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _purpose(face_id: str, model: str) -> bytes:
    return f"archive-template:{face_id}:{model}".encode()


def ensure_archive_schema(store: Tables) -> None:
    """Create or upgrade the archive's tables in ``store``."""
    store.apply_migrations(COMPONENT, MIGRATIONS[store.dialect])


def forget_identity_in(db: Db, identity_id: str) -> int:
    """In a transaction that erases a person: erase the archive's faces named as them (their
    templates, cluster places and corrections). Returns the faces erased."""
    named = "SELECT id FROM archive_faces WHERE identity_id = ?"
    n = len(db.execute(named, (identity_id,)).fetchall())
    if n:
        db.execute(f"DELETE FROM archive_templates WHERE face_id IN ({named})", (identity_id,))
        db.execute(f"DELETE FROM archive_clusters WHERE face_id IN ({named})", (identity_id,))
        db.execute(
            f"DELETE FROM archive_links WHERE a IN ({named}) OR b IN ({named})",
            (identity_id, identity_id),
        )
        db.execute("DELETE FROM archive_faces WHERE identity_id = ?", (identity_id,))
    db.execute("DELETE FROM archive_links WHERE kind = 'not_identity' AND b = ?", (identity_id,))
    return n
