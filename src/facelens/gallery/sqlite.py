"""The embedded gallery store: one SQLite file, versioned schema, atomic writes.

Every write is one ``BEGIN IMMEDIATE`` transaction, so a process killed at any moment leaves
either the whole change or none of it (SQLite's write-ahead log guarantees this). A
``generation`` counter, bumped by every write, lets readers in other processes notice changes
and rebuild their search matrix.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import ConflictError, GalleryError, GalleryFormatError, NotFoundError
from facelens.gallery.records import (
    Consent,
    DeletionReceipt,
    Identity,
    NewSample,
    Sample,
    iso,
)

__all__ = ["SCHEMA_VERSION", "SearchMatrix", "SqliteStore"]

log = logging.getLogger(__name__)

# Each entry migrates from version i to i + 1. Never edit a released step; append a new one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE galleries (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE identities (
        id          TEXT PRIMARY KEY,
        gallery     TEXT NOT NULL REFERENCES galleries(name) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        metadata    TEXT NOT NULL DEFAULT '{}',
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (gallery, name)
    );
    CREATE TABLE consents (
        id          INTEGER PRIMARY KEY,
        identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        purpose     TEXT NOT NULL,
        granted_by  TEXT NOT NULL,
        granted_at  TEXT NOT NULL,
        expires_at  TEXT,
        recorded_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX consents_identity ON consents(identity_id);
    CREATE TABLE samples (
        id           TEXT PRIMARY KEY,
        identity_id  TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        model        TEXT NOT NULL,
        dim          INTEGER NOT NULL,
        embedding    BLOB NOT NULL,
        quality      TEXT NOT NULL DEFAULT '{}',
        image_sha256 TEXT NOT NULL,
        box          TEXT,
        created_at   TEXT NOT NULL,
        CHECK (length(embedding) = 4 * dim)
    );
    CREATE INDEX samples_identity ON samples(identity_id);
    CREATE INDEX samples_model ON samples(model);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('application', 'facelens'), ('generation', '0');
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True, eq=False)
class SearchMatrix:
    """Everything exact search needs for one gallery and model, loaded at once.

    Attributes:
        identity_ids: (I,) ids of searchable identities (valid consent, at least one sample).
        names: (I,) their names.
        owner: (S,) index into ``identity_ids`` of each sample row.
        vectors: (S, D) float32 unit vectors.
        generation: the store generation it was read at.
        valid_until: the earliest consent expiry among the identities (ISO), or None.
    """

    identity_ids: tuple[str, ...]
    names: tuple[str, ...]
    owner: NDArray[np.int64]
    vectors: NDArray[np.float32]
    generation: int
    valid_until: str | None


def _blob(e: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(e, dtype="<f4").tobytes()


def _vec(b: bytes, dim: int) -> NDArray[np.float32]:
    v = np.frombuffer(b, dtype="<f4").astype(np.float32)
    if v.size != dim:
        raise GalleryFormatError(f"stored embedding has {v.size} values, expected {dim}")
    return v


class SqliteStore:
    """The SQLite gallery store. Safe to share between threads; several processes may open
    the same file (writes are serialised by SQLite).

    Example:
        >>> import tempfile, os
        >>> s = SqliteStore(os.path.join(tempfile.mkdtemp(), "g.db"))
        >>> s.list_identities("default")
        []
    """

    def __init__(self, path: str | Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a directory, not a gallery file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            log.debug("opened gallery %s (journal %s)", self.path, mode)
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise GalleryFormatError(f"{self.path} is not a facelens gallery ({e})") from None

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction that also bumps the generation."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = self._db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    raise GalleryFormatError(
                        f"{self.path} is an SQLite database of another application"
                    )
            elif version > SCHEMA_VERSION:
                raise GalleryFormatError(
                    f"{self.path} has schema version {version}; this facelens reads up to "
                    f"{SCHEMA_VERSION}. Upgrade facelens."
                )
            else:
                app = self._db.execute(
                    "SELECT value FROM meta WHERE key = 'application'"
                ).fetchone()
                if not app or app[0] != "facelens":
                    raise GalleryFormatError(f"{self.path} is not a facelens gallery")
            for step in range(version, SCHEMA_VERSION):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _MIGRATIONS[step].split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version = {step + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                log.info("gallery %s migrated to schema %d", self.path, step + 1)

    def _now(self) -> str:
        return iso(self.clock())

    def generation(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def integrity_check(self) -> list[str]:
        """SQLite's integrity and foreign-key checks; empty when the file is consistent."""
        with self._lock:
            problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [
                f"dangling row in {r[0]}" for r in self._db.execute("PRAGMA foreign_key_check")
            ]
        return problems

    # -- galleries --------------------------------------------------------------------------

    def ensure_gallery(self, gallery: str) -> None:
        if not gallery or not gallery.strip():
            raise ValueError("a gallery needs a name")
        with self._lock:
            exists = self._db.execute(
                "SELECT 1 FROM galleries WHERE name = ?", (gallery,)
            ).fetchone()
        if not exists:
            with self._write() as db:
                db.execute(
                    "INSERT OR IGNORE INTO galleries(name, created_at) VALUES (?, ?)",
                    (gallery, self._now()),
                )

    def galleries(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM galleries ORDER BY name")]

    # -- identities -------------------------------------------------------------------------

    def _consents(self, identity_id: str) -> tuple[Consent, ...]:
        rows = self._db.execute(
            "SELECT id, purpose, granted_by, granted_at, expires_at, recorded_by FROM consents "
            "WHERE identity_id = ? ORDER BY id",
            (identity_id,),
        ).fetchall()
        return tuple(
            Consent(
                id=r[0],
                purpose=r[1],
                granted_by=r[2],
                granted_at=r[3],
                expires_at=r[4],
                recorded_by=r[5],
            )
            for r in rows
        )

    def _identity(self, row: Sequence[Any]) -> Identity:
        iid = row[0]
        count = self._db.execute(
            "SELECT count(*) FROM samples WHERE identity_id = ?", (iid,)
        ).fetchone()[0]
        return Identity(
            id=iid,
            gallery=row[1],
            name=row[2],
            metadata=json.loads(row[3]),
            created_at=row[4],
            updated_at=row[5],
            sample_count=int(count),
            consents=self._consents(iid),
        )

    _IDENTITY_COLS = "id, gallery, name, metadata, created_at, updated_at"

    def get_identity(self, gallery: str, key: str) -> Identity:
        """By id or by name; ``NotFoundError`` otherwise."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? "
                "AND (id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1",
                (gallery, key, key, key),
            ).fetchone()
            if row is None:
                raise NotFoundError("identity", key)
            return self._identity(row)

    def find_identity(self, gallery: str, key: str) -> Identity | None:
        try:
            return self.get_identity(gallery, key)
        except NotFoundError:
            return None

    def list_identities(self, gallery: str) -> list[Identity]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? ORDER BY name",
                (gallery,),
            ).fetchall()
            return [self._identity(r) for r in rows]

    def samples(self, identity_id: str) -> list[Sample]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, identity_id, model, dim, embedding, quality, image_sha256, box, "
                "created_at FROM samples WHERE identity_id = ? ORDER BY created_at, id",
                (identity_id,),
            ).fetchall()
        return [
            Sample(
                id=r[0],
                identity_id=r[1],
                model=r[2],
                embedding=_vec(r[4], r[3]),
                quality=json.loads(r[5]),
                image_sha256=r[6],
                box=tuple(json.loads(r[7])) if r[7] else None,
                created_at=r[8],
            )
            for r in rows
        ]

    def _insert_samples(
        self, db: sqlite3.Connection, identity_id: str, samples: Sequence[NewSample], now: str
    ) -> list[str]:
        """Insert samples not already stored for this identity (same image and model)."""
        have = {
            (r[0], r[1])
            for r in db.execute(
                "SELECT image_sha256, model FROM samples WHERE identity_id = ?", (identity_id,)
            )
        }
        ids = []
        for s in samples:
            if (s.image_sha256, s.model) in have:
                continue
            have.add((s.image_sha256, s.model))
            sid = uuid.uuid4().hex
            db.execute(
                "INSERT INTO samples(id, identity_id, model, dim, embedding, quality, "
                "image_sha256, box, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    identity_id,
                    s.model,
                    int(s.embedding.size),
                    _blob(s.embedding),
                    json.dumps(s.quality, sort_keys=True),
                    s.image_sha256,
                    json.dumps([round(float(v), 2) for v in s.box]) if s.box else None,
                    now,
                ),
            )
            ids.append(sid)
        return ids

    def _insert_consent(self, db: sqlite3.Connection, identity_id: str, c: Consent) -> None:
        db.execute(
            "INSERT INTO consents(identity_id, purpose, granted_by, granted_at, expires_at, "
            "recorded_by) VALUES (?, ?, ?, ?, ?, ?)",
            (identity_id, c.purpose, c.granted_by, c.granted_at, c.expires_at, c.recorded_by),
        )

    def enroll(
        self,
        gallery: str,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Identity, list[str]]:
        """Create the identity (or add to the one of that name), with its samples and consent,
        in one transaction. Returns the identity and the ids of the samples added.

        Consent rules are the caller's (``Gallery``) to enforce; this only stores.
        """
        self.ensure_gallery(gallery)
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM identities WHERE gallery = ? AND name = ?", (gallery, name)
            ).fetchone()
            if row is None:
                iid = uuid.uuid4().hex
                db.execute(
                    "INSERT INTO identities(id, gallery, name, metadata, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (iid, gallery, name, json.dumps(metadata or {}, sort_keys=True), now, now),
                )
            else:
                iid = row[0]
                if metadata:
                    old = json.loads(
                        db.execute(
                            "SELECT metadata FROM identities WHERE id = ?", (iid,)
                        ).fetchone()[0]
                    )
                    old.update(metadata)
                    db.execute(
                        "UPDATE identities SET metadata = ? WHERE id = ?",
                        (json.dumps(old, sort_keys=True), iid),
                    )
            if consent is not None:
                self._insert_consent(db, iid, consent)
            added = self._insert_samples(db, iid, samples, now)
            db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, iid))
        return self.get_identity(gallery, iid), added

    def add_consent(self, gallery: str, key: str, consent: Consent) -> Identity:
        ident = self.get_identity(gallery, key)
        with self._write() as db:
            self._insert_consent(db, ident.id, consent)
            db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (self._now(), ident.id))
        return self.get_identity(gallery, ident.id)

    def rename(self, gallery: str, key: str, new_name: str) -> Identity:
        new_name = new_name.strip()
        if not new_name:
            raise ValueError("the new name is empty")
        ident = self.get_identity(gallery, key)
        try:
            with self._write() as db:
                db.execute(
                    "UPDATE identities SET name = ?, updated_at = ? WHERE id = ?",
                    (new_name, self._now(), ident.id),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(
                f"an identity named {new_name!r} already exists in gallery {gallery!r}"
            ) from None
        return self.get_identity(gallery, ident.id)

    def delete(self, gallery: str, key: str) -> DeletionReceipt:
        """Erase the identity, every sample and every consent record of it."""
        ident = self.get_identity(gallery, key)
        with self._write() as db:
            ns = db.execute("DELETE FROM samples WHERE identity_id = ?", (ident.id,)).rowcount
            nc = db.execute("DELETE FROM consents WHERE identity_id = ?", (ident.id,)).rowcount
            db.execute("DELETE FROM identities WHERE id = ?", (ident.id,))
        return DeletionReceipt(
            identity_id=ident.id,
            name=ident.name,
            gallery=gallery,
            samples_deleted=ns,
            consents_deleted=nc,
            deleted_at=self._now(),
        )

    # -- search -----------------------------------------------------------------------------

    def search_matrix(self, gallery: str, model: str) -> SearchMatrix:
        """Samples of ``model`` of the identities that may be searched now (valid consent)."""
        now = self._now()
        with self._lock:
            gen = self.generation()
            rows = self._db.execute(
                """
                SELECT i.id, i.name, s.dim, s.embedding, c.until
                FROM identities i
                JOIN (SELECT identity_id,
                             MAX(CASE WHEN expires_at IS NULL THEN '9999' ELSE expires_at END)
                               AS until
                      FROM consents
                      WHERE expires_at IS NULL OR expires_at > ?
                      GROUP BY identity_id) c ON c.identity_id = i.id
                JOIN samples s ON s.identity_id = i.id
                WHERE i.gallery = ? AND s.model = ?
                ORDER BY i.id, s.id
                """,
                (now, gallery, model),
            ).fetchall()
        ids: list[str] = []
        names: list[str] = []
        owner = np.empty(len(rows), np.int64)
        dim = rows[0][2] if rows else 0
        vectors = np.empty((len(rows), dim), np.float32)
        until: str | None = None
        for j, (iid, name, d, blob, u) in enumerate(rows):
            if d != dim:
                raise GalleryFormatError(f"model {model!r} has samples of {d} and {dim} values")
            if not ids or ids[-1] != iid:
                ids.append(iid)
                names.append(name)
                if u != "9999" and (until is None or u < until):
                    until = u
            owner[j] = len(ids) - 1
            vectors[j] = _vec(blob, dim)
        vectors.setflags(write=False)
        return SearchMatrix(tuple(ids), tuple(names), owner, vectors, gen, until)

    # -- export / import --------------------------------------------------------------------

    def import_identities(
        self,
        gallery: str,
        items: Sequence[tuple[Identity, list[Sample]]],
        on_conflict: str = "error",
    ) -> tuple[int, int]:
        """Insert identities with their ids, consents and samples in one transaction.

        ``on_conflict``: ``"error"`` (nothing is written if any id or name exists) or
        ``"skip"`` (existing ones are left as they are). Returns (imported, skipped).
        """
        if on_conflict not in ("error", "skip"):
            raise ValueError(f"on_conflict must be 'error' or 'skip', got {on_conflict!r}")
        self.ensure_gallery(gallery)
        imported = skipped = 0
        with self._write() as db:
            for ident, samples in items:
                clash = db.execute(
                    "SELECT id, gallery, name FROM identities WHERE id = ? OR "
                    "(gallery = ? AND name = ?)",
                    (ident.id, gallery, ident.name),
                ).fetchone()
                if clash:
                    if on_conflict == "skip":
                        skipped += 1
                        continue
                    raise ConflictError(
                        f"identity {ident.name!r} ({ident.id}) already exists as "
                        f"{clash[2]!r} ({clash[0]}) in gallery {clash[1]!r}; nothing imported"
                    )
                db.execute(
                    "INSERT INTO identities(id, gallery, name, metadata, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        ident.id,
                        gallery,
                        ident.name,
                        json.dumps(ident.metadata, sort_keys=True),
                        ident.created_at,
                        ident.updated_at,
                    ),
                )
                for c in ident.consents:
                    self._insert_consent(db, ident.id, c)
                for s in samples:
                    db.execute(
                        "INSERT INTO samples(id, identity_id, model, dim, embedding, quality, "
                        "image_sha256, box, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            s.id,
                            ident.id,
                            s.model,
                            int(s.embedding.size),
                            _blob(s.embedding),
                            json.dumps(s.quality, sort_keys=True),
                            s.image_sha256,
                            json.dumps(list(s.box)) if s.box else None,
                            s.created_at,
                        ),
                    )
                imported += 1
        return imported, skipped
