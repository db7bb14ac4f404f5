"""What both gallery stores share: the gallery contract (``facelens.gallery.contract``) in
the SQL that SQLite and PostgreSQL both speak.

``SqlStore`` holds every rule about identities, samples, consent, chips and settings once. It
is given a template codec (``facelens.gallery.codec``: sealing, per-gallery transforms,
re-keying), searches with ``facelens.gallery.search`` and imports with the one planner of
``facelens.gallery.imports``; a store supplies the connection (``_read`` / ``transaction``,
with ``?`` placeholders), how an embedding is written to and read from its column, its schema
(``facelens.gallery.schema``), and its approximate search.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facelens.errors import (
    ConflictError,
    GalleryError,
    GalleryFormatError,
    InputError,
)
from facelens.gallery.ann import AnnConfig
from facelens.gallery.codec import TemplateCodec, new_gallery_secret, rekey
from facelens.gallery.contract import Db
from facelens.gallery.imports import ImportRow, plan_import
from facelens.gallery.people import PeopleMixin, name_conflict
from facelens.gallery.protect import TemplateKey
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
from facelens.gallery.search import SearchMixin
from facelens.text import check_name, name_key

__all__ = ["GALLERY_SETTINGS", "SqlStore", "name_conflict", "utc_now"]


def _check_gallery_name(gallery: str) -> None:
    if not gallery or not gallery.strip():
        raise InputError("gallery", "a gallery needs a name")


# Settings a gallery may hold, and their defaults.
# ``confirm``: how many different people must confirm an identification before it is acted on
# (2: EU AI Act Art. 14(5); facelens.govern.confirm holds the alerts).
GALLERY_SETTINGS: dict[str, Any] = {"keep_chips": False, "confirm": 1}


class SqlStore(PeopleMixin, SearchMixin):
    """The gallery rules over SQL; subclasses give the connection, dialect and search."""

    clock: Callable[[], datetime]
    location: str
    dialect: str

    def __init__(
        self, clock: Callable[[], datetime], ann: AnnConfig, key: TemplateKey | None = None
    ) -> None:
        self.clock = clock
        self.ann = ann
        self.codec = TemplateCodec(key, self._stored_secret)
        self._search_state()
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

    # -- protected templates (facelens.gallery.codec) ------------------------------------------

    @property
    def key(self) -> TemplateKey | None:
        return self.codec.key

    def _stored_secret(self, gallery: str) -> tuple[bool, bytes | None]:
        rows = self.fetch("SELECT secret FROM galleries WHERE name = ?", (gallery,))
        return bool(rows), (bytes(rows[0][0]) if rows and rows[0][0] is not None else None)

    def encrypted(self) -> bool:
        """Whether the store's templates and chips are sealed (it then opens only with its
        key)."""
        return bool(self.fetch("SELECT 1 FROM meta WHERE key = 'key_check'"))

    def key_id(self) -> str | None:
        """The id of the key that seals the store (None: not sealed)."""
        rows = self.fetch("SELECT value FROM meta WHERE key = 'key_id'")
        return str(rows[0][0]) if rows else None

    def transformed(self, gallery: str) -> bool:
        """Whether the gallery's templates are moved by a secret transform of its own."""
        return self._stored_secret(gallery)[1] is not None

    def _forward(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.codec.forward(gallery, vectors)

    def _chip(self, chip: NDArray[np.uint8]) -> bytes:
        return self.codec.protect(encode_chip(chip), b"chip")

    def protect(self, data: bytes, purpose: bytes) -> bytes:
        """``data`` as the store keeps biometric data (``TemplateCodec.protect``), for other
        components' data such as an alert's best shot."""
        return self.codec.protect(data, purpose)

    def unprotect(self, stored: bytes, purpose: bytes) -> bytes:
        return self.codec.unprotect(stored, purpose)

    def rekey(self, new_key: TemplateKey) -> dict[str, int]:
        """Seal everything with ``new_key`` and renew every gallery's secret
        (``facelens.gallery.codec.rekey``)."""
        counts = rekey(self, new_key)
        with self._matrix_lock:
            self._matrices.clear()
        self._after_rekey()
        return counts

    def _after_rekey(self) -> None:
        """Drop what was derived from the old secrets (approximate indexes)."""
        self.store_id = self.fetch("SELECT value FROM meta WHERE key = 'store_id'")[0][0]

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
                    (gallery, self._now(), new_gallery_secret(self.codec, gallery)),
                )

    def galleries(self) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute("SELECT name FROM galleries ORDER BY name")]

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
                    (identity_id, s.image_sha256, self._chip(s.chip), now),
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
        return [(str(r[0]), self.codec.unprotect(r[1], b"chip")) for r in rows]

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
        if not self.codec.knows(gallery):  # galleries are never deleted: once is enough
            self.ensure_gallery(gallery)  # committed first: its transform moves the samples
            self.codec.secret(gallery)
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
        """Write an import's plan, the store's own bulk way."""
        raise NotImplementedError


def utc_now() -> datetime:
    return datetime.now(UTC)
