"""What both gallery stores share: the gallery contract in SQL that SQLite and PostgreSQL both
speak.

``SqlStore`` holds every rule about identities, samples and consent once; a store supplies the
connection (``_read`` / ``transaction``, with ``?`` placeholders), how an embedding is written
to and read from its column, its schema migrations, and its search. ``GalleryStore`` is the
contract the ``Gallery`` and the service rely on; ``tests/gallery/test_conformance.py`` runs
unchanged against both stores.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from facelens.errors import (
    ConflictError,
    GalleryError,
    GalleryFormatError,
    GalleryKeyError,
    InputError,
    NotFoundError,
)
from facelens.gallery.ann import AnnConfig
from facelens.gallery.imports import ImportRow, plan_import
from facelens.gallery.protect import OVERHEAD, TemplateKey, is_sealed, new_secret, transform
from facelens.gallery.records import (
    Consent,
    DeletionReceipt,
    Identity,
    NewSample,
    Sample,
    encode_chip,
    iso,
    parse_time,
)
from facelens.match.decide import Candidate, rank_identities
from facelens.text import check_name, name_key

__all__ = ["Cursor", "Db", "GalleryStore", "SearchMatrix", "SqlStore", "exact_search"]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def _check_gallery_name(gallery: str) -> None:
    if not gallery or not gallery.strip():
        raise InputError("gallery", "a gallery needs a name")


class Db(Protocol):
    """A connection inside a read or a transaction; SQL uses ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


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


_BLAS: Any = None


