"""How a store keeps templates and chips (ISO/IEC 24745, ``facelens.gallery.protect``).

A ``TemplateCodec`` is given to each store: every template is moved into its gallery's own
space by the gallery's secret orthonormal transform (so two galleries' templates never
compare) and, when the store has a key, sealed (AES-GCM), as chips and other protected values
are. ``check_key`` refuses a store the key cannot open; ``rekey`` renews everything under a
new key in one transaction.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryFormatError, GalleryKeyError
from facelens.gallery.protect import OVERHEAD, TemplateKey, is_sealed, new_secret, transform

if TYPE_CHECKING:
    from facelens.gallery.contract import Db
    from facelens.gallery.sql import SqlStore

__all__ = ["TemplateCodec", "check_key", "rekey"]

# a gallery's stored secret: (whether the gallery exists, the secret as stored, if any)
SecretReader = Callable[[str], tuple[bool, bytes | None]]


class TemplateCodec:
    """Templates into and out of a store (see the module).

    Args:
        key: the store's key (None: templates are transformed, not sealed).
        read_secret: reads a gallery's stored secret from the store.
    """

    def __init__(self, key: TemplateKey | None, read_secret: SecretReader) -> None:
        self.key = key
        self._read_secret = read_secret
        self._secrets: dict[str, bytes | None] = {}
        self._rotations: dict[tuple[str, int], NDArray[np.float32] | None] = {}

    def forget(self) -> None:
        """Drop every remembered secret (after a re-key)."""
        self._secrets.clear()
        self._rotations.clear()

    def knows(self, gallery: str) -> bool:
        """Whether ``gallery``'s secret has been read (galleries are never deleted)."""
        return gallery in self._secrets

    def store_secret(self, gallery: str, secret: bytes, key: TemplateKey | None) -> bytes:
        """A gallery's secret as stored: sealed with ``key`` when given."""
        return key.seal(secret, b"gallery-secret:" + gallery.encode()) if key else secret

    def secret(self, gallery: str) -> bytes | None:
        """The gallery's transform secret (None: a gallery made before galleries had one,
        or no such gallery yet, which is not remembered: another process may create it)."""
        if gallery not in self._secrets:
            exists, stored = self._read_secret(gallery)
            if not exists:
                return None
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
            self._secrets[gallery] = secret
        return self._secrets[gallery]

    def rotation(self, gallery: str, dim: int) -> NDArray[np.float32] | None:
        """The gallery's orthonormal transform for ``dim``-value templates (None: none)."""
        key = (gallery, dim)
        if key not in self._rotations:
            secret = self.secret(gallery)
            if gallery not in self._secrets:
                return None
            self._rotations[key] = None if secret is None else transform(secret, dim)
        return self._rotations[key]

    def forward(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Model-space templates or probes -> this gallery's space."""
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        r = self.rotation(gallery, v.shape[1]) if v.size else None
        return v if r is None else np.ascontiguousarray(v @ r.T)

    def inverse(self, gallery: str, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """This gallery's space -> the model's."""
        v = np.atleast_2d(np.asarray(vectors, np.float32))
        r = self.rotation(gallery, v.shape[1]) if v.size else None
        return v if r is None else np.ascontiguousarray(v @ r)

    def open_template(self, stored: bytes, dim: int) -> NDArray[np.float32]:
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

    @staticmethod
    def seal_template(e: NDArray[np.float32], key: TemplateKey) -> bytes:
        return key.seal(np.ascontiguousarray(e, dtype="<f4").tobytes(), b"template")

    def protect(self, data: bytes, purpose: bytes) -> bytes:
        """``data`` as the store keeps biometric data: sealed for ``purpose`` with the key,
        or as it is in a store without one."""
        return self.key.seal(data, purpose) if self.key else data

    def unprotect(self, stored: bytes, purpose: bytes) -> bytes:
        data = bytes(stored)
        if self.key is not None:
            return self.key.open(data, purpose)
        if is_sealed(data):
            raise GalleryKeyError("a protected value is sealed and no key was given")
        return data


def _seal_store(db: Db, key: TemplateKey) -> None:
    """Mark the store as sealed by ``key``."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('key_check', ?), ('key_id', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (base64.b64encode(key.seal(b"facelens", b"key-check")).decode(), key.key_id),
    )


def check_key(store: SqlStore) -> None:
    """Refuse a store whose templates its key (or no key) cannot open; turn sealing on for a
    store given a key while it holds no template yet."""
    key = store.codec.key
    rows = dict(store.fetch("SELECT key, value FROM meta WHERE key IN ('key_check', 'key_id')"))
    if "key_check" in rows:
        if key is None:
            raise GalleryKeyError(
                f"this store's templates are encrypted (key {rows.get('key_id')}): set "
                "FACELENS_KEY_FILE to its key file"
            )
        try:
            key.open(base64.b64decode(rows["key_check"]), b"key-check")
        except GalleryKeyError:
            raise GalleryKeyError(
                f"the key given ({key.key_id}) is not this store's "
                f"({rows.get('key_id')}): its templates stay closed"
            ) from None
        return
    if key is None:
        return
    held = store.fetch("SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM chips)")
    if int(held[0][0]):
        raise GalleryKeyError(
            "this store's templates are not encrypted: encrypt them with 'facelens govern "
            "rotate-key --new-key-file FILE' (run without FACELENS_KEY_FILE)"
        )
    with store.transaction(bump=True) as db:
        _seal_store(db, key)


def _dims(db: Db, gallery: str) -> list[int]:
    return [
        int(r[0])
        for r in db.execute(
            "SELECT DISTINCT s.dim FROM samples s JOIN identities i ON i.id = s.identity_id "
            "WHERE i.gallery = ?",
            (gallery,),
        )
    ]


def rekey(store: SqlStore, new_key: TemplateKey) -> dict[str, int]:
    """Seal everything with ``new_key`` and renew every gallery's transform secret, in one
    transaction (ISO/IEC 24745 renewability): templates are opened with the present key (or
    read plain), brought back to the model's space, moved to the new secret's space and
    sealed; chips and secrets are resealed. Answers are unchanged; the old key opens nothing
    afterwards; saved approximate indexes are left for rebuilding. Returns counts."""
    codec = store.codec
    counts = {"galleries": 0, "templates": 0, "chips": 0}
    with store.transaction(bump=True) as db:
        galleries = [r[0] for r in db.execute("SELECT name FROM galleries ORDER BY name")]
        for g in galleries:
            fresh = new_secret()
            dims = _dims(db, g)
            old = {d: codec.rotation(g, d) for d in dims}
            new = {d: transform(fresh, d) for d in dims}
            counts["templates"] += _rekey_templates(store, db, g, old, new, new_key)
            for iid, sha, data in db.execute(
                "SELECT c.identity_id, c.image_sha256, c.data FROM chips c JOIN identities i "
                "ON i.id = c.identity_id WHERE i.gallery = ?",
                (g,),
            ).fetchall():
                db.execute(
                    "UPDATE chips SET data = ? WHERE identity_id = ? AND image_sha256 = ?",
                    (new_key.seal(codec.unprotect(data, b"chip"), b"chip"), iid, sha),
                )
                counts["chips"] += 1
            db.execute(
                "UPDATE galleries SET secret = ? WHERE name = ?",
                (codec.store_secret(g, fresh, new_key), g),
            )
            counts["galleries"] += 1
        _seal_store(db, new_key)
        db.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (secrets.token_hex(16),))
    codec.key = new_key
    codec.forget()
    return counts


def _rekey_templates(
    store: SqlStore,
    db: Db,
    gallery: str,
    old: dict[int, NDArray[np.float32] | None],
    new: dict[int, NDArray[np.float32]],
    new_key: TemplateKey,
) -> int:
    """Move one gallery's templates from its old space (and key) to the new ones."""
    sets = ", ".join(f"{c.strip()} = ?" for c in store._EMB_COLS.split(","))
    rows = db.execute(
        f"SELECT s.id, s.dim, {store._EMB_SQL} FROM samples s JOIN identities i "
        "ON i.id = s.identity_id WHERE i.gallery = ?",
        (gallery,),
    ).fetchall()
    for sid, dim, stored in rows:
        v = store._emb_value(stored, int(dim))
        r_old = old.get(int(dim))
        if r_old is not None:
            v = v @ r_old
        v = new[int(dim)] @ v
        db.execute(
            f"UPDATE samples SET {sets} WHERE id = ?",
            (*store._emb_params_for(v, new_key), sid),
        )
    return len(rows)


def new_gallery_secret(codec: TemplateCodec, gallery: str) -> bytes:
    """A new gallery's secret, as stored."""
    return codec.store_secret(gallery, new_secret(), codec.key)
