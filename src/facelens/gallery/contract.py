"""The contract every gallery store keeps (``GalleryStore``), and the narrow one that the
store's other components - the audit trail, keys, the stop control, retention, alerts, the
photo archive - reach their own tables through (``Tables``): they never touch the gallery's
tables, only ask the store (``GalleryStore``) about people.

``tests/gallery/test_conformance.py`` runs the contract unchanged against both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from facelens.gallery.protect import TemplateKey
from facelens.gallery.records import Consent, DeletionReceipt, Identity, NewSample, Sample
from facelens.match.decide import Candidate

__all__ = ["Cursor", "Db", "GalleryStore", "Tables"]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection inside a read or a transaction; SQL uses ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


class Tables(Protocol):
    """What a component keeping its own tables in the store (``facelens.govern``,
    ``facelens.archive``) may use: its migrations, reads and atomic writes of its tables
    (``?`` placeholders), the store's clock and dialect, and the store's protection of
    biometric data (sealed with the store's key)."""

    clock: Callable[[], datetime]
    dialect: str

    def apply_migrations(self, component: str, steps: Sequence[str]) -> int: ...

    def transaction(self, bump: bool = True) -> AbstractContextManager[Db]: ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def protect(self, data: bytes, purpose: bytes) -> bytes: ...

    def unprotect(self, stored: bytes, purpose: bytes) -> bytes: ...


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

    @property
    def key(self) -> TemplateKey | None: ...

    def close(self) -> None: ...

    def encrypted(self) -> bool: ...

    def key_id(self) -> str | None: ...

    def transformed(self, gallery: str) -> bool: ...

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

    def names_of(self, identity_ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...

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