def _one_blas_thread() -> AbstractContextManager[Any]:
    """BLAS limited to one thread: a few probes against a gallery are memory-bound, and
    OpenBLAS's threads spin against the inference threads of a busy process (measured:
    10k x 128 against one probe takes 12 ms with two threads under load, 0.5 ms with one)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def exact_search(m: SearchMatrix, vectors: NDArray[np.float32], k: int) -> list[list[Candidate]]:
    """Per probe row, the ``k`` identities of ``m`` with the most similar sample."""
    if len(m.identity_ids) == 0:
        return [[] for _ in range(len(vectors))]
    if len(vectors) <= 16:
        with _one_blas_thread():
            sims = np.asarray(vectors, np.float32) @ m.vectors.T
    else:
        sims = np.asarray(vectors, np.float32) @ m.vectors.T
    idx, scores = rank_identities(sims, m.owner, len(m.identity_ids), k)
    return [
        [
            Candidate(m.identity_ids[j], m.names[j], float(s))
            for j, s in zip(row_i, row_s, strict=True)
            if np.isfinite(s)
        ]
        for row_i, row_s in zip(idx, scores, strict=True)
    ]


@runtime_checkable
class GalleryStore(Protocol):
    """The gallery contract: every store (SQLite, PostgreSQL) provides exactly this.

    Identities are addressed by id or name within a named gallery. Writes are atomic. Search
    only considers identities whose consent is valid at ``now``, with samples of the probe's
    model, and never returns an identity that has been deleted.
    """

    clock: Callable[[], datetime]
    location: str

    dialect: str
    key: TemplateKey | None

    def close(self) -> None: ...

    def encrypted(self) -> bool: ...

    def rekey(self, new_key: TemplateKey) -> dict[str, int]: ...

    def protect(self, data: bytes, purpose: bytes) -> bytes: ...

    def unprotect(self, stored: bytes, purpose: bytes) -> bytes: ...

    def apply_migrations(self, component: str, steps: Sequence[str]) -> int: ...

    def __enter__(self) -> GalleryStore: ...

    def __exit__(self, *exc: object) -> None: ...

    def transaction(self, bump: bool = True) -> AbstractContextManager[Db]: ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def generation(self) -> int: ...

    def schema_version(self) -> int: ...

    def ensure_gallery(self, gallery: str) -> None: ...

    def galleries(self) -> list[str]: ...

    def get_identity(self, gallery: str, identity_id: str) -> Identity: ...

    def find_identity(self, gallery: str, name: str) -> Identity | None: ...

    def list_identities(
        self, gallery: str, after: str | None = None, limit: int | None = None
    ) -> list[Identity]: ...

    def count_identities(self, gallery: str) -> int: ...

    def samples(self, identity_id: str) -> list[Sample]: ...

    def enroll(
        self,
        gallery: str,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None,
        metadata: dict[str, Any] | None = None,
        expect: str | None = "",
    ) -> tuple[Identity, list[str]]: ...

    def add_consent(self, gallery: str, identity_id: str, consent: Consent) -> Identity: ...

    def rename(self, gallery: str, identity_id: str, new_name: str) -> Identity: ...

    def withdraw_consents(self, gallery: str, identity_id: str) -> Identity: ...

    def delete(self, gallery: str, identity_id: str) -> DeletionReceipt: ...

    def import_identities(
        self,
        gallery: str,
        items: Sequence[tuple[Identity, list[Sample]]],
        on_conflict: str = "error",
        chips: dict[str, list[tuple[str, bytes]]] | None = None,
    ) -> tuple[int, int]: ...

    def search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int
    ) -> list[list[Candidate]]: ...

    def searchable_size(self, gallery: str, model: str) -> tuple[int, int]: ...

    def gallery_settings(self, gallery: str) -> dict[str, Any]: ...

    def set_gallery_settings(self, gallery: str, changes: dict[str, Any]) -> dict[str, Any]: ...

    def add_samples(
        self, gallery: str, identity_id: str, samples: Sequence[NewSample]
    ) -> list[str]: ...

    def chips(self, identity_id: str) -> list[tuple[str, bytes]]: ...

    def models(self, gallery: str) -> dict[str, tuple[int, int]]: ...


# Settings a gallery may hold, and their defaults.
# ``confirm``: how many different people must confirm an identification before it is acted on
# (2: EU AI Act Art. 14(5); facelens.govern.confirm holds the alerts).
GALLERY_SETTINGS: dict[str, Any] = {"keep_chips": False, "confirm": 1}


class SqlStore:
    """The gallery rules over SQL; subclasses give the connection, dialect and search."""

    clock: Callable[[], datetime]
    location: str
    dialect: str

    def __init__(
        self, clock: Callable[[], datetime], ann: AnnConfig, key: TemplateKey | None = None
    ) -> None:
        self.clock = clock
        self.ann = ann
        self.key = key
        self._secrets: dict[str, bytes | None] = {}
        self._rotations: dict[tuple[str, int], NDArray[np.float32] | None] = {}
        self._matrices: dict[tuple[str, str], SearchMatrix] = {}
        self._matrix_lock = threading.Lock()
        self._identity_counts: dict[str, tuple[int, int]] = {}
        self._sizes: dict[tuple[str, str], tuple[int, float, tuple[int, int]]] = {}
        self._components: dict[str, int] = {}

    # -- what a store supplies ----------------------------------------------------------------

    def _read(self) -> AbstractContextManager[Db]:
        raise NotImplementedError

    def _enrol_transaction(self) -> AbstractContextManager[Db]:
        """The transaction an enrolment writes in (a server store may pipeline it)."""
        return self.transaction()

    def transaction(self, bump: bool = True) -> AbstractContextManager[Db]:
        """One atomic write transaction; writers are serialised across processes. ``bump``
        advances the generation, telling every reader's search state that gallery content
        changed (not needed for keys and audit records)."""
        raise NotImplementedError

    # the template columns, as written (``_emb_params``) and as read (``_EMB_SQL``, one value
    # ``_emb_value`` decodes): plain, or sealed when the store has a key
    _EMB_COLS = "embedding"
    _EMB_SQL = "s.embedding"

    def _emb_value(self, stored: Any, dim: int) -> NDArray[np.float32]:
        raise NotImplementedError

    # -- protected templates (facelens.gallery.protect) ----------------------------------------

    def encrypted(self) -> bool:
        """Whether the store's templates and chips are sealed (it then opens only with its
        key)."""
        return bool(self.fetch("SELECT 1 FROM meta WHERE key = 'key_check'"))

    def _check_key(self) -> None:
        """Refuse a store whose templates this key (or no key) cannot open; turn sealing on
        for a store given a key while it holds no template yet."""
        rows = dict(self.fetch("SELECT key, value FROM meta WHERE key IN ('key_check', 'key_id')"))
        if "key_check" in rows:
            if self.key is None:
                raise GalleryKeyError(
                    f"this store's templates are encrypted (key {rows.get('key_id')}): set "
                    "FACELENS_KEY_FILE to its key file"
                )
            try:
                self.key.open(base64.b64decode(rows["key_check"]), b"key-check")
            except GalleryKeyError:
                raise GalleryKeyError(
                    f"the key given ({self.key.key_id}) is not this store's "
                    f"({rows.get('key_id')}): its templates stay closed"
                ) from None
            return
        if self.key is None:
            return
        held = self.fetch("SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM chips)")
        if int(held[0][0]):
            raise GalleryKeyError(
                "this store's templates are not encrypted: encrypt them with 'facelens govern "
                "rotate-key --new-key-file FILE' (run without FACELENS_KEY_FILE)"
            )
        with self.transaction(bump=True) as db:
            self._seal_store(db, self.key)

    def _seal_store(self, db: Db, key: TemplateKey) -> None:
        """Mark the store as sealed by ``key`` and (re)seal every gallery's secret with it."""
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('key_check', ?), ('key_id', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (base64.b64encode(key.seal(b"facelens", b"key-check")).decode(), key.key_id),
        )

    def _store_secret(self, gallery: str, secret: bytes, key: TemplateKey | None) -> bytes:
        return key.seal(secret, b"gallery-secret:" + gallery.encode()) if key else secret

    def _secret(self, gallery: str) -> bytes | None:
        if gallery not in self._secrets:
            rows = self.fetch("SELECT secret FROM galleries WHERE name = ?", (gallery,))
            stored = bytes(rows[0][0]) if rows and rows[0][0] is not None else None
            secret = None
            if stored is not None:
                if is_sealed(stored):
                    if self.key is None:
                        raise GalleryKeyError("a gallery secret is sealed and no key was given")
                    secret = self.key.open(stored, b"gallery-secret:" + gallery.encode())
                elif self.key is not None:
                    raise GalleryKeyError("a gallery secret is not sealed: the store was altered")
                else:
                    secret = stored
            if not rows:
                return None  # no such gallery (yet): nothing to remember
            self._secrets[gallery] = secret
        return self._secrets[gallery]

    def _rotation(self, gallery: str, dim: int) -> NDArray[np.float32] | None:
        """The gallery's orthonormal transform for ``dim``-value templates (None: a gallery
        made before galleries had one, until ``rekey`` gives it one, or no such gallery yet,
        which is not remembered: another process may create it)."""
        key = (gallery, dim)
        if key not in self._rotations:
            secret = self._secret(gallery)
            if gallery not in self._secrets:
                return None
            self._rotations[key] = None if secret is None else transform(secret, dim)
        return self._rotations[key]

    def _forward(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Model-space templates or probes -> this gallery's space."""
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        r = self._rotation(gallery, v.shape[1]) if v.size else None
        return v if r is None else np.ascontiguousarray(v @ r.T)

    def _inverse(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        r = self._rotation(gallery, v.shape[1]) if v.size else None
        return v if r is None else np.ascontiguousarray(v @ r)

    def _template_bytes(self, stored: bytes, dim: int) -> NDArray[np.float32]:
        """A stored template's values: sealed ones opened with the key; a plain one in a
        sealed store is refused (it was put there by someone without the key)."""
        raw = bytes(stored)
        if len(raw) == 4 * dim + OVERHEAD and is_sealed(raw):
            if self.key is None:
                raise GalleryKeyError("a template is sealed and no key was given")
            raw = self.key.open(raw, b"template")
        elif self.key is not None:
            raise GalleryKeyError("a template is not sealed in an encrypted store: it was altered")
        v = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if v.size != dim:
            raise GalleryFormatError(f"stored embedding has {v.size} values, expected {dim}")
        return v

    def _seal_template(self, e: NDArray[np.float32], key: TemplateKey) -> bytes:
        return key.seal(np.ascontiguousarray(e, dtype="<f4").tobytes(), b"template")

    def protect(self, data: bytes, purpose: bytes) -> bytes:
        """``data`` as the store keeps biometric data: sealed for ``purpose`` with the
        store's key, or as it is in a store without one (for other components' data, such as
        an alert's best shot)."""
        return self.key.seal(data, purpose) if self.key else data

    def unprotect(self, stored: bytes, purpose: bytes) -> bytes:
        data = bytes(stored)
        if self.key is not None:
            return self.key.open(data, purpose)
        if is_sealed(data):
            raise GalleryKeyError("a protected value is sealed and no key was given")
        return data

    def _chip_in(self, png: bytes) -> bytes:
        return self.protect(png, b"chip")

    def _chip_out(self, stored: bytes) -> bytes:
        return self.unprotect(stored, b"chip")

    def rekey(self, new_key: TemplateKey) -> dict[str, int]:
        """Seal everything with ``new_key`` and renew every gallery's transform secret, in
        one transaction (ISO/IEC 24745 renewability): templates are opened with the present
        key (or read plain), brought back to the model's space, moved to the new secret's
        space and sealed; chips and secrets are resealed. Answers are unchanged; the old key
        opens nothing afterwards; saved approximate indexes are left for rebuilding.
        Returns counts."""
        counts = {"galleries": 0, "templates": 0, "chips": 0}
        with self.transaction(bump=True) as db:
            galleries = [r[0] for r in db.execute("SELECT name FROM galleries ORDER BY name")]
            fresh = {g: new_secret() for g in galleries}
            for g in galleries:
                dims = self._dims(db, g)
                old = {d: self._rotation(g, d) for d in dims}
                new = {d: transform(fresh[g], d) for d in dims}
                sets = ", ".join(f"{c.strip()} = ?" for c in self._EMB_COLS.split(","))
                rows = db.execute(
                    f"SELECT s.id, s.dim, {self._EMB_SQL} FROM samples s JOIN identities i "
                    "ON i.id = s.identity_id WHERE i.gallery = ?",
                    (g,),
                ).fetchall()
                for sid, dim, stored in rows:
                    v = self._emb_value(stored, int(dim))
                    r_old = old.get(int(dim))
                    if r_old is not None:
                        v = v @ r_old
                    v = new[int(dim)] @ v
                    db.execute(
                        f"UPDATE samples SET {sets} WHERE id = ?",
                        (*self._emb_params_for(v, new_key), sid),
                    )
                    counts["templates"] += 1
                for iid, sha, data in db.execute(
                    "SELECT c.identity_id, c.image_sha256, c.data FROM chips c JOIN identities i "
                    "ON i.id = c.identity_id WHERE i.gallery = ?",
                    (g,),
                ).fetchall():
                    db.execute(
                        "UPDATE chips SET data = ? WHERE identity_id = ? AND image_sha256 = ?",
                        (new_key.seal(self._chip_out(data), b"chip"), iid, sha),
                    )
                    counts["chips"] += 1
                db.execute(
                    "UPDATE galleries SET secret = ? WHERE name = ?",
                    (self._store_secret(g, fresh[g], new_key), g),
                )
                counts["galleries"] += 1
            self._seal_store(db, new_key)
            db.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (secrets.token_hex(16),))
        self.key = new_key
        self._secrets.clear()
        self._rotations.clear()
        with self._matrix_lock:
            self._matrices.clear()
        self._after_rekey()
        return counts

    def _after_rekey(self) -> None:
        """Drop what was derived from the old secrets (approximate indexes)."""
        self.store_id = self.fetch("SELECT value FROM meta WHERE key = 'store_id'")[0][0]

    @staticmethod
    def _dims(db: Db, gallery: str) -> list[int]:
        return [
            int(r[0])
            for r in db.execute(
                "SELECT DISTINCT s.dim FROM samples s JOIN identities i ON i.id = s.identity_id "
                "WHERE i.gallery = ?",
                (gallery,),
            )
        ]

    def _emb_params_for(self, e: NDArray[np.float32], key: TemplateKey | None) -> tuple[Any, ...]:
        """The template columns for ``e`` (already in its gallery's space), sealed with
        ``key`` when given."""
        raise NotImplementedError

    def _is_unique_violation(self, e: BaseException) -> bool:
        raise NotImplementedError

    def generation(self) -> int:
        with self._read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _ann_search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int, start: bool
    ) -> list[list[Candidate]] | None:
        """Approximate search when this gallery is large (``start``: it has just been found
        large); None means search exactly."""
        return None

    def _run_script(self, db: Db, script: str) -> None:
        """Run one migration step (several statements)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------

    def apply_migrations(self, component: str, steps: Sequence[str]) -> int:
        """Bring another component's tables (``facelens.govern``'s) to ``len(steps)``: each
        step runs once, in its own transaction, its version kept in ``meta`` as
        ``schema:<component>``; a store of a newer version than ``steps`` is refused. Returns
        the version. The component owns its steps; the store only runs them."""
        key = f"schema:{component}"
        done = self._components.get(component)
        if done is not None:
            return done
        for step in range(len(steps)):
            with self.transaction(bump=False) as db:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                version = int(row[0]) if row else 0
                if version > len(steps):
                    raise GalleryFormatError(
                        f"the store's {component} tables are of version {version}; this "
                        f"facelens reads up to {len(steps)}. Upgrade facelens."
                    )
                if version > step:
                    continue
                self._run_script(db, steps[step])
                db.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, str(step + 1)),
                )
        self._components[component] = len(steps)
        return len(steps)

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return iso(self.clock())

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query (``?`` placeholders)."""
        with self._read() as db:
            return [tuple(r) for r in db.execute(sql, params).fetchall()]

    def ensure_gallery(self, gallery: str) -> None:
        """Create the gallery if needed, with its own transform secret (sealed when the
        store has a key)."""
        _check_gallery_name(gallery)
        with self._read() as db:
            exists = db.execute("SELECT 1 FROM galleries WHERE name = ?", (gallery,)).fetchone()
        if not exists:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO galleries(name, created_at, secret) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (gallery, self._now(), self._store_secret(gallery, new_secret(), self.key)),
                )

    def galleries(self) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute("SELECT name FROM galleries ORDER BY name")]

    # -- identities -------------------------------------------------------------------------

    def _identity(self, db: Db, row: Sequence[Any]) -> Identity:
        return self._identities(db, [row])[0]

    def _identities(self, db: Db, rows: Sequence[Sequence[Any]]) -> list[Identity]:
        """Identities from their rows, with their counts and consents read a chunk of
        identities at a time (two queries per chunk, not per identity: every round trip
        counts on a server store)."""
        out: list[Identity] = []
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            ids = [r[0] for r in chunk]
            marks = ",".join("?" * len(ids))
            per_model: dict[str, dict[str, int]] = {i: {} for i in ids}
            images: dict[str, int] = {}
            chips: dict[str, int] = {}
            for kind, iid, m, n in db.execute(
                "SELECT 'm', identity_id, model, count(*) FROM samples "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id, model "
                "UNION ALL SELECT 'i', identity_id, '', count(DISTINCT image_sha256) FROM samples "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id "
                "UNION ALL SELECT 'c', identity_id, '', count(*) FROM chips "
                f"WHERE identity_id IN ({marks}) GROUP BY identity_id",
                ids * 3,
            ).fetchall():
                if kind == "m":
                    per_model[iid][str(m)] = int(n)
                elif kind == "i":
                    images[iid] = int(n)
                else:
                    chips[iid] = int(n)
            consents: dict[str, list[Consent]] = {i: [] for i in ids}
            for r in db.execute(
                "SELECT identity_id, id, purpose, granted_by, granted_at, expires_at, recorded_by "
                f"FROM consents WHERE identity_id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall():
                consents[r[0]].append(
                    Consent(
                        id=r[1],
                        purpose=r[2],
                        granted_by=r[3],
                        granted_at=r[4],
                        expires_at=r[5],
                        recorded_by=r[6],
                    )
                )
            out.extend(
                Identity(
                    id=row[0],
                    gallery=row[1],
                    name=row[2],
                    metadata=json.loads(row[3]),
                    created_at=row[4],
                    updated_at=row[5],
                    sample_count=int(images.get(row[0], 0)),
                    consents=tuple(consents[row[0]]),
                    models=dict(sorted(per_model[row[0]].items())),
                    chips=int(chips.get(row[0], 0)),
                )
                for row in chunk
            )
        return out

    _IDENTITY_COLS = "id, gallery, name, metadata, created_at, updated_at"

    def _get(self, db: Db, gallery: str, identity_id: str) -> Identity:
        row = db.execute(
            f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? AND id = ?",
            (gallery, identity_id),
        ).fetchone()
        if row is None:
            raise NotFoundError("identity", identity_id)
        return self._identity(db, row)

    def get_identity(self, gallery: str, identity_id: str) -> Identity:
        """By id (names and ids are never mixed up); ``NotFoundError`` otherwise."""
        with self._read() as db:
            return self._get(db, gallery, identity_id)

    def find_identity(self, gallery: str, name: str) -> Identity | None:
        """By name (as stored), or None."""
        with self._read() as db:
            row = db.execute(
                f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ? AND name = ?",
                (gallery, name),
            ).fetchone()
            return None if row is None else self._identity(db, row)

    def _fill_name_keys(self) -> None:
        """Give every identity stored before names had keys its key (once, at open)."""
        rows = self.fetch("SELECT id, name FROM identities WHERE name_key IS NULL")
        if rows:
            with self.transaction(bump=False) as db:
                for iid, name in rows:
                    db.execute(
                        "UPDATE identities SET name_key = ? WHERE id = ?", (name_key(name), iid)
                    )

    # the identity whose name or id a name would clash with (``?``: except this id, the name,
    # the gallery, the name again, its key)
    _CLASH = (
        "SELECT id, name FROM identities WHERE id <> ? AND (id = ? OR "
        "(gallery = ? AND (name = ? OR name_key = ?))) LIMIT 1"
    )

    def _name_clash(self, db: Db, gallery: str, name: str, except_id: str = "") -> None:
        """``ConflictError`` when ``name`` is taken in ``gallery``, looks like a name there
        (``facelens.text.name_key``), or is an identity's id."""
        row = db.execute(self._CLASH, (except_id, name, gallery, name, name_key(name))).fetchone()
        if row is not None:
            raise name_conflict(name, gallery, row[0], row[1])

    def list_identities(
        self, gallery: str, after: str | None = None, limit: int | None = None
    ) -> list[Identity]:
        """A gallery's identities by name; a page of at most ``limit`` of them with names
        after ``after`` when given."""
        sql = f"SELECT {self._IDENTITY_COLS} FROM identities WHERE gallery = ?"
        params: list[Any] = [gallery]
        if after is not None:
            sql += " AND name > ?"
            params.append(after)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as db:
            return self._identities(db, db.execute(sql, params).fetchall())

    def count_identities(self, gallery: str) -> int:
        """How many identities a gallery holds: remembered per gallery until the store's
        generation moves, so listing galleries costs one query, not one per identity."""
        generation = self.generation()
        with self._matrix_lock:
            hit = self._identity_counts.get(gallery)
        if hit is not None and hit[0] == generation:
            return hit[1]
        with self._read() as db:
            n = int(
                db.execute(
                    "SELECT count(*) FROM identities WHERE gallery = ?", (gallery,)
                ).fetchone()[0]
            )
        with self._matrix_lock:
            self._identity_counts[gallery] = (generation, n)
        return n

    def samples(self, identity_id: str) -> list[Sample]:
        """An identity's samples, templates in the model's own space (the gallery's
        transform undone)."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT s.id, s.identity_id, s.model, s.dim, {self._EMB_SQL}, s.quality, "
                "s.image_sha256, s.box, s.created_at, i.gallery FROM samples s JOIN identities i "
                "ON i.id = s.identity_id WHERE s.identity_id = ? ORDER BY s.created_at, s.id",
                (identity_id,),
            ).fetchall()
        return [
            Sample(
                id=r[0],
                identity_id=r[1],
                model=r[2],
                embedding=self._inverse(r[9], self._emb_value(r[4], r[3]))[0],
                quality=json.loads(r[5]),
                image_sha256=r[6],
                box=tuple(json.loads(r[7])) if r[7] else None,
                created_at=r[8],
            )
            for r in rows
        ]

    @property
    def _SAMPLE_INSERT(self) -> str:
        marks = ", ".join("?" * len(self._EMB_COLS.split(",")))
        return (
            f"INSERT INTO samples(id, identity_id, model, dim, {self._EMB_COLS}, quality, "
            f"image_sha256, box, created_at) VALUES (?, ?, ?, ?, {marks}, ?, ?, ?, ?)"
        )

    def _emb_params(self, e: NDArray[np.float32]) -> tuple[Any, ...]:
        return self._emb_params_for(e, self.key)

    def _sample_row(
        self,
        sid: str,
        identity_id: str,
        s: NewSample | Sample,
        box: Any,
        created_at: str,
        gallery: str,
    ) -> tuple[Any, ...]:
        """A sample's row, its template moved to the gallery's space and sealed."""
        return (
            sid,
            identity_id,
            s.model,
            int(s.embedding.size),
            *self._emb_params(self._forward(gallery, s.embedding)[0]),
            json.dumps(s.quality, sort_keys=True),
            s.image_sha256,
            json.dumps(box) if box else None,
            created_at,
        )

    def _insert_samples(
        self,
        db: Db,
        identity_id: str,
        samples: Sequence[NewSample],
        now: str,
        keep: bool,
        gallery: str,
        new: bool = False,
    ) -> list[str]:
        """Insert samples not already stored for this identity (same image and model), and,
        when ``keep``, their reference chips. ``new``: the identity was just created (it has
        none yet)."""
        have: set[tuple[str, str]] = set()
        if not new:
            have = {
                (r[0], r[1])
                for r in db.execute(
                    "SELECT image_sha256, model FROM samples WHERE identity_id = ?",
                    (identity_id,),
                )
            }
        ids = []
        for s in samples:
            if keep and s.chip is not None:
                db.execute(
                    "INSERT INTO chips(identity_id, image_sha256, format, data, created_at) "
                    "VALUES (?, ?, 'png', ?, ?) ON CONFLICT DO NOTHING",
                    (identity_id, s.image_sha256, self._chip_in(encode_chip(s.chip)), now),
                )
            if (s.image_sha256, s.model) in have:
                continue
            have.add((s.image_sha256, s.model))
            sid = uuid.uuid4().hex
            box = [round(float(v), 2) for v in s.box] if s.box else None
            db.execute(
                self._SAMPLE_INSERT, self._sample_row(sid, identity_id, s, box, now, gallery)
            )
            ids.append(sid)
        return ids

    @staticmethod
    def _settings(db: Db, gallery: str) -> dict[str, Any]:
        row = db.execute("SELECT settings FROM galleries WHERE name = ?", (gallery,)).fetchone()
        return SqlStore._settings_of(row[0] if row else "{}")

    @staticmethod
    def _settings_of(stored_json: str) -> dict[str, Any]:
        stored = json.loads(stored_json)
        return {k: stored.get(k, v) for k, v in GALLERY_SETTINGS.items()}

    def gallery_settings(self, gallery: str) -> dict[str, Any]:
        """The gallery's settings (``GALLERY_SETTINGS`` defaults for a new gallery)."""
        with self._read() as db:
            return self._settings(db, gallery)

    def set_gallery_settings(self, gallery: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change settings (unknown names are a ValueError). Turning ``keep_chips`` off
        erases every chip the gallery kept."""
        unknown = sorted(set(changes) - set(GALLERY_SETTINGS))
        if unknown:
            raise InputError("settings", f"unknown gallery setting(s): {', '.join(unknown)}")
        if "keep_chips" in changes and not isinstance(changes["keep_chips"], bool):
            raise InputError("settings", "keep_chips must be true or false")
        c = changes.get("confirm", 1)
        if isinstance(c, bool) or c not in (1, 2):
            raise InputError("settings", "confirm must be 1 or 2 (people who confirm a match)")
        self.ensure_gallery(gallery)
        with self.transaction() as db:
            settings = {**self._settings(db, gallery), **changes}
            db.execute(
                "UPDATE galleries SET settings = ? WHERE name = ?",
                (json.dumps(settings, sort_keys=True), gallery),
            )
            if not settings["keep_chips"]:
                db.execute(
                    "DELETE FROM chips WHERE identity_id IN "
                    "(SELECT id FROM identities WHERE gallery = ?)",
                    (gallery,),
                )
        return settings

    def chips(self, identity_id: str) -> list[tuple[str, bytes]]:
        """(image SHA-256, PNG bytes) of each reference chip kept of an identity."""
        with self._read() as db:
            rows = db.execute(
                "SELECT image_sha256, data FROM chips WHERE identity_id = ? ORDER BY created_at, "
                "image_sha256",
                (identity_id,),
            ).fetchall()
        return [(str(r[0]), self._chip_out(r[1])) for r in rows]

    def add_samples(
        self, gallery: str, identity_id: str, samples: Sequence[NewSample]
    ) -> list[str]:
        """Templates of more models for an enrolled identity's images (re-templating); its
        consent records are not touched."""
        now = self._now()
        with self.transaction() as db:
            ident = self._get(db, gallery, identity_id)
            added = self._insert_samples(db, ident.id, samples, now, False, gallery)
            if added:
                db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, ident.id))
        return added

    def models(self, gallery: str) -> dict[str, tuple[int, int]]:
        """Per model tag: (identities with a template of it, templates)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT s.model, count(DISTINCT i.id), count(*) FROM samples s "
                "JOIN identities i ON i.id = s.identity_id WHERE i.gallery = ? GROUP BY s.model",
                (gallery,),
            ).fetchall()
        return {str(r[0]): (int(r[1]), int(r[2])) for r in sorted(rows)}

    @staticmethod
    def _insert_consent(db: Db, identity_id: str, c: Consent) -> int:
        """Store a consent record; its id."""
        return int(
            db.execute(
                "INSERT INTO consents(identity_id, purpose, granted_by, granted_at, expires_at, "
                "recorded_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (identity_id, c.purpose, c.granted_by, c.granted_at, c.expires_at, c.recorded_by),
            ).fetchone()[0]
        )

    def enroll(
        self,
        gallery: str,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None,
        metadata: dict[str, Any] | None = None,
        expect: str | None = "",
    ) -> tuple[Identity, list[str]]:
        """Create the identity (or add to the one of that name), with its samples and consent,
        in one transaction. Returns the identity and the ids of the samples added.

        Consent and integrity rules are the caller's (the governed gallery) to enforce; this
        only stores. ``expect``: the id of the identity of that name the caller checked the
        samples against (None: it found none, so the name must still be free), so a name
        enrolled by someone else meanwhile is a ``ConflictError``, never an unchecked
        addition; "" (the default): whatever is there. A new name that looks like another of
        the gallery's, or equals an id, is a ``ConflictError`` (``facelens.text``). A new
        person costs four statements (gallery, name and look-alikes looked up together, then
        the identity, its consent and its samples written), so one-at-a-time enrolment is not
        bound by round trips to a server.
        """
        if gallery not in self._secrets:  # galleries are never deleted: once is enough
            self.ensure_gallery(gallery)  # committed first: its transform moves the samples
            self._secret(gallery)
        now = self._now()
        key = name_key(name)
        with self._enrol_transaction() as db:
            row = db.execute(
                "SELECT g.settings, i.id, i.metadata, c.id, c.name FROM galleries g "
                "LEFT JOIN identities i ON i.gallery = g.name AND i.name = ? "
                "LEFT JOIN identities c ON c.id = (SELECT id FROM identities WHERE "
                "id = ? OR (gallery = ? AND name_key = ? AND name <> ?) LIMIT 1) "
                "WHERE g.name = ?",
                (name, name, gallery, key, name, gallery),
            ).fetchone()
            if row is None:
                raise GalleryError(f"gallery {gallery!r} is missing from the store")
            if expect != "" and row[1] != expect:
                raise ConflictError(
                    f"{name!r} was enrolled or erased by someone else meanwhile: nothing was "
                    "added; try again"
                )
            keep = bool(self._settings_of(row[0])["keep_chips"])
            if row[1] is None:
                if row[3] is not None:
                    raise name_conflict(name, gallery, row[3], row[4])
                return self._enroll_new(db, gallery, name, samples, consent, metadata, keep, now)
            iid = row[1]
            if metadata:
                old = json.loads(row[2])
                old.update(metadata)
                db.execute(
                    "UPDATE identities SET metadata = ? WHERE id = ?",
                    (json.dumps(old, sort_keys=True), iid),
                )
            if consent is not None:
                self._insert_consent(db, iid, consent)
            added = self._insert_samples(db, iid, samples, now, keep, gallery)
            db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, iid))
            ident = self._get(db, gallery, iid)
        return ident, added

    def _enroll_new(
        self,
        db: Db,
        gallery: str,
        name: str,
        samples: Sequence[NewSample],
        consent: Consent | None,
        metadata: dict[str, Any] | None,
        keep: bool,
        now: str,
    ) -> tuple[Identity, list[str]]:
        """A new identity: written, and described from what was written (nothing read back)."""
        iid = uuid.uuid4().hex
        meta = json.dumps(metadata or {}, sort_keys=True)
        db.execute(
            "INSERT INTO identities(id, gallery, name, name_key, metadata, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (iid, gallery, name, name_key(name), meta, now, now),
        )
        added = self._insert_samples(db, iid, samples, now, keep, gallery, new=True)
        consents: tuple[Consent, ...] = ()
        if consent is not None:  # last: its id is the only result the writes wait for
            consents = (replace(consent, id=self._insert_consent(db, iid, consent)),)
        stored = {(s.image_sha256, s.model) for s in samples}
        models: dict[str, int] = {}
        for _, m in stored:
            models[m] = models.get(m, 0) + 1
        images = {s.image_sha256 for s in samples}
        chips = {s.image_sha256 for s in samples if keep and s.chip is not None}
        ident = Identity(
            id=iid,
            gallery=gallery,
            name=name,
            metadata=json.loads(meta),
            created_at=now,
            updated_at=now,
            sample_count=len(images),
            consents=consents,
            models=dict(sorted(models.items())),
            chips=len(chips),
        )
        return ident, added

    def add_consent(self, gallery: str, identity_id: str, consent: Consent) -> Identity:
        with self.transaction() as db:
            ident = self._get(db, gallery, identity_id)
            self._insert_consent(db, ident.id, consent)
            db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (self._now(), ident.id))
            return self._get(db, gallery, ident.id)

    def withdraw_consents(self, gallery: str, identity_id: str) -> Identity:
        """End every consent of an identity that is still running, now (search stops naming
        the person at once; retention erases them after the gallery's grace period)."""
        now = self._now()
        with self.transaction() as db:
            ident = self._get(db, gallery, identity_id)
            for c in ident.consents:
                if c.expires_at is None or c.expires_at > now:
                    # a consent ends after it began, even one withdrawn the second it was given
                    end = max(now, iso(parse_time(c.granted_at) + timedelta(seconds=1)))
                    db.execute("UPDATE consents SET expires_at = ? WHERE id = ?", (end, c.id))
            db.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, ident.id))
            ident = self._get(db, gallery, ident.id)
        self._after_erasure()
        return ident

    def rename(self, gallery: str, identity_id: str, new_name: str) -> Identity:
        new_name = check_name(new_name, "new name")
        try:
            with self.transaction() as db:
                ident = self._get(db, gallery, identity_id)
                self._name_clash(db, gallery, new_name, except_id=ident.id)
                db.execute(
                    "UPDATE identities SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                    (new_name, name_key(new_name), self._now(), ident.id),
                )
                return self._get(db, gallery, ident.id)
        except Exception as e:
            if self._is_unique_violation(e):
                raise ConflictError(
                    f"an identity named {new_name!r} already exists in gallery {gallery!r}"
                ) from None
            raise

    def delete(self, gallery: str, identity_id: str) -> DeletionReceipt:
        """Erase the identity, every sample and every consent record of it."""
        with self.transaction() as db:
            ident = self._get(db, gallery, identity_id)
            ns = db.execute("DELETE FROM samples WHERE identity_id = ?", (ident.id,)).rowcount
            nc = db.execute("DELETE FROM consents WHERE identity_id = ?", (ident.id,)).rowcount
            nk = db.execute("DELETE FROM chips WHERE identity_id = ?", (ident.id,)).rowcount
            db.execute("DELETE FROM identities WHERE id = ?", (ident.id,))
        receipt = DeletionReceipt(
            identity_id=ident.id,
            name=ident.name,
            gallery=gallery,
            samples_deleted=ns,
            consents_deleted=nc,
            deleted_at=self._now(),
            chips_deleted=nk,
        )
        self._after_erasure()
        return receipt

    def _after_erasure(self) -> None:
        """An erasure (or a consent withdrawal) has committed: a store that searches a copy
        (PostgreSQL with a read replica) makes sure no search can find the person any more
        before the caller gets its receipt."""

    def _search_read(self) -> AbstractContextManager[Db]:
        """Where search reads (a read replica, when the store has one and it is current)."""
        return self._read()

    # -- search -----------------------------------------------------------------------------

    _SEARCHABLE = """
        FROM identities i
        JOIN (SELECT identity_id,
                     MAX(CASE WHEN expires_at IS NULL THEN '9999' ELSE expires_at END) AS until
              FROM consents
              WHERE expires_at IS NULL OR expires_at > ?
              GROUP BY identity_id) c ON c.identity_id = i.id
        JOIN samples s ON s.identity_id = i.id
        WHERE i.gallery = ? AND s.model = ?
    """

    def search_matrix(self, gallery: str, model: str) -> SearchMatrix:
        """Samples of ``model`` of the identities that may be searched now (valid consent)."""
        now = self._now()
        with self._search_read() as db:
            gen = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = db.execute(
                f"SELECT i.id, i.name, s.dim, {self._EMB_SQL}, c.until {self._SEARCHABLE} "
                "ORDER BY i.id, s.id",
                (now, gallery, model),
            ).fetchall()
        ids: list[str] = []
        names: list[str] = []
        owner = np.empty(len(rows), np.int64)
        dim = rows[0][2] if rows else 0
        vectors = np.empty((len(rows), dim), np.float32)
        until: str | None = None
        for j, (iid, name, d, stored, u) in enumerate(rows):
            if d != dim:
                raise GalleryFormatError(f"model {model!r} has samples of {d} and {dim} values")
            if not ids or ids[-1] != iid:
                ids.append(iid)
                names.append(name)
                if u != "9999" and (until is None or u < until):
                    until = u
            owner[j] = len(ids) - 1
            vectors[j] = self._emb_value(stored, dim)
        vectors.setflags(write=False)
        return SearchMatrix(tuple(ids), tuple(names), owner, vectors, gen, until)

    def _matrix(self, gallery: str, model: str) -> SearchMatrix:
        """The cached exact-search matrix, reloaded when the store or a consent changed."""
        gen = self.generation()
        now = self._now()
        with self._matrix_lock:
            m = self._matrices.get((gallery, model))
            if m is None or m.generation != gen or (m.valid_until and m.valid_until <= now):
                m = self.search_matrix(gallery, model)
                self._matrices[(gallery, model)] = m
            return m

    def search(
        self, gallery: str, model: str, vectors: NDArray[np.float32], k: int
    ) -> list[list[Candidate]]:
        """Per probe row, the ``k`` most similar searchable identities (best sample each).

        Exact below ``ann.min_samples`` samples of the model in the gallery, approximate
        (and verified against the store) above.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if len(vectors) == 0:
            return []
        vectors = self._forward(gallery, vectors)  # into the gallery's own space
        found = self._ann_search(gallery, model, vectors, k, start=False)
        if found is not None:
            return found
        m = self._matrix(gallery, model)
        if m.vectors.shape[1] and m.vectors.shape[1] != vectors.shape[1]:
            raise GalleryFormatError(
                f"probes have {vectors.shape[1]} values, the gallery's {model!r} samples "
                f"{m.vectors.shape[1]}"
            )
        if len(m.owner) >= self.ann.min_samples:
            found = self._ann_search(gallery, model, vectors, k, start=True)
            if found is not None:
                with self._matrix_lock:
                    self._matrices.pop((gallery, model), None)
                return found
        return exact_search(m, vectors, k)

    # how long a searchable size is trusted while the gallery does not change: consents
    # expire without a write, so the count is taken again at least this often (the open-set
    # threshold moves with the logarithm of the gallery's size: a minute's expiries are noise)
    SIZE_TTL_S = 60.0

    def searchable_size(self, gallery: str, model: str) -> tuple[int, int]:
        """(identities, samples) that search would consider now for ``model``: remembered
        until the store's generation moves or ``SIZE_TTL_S`` passes (counting them with their
        consents took 36 ms per identify at 10,000 identities)."""
        key = (gallery, model)
        generation = self.generation()
        at = self.clock().timestamp()  # the store's clock: a test's moves the expiry too
        with self._matrix_lock:
            hit = self._sizes.get(key)
        if hit is not None and hit[0] == generation and 0 <= at - hit[1] < self.SIZE_TTL_S:
            return hit[2]
        with self._read() as db:
            row = db.execute(
                f"SELECT count(DISTINCT i.id), count(*) {self._SEARCHABLE}",
                (self._now(), gallery, model),
            ).fetchone()
        size = (int(row[0]), int(row[1]))
        with self._matrix_lock:
            self._sizes[key] = (generation, at, size)
        return size

    # -- export / import --------------------------------------------------------------------

    def import_identities(
        self,
        gallery: str,
        items: Sequence[tuple[Identity, list[Sample]]],
        on_conflict: str = "error",
        chips: dict[str, list[tuple[str, bytes]]] | None = None,
    ) -> tuple[int, int]:
        """Insert identities with their ids, consents and samples in one transaction.

        ``on_conflict``: ``"error"`` (nothing is written if any id, name, look-alike name or
        sample id exists, in the store or twice in ``items``) or ``"skip"`` (those are left
        out); the rules are ``facelens.gallery.imports.plan_import``'s. ``chips`` (identity
        id -> (image SHA-256, PNG)) are stored only in a gallery that keeps chips. Returns
        (imported, skipped).
        """
        if on_conflict not in ("error", "skip"):
            raise ValueError(f"on_conflict must be 'error' or 'skip', got {on_conflict!r}")
        self.ensure_gallery(gallery)
        with self.transaction() as db:
            keep = bool(self._settings(db, gallery)["keep_chips"])
            chosen, skipped = plan_import(db, gallery, items, on_conflict)
            self._write_import(db, gallery, chosen, chips if keep else None)
        return len(chosen), skipped

    def _write_import(
        self,
        db: Db,
        gallery: str,
        rows: Sequence[ImportRow],
        chips: dict[str, list[tuple[str, bytes]]] | None,
    ) -> None:
        """Write an import's plan (a statement a row; a server store streams it)."""
        for row in rows:
            ident = row.identity
            db.execute(
                "INSERT INTO identities(id, gallery, name, name_key, metadata, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ident.id,
                    gallery,
                    ident.name,
                    row.key,
                    json.dumps(ident.metadata, sort_keys=True),
                    ident.created_at,
                    ident.updated_at,
                ),
            )
            for c in ident.consents:
                self._insert_consent(db, ident.id, c)
            for s in row.samples:
                box = list(s.box) if s.box else None
                db.execute(
                    self._SAMPLE_INSERT,
                    self._sample_row(s.id, ident.id, s, box, s.created_at, gallery),
                )
            for sha, data in (chips or {}).get(ident.id, []):
                db.execute(
                    "INSERT INTO chips(identity_id, image_sha256, format, data, created_at) "
                    "VALUES (?, ?, 'png', ?, ?) ON CONFLICT DO NOTHING",
                    (ident.id, sha, self._chip_in(data), self._now()),
                )


def name_conflict(name: str, gallery: str, other_id: str, other_name: str) -> ConflictError:
    """The error for a name that clashes with identity ``other_id`` (named ``other_name``)."""
    if other_id == name:
        return ConflictError(f"{name!r} is an identity's id: a name may never equal an id")
    if other_name == name:
        return ConflictError(f"an identity named {name!r} already exists in gallery {gallery!r}")
    return ConflictError(
        f"{name!r} looks the same as {other_name!r} ({other_id}), already in gallery "
        f"{gallery!r}: names in a gallery must look different (Unicode TS #39 confusables, "
        "case and spacing ignored)"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
